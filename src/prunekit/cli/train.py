"""``prunekit finetune`` and ``prunekit evaluate``: train a pruned model with its masks held, and measure it.

Both read a model in any form ``prune`` writes; ``finetune`` writes it back in the same form.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from ..errors import PruneError
from .model import load_model, megabytes, model_options, size_of, write_model


def data_options(p: argparse.ArgumentParser, required: bool) -> None:
    """--data, --data-dir, --subset, --batch-size and --seed."""
    p.add_argument("--data", required=required, metavar="DATASET",
                   help="a bundled dataset (digits, mnist, fashion-mnist, cifar10, synthetic), a module:function "
                        "returning (train, val, test), or a folder of train/val/test .npz or .pt tensors")
    p.add_argument("--data-dir", metavar="DIR", help="folder of a bundled dataset's files (mnist, cifar10)")
    p.add_argument("--subset", type=int, metavar="N", help="use a seeded random N training examples (quick trials)")
    p.add_argument("--batch-size", type=int, default=128, metavar="N", help="batch size (default 128)")
    p.add_argument("--seed", type=int, default=0, help="seed of data order, random scores and training (default 0)")


def load_data(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """``(train, val, test)`` named by --data, with --subset applied to train."""
    from .. import data

    train, val, test = data.load(args.data, args.data_dir)
    if args.subset is not None:
        if args.subset < 1:
            raise PruneError(f"--subset must be >= 1 (got {args.subset})")
        if not hasattr(train, "subset"):
            raise PruneError("--subset needs an in-memory dataset (a folder of tensors or a bundled one)")
        pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(args.seed))[:args.subset]
        train = train.subset(pick.sort().values)
    return train, val, test


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``finetune`` and ``evaluate``."""
    p = sub.add_parser("finetune", help="fine-tune a pruned model with its pruned weights held at zero",
                       description="Load MODEL from --weights (any form prune writes), train it on --data for "
                                   "--epochs with the checkpoint chosen on validation accuracy, and write it to "
                                   "--output in the same form.")
    model_options(p)
    p.add_argument("--weights", required=True, type=Path, help="the pruned model (file or compact folder)")
    p.add_argument("--output", "-o", required=True, type=Path, help="where to write the fine-tuned model")
    data_options(p, required=True)
    p.add_argument("--epochs", type=int, default=1, metavar="N", help="epochs (default 1)")
    p.add_argument("--lr", type=float, default=0.01, help="learning rate (default 0.01)")
    p = sub.add_parser("evaluate", help="accuracy, loss, size and sparsity of a model on a dataset's test split",
                       description="Load MODEL from --weights (any form prune writes) and print its test "
                                   "(or --split val) top-1, top-5 and loss, nonzero parameters and file size.")
    model_options(p)
    p.add_argument("--weights", required=True, type=Path, help="the model (file or compact folder)")
    data_options(p, required=True)
    p.add_argument("--split", choices=("test", "val"), default="test", help="which split (default test)")


def _score(model: torch.nn.Module, data: Any) -> str:
    from .. import evaluate

    m = evaluate(model, data)
    return f"top-1 {100 * m['top1']:.2f}%, top-5 {100 * m['top5']:.2f}%, loss {m['loss']:.4f}"


def _finetune(args: argparse.Namespace) -> int:
    from .. import sparsity, train

    model, _, form = load_model(args, args.weights)
    data = load_data(args)
    before = sparsity(model)
    history = train(model, data[0], data[1], epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                    seed=args.seed, restore_best=data[1] is not None, progress=False)
    write_model(model, args.output, form)
    best = f" (epoch {history.best_epoch} chosen on val)" if history.best_epoch else ""
    print(f"{args.model}: fine-tuned {args.epochs} epoch(s){best}, sparsity {before:.2%} → {sparsity(model):.2%}; test {_score(model, data[2])}; "
          f"wrote {args.output} ({form}, {megabytes(size_of(args.output))})")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .. import summary

    model, example, form = load_model(args, args.weights)
    _, val, test = load_data(args)
    split = test if args.split == "test" else val
    if split is None:
        raise PruneError(f"--data {args.data} has no validation split; use --split test")
    s = summary(model, example)
    print(f"{args.model} on {args.data} {args.split}: {_score(model, split)}")
    print(f"  {s.nonzero_params:,} nonzero of {s.params:,} parameters (compression {s.compression:.2f}x), "
          f"{s.nonzero_macs:,} MACs; {form} file {megabytes(size_of(args.weights))}")
    return 0


HANDLERS = {"finetune": _finetune, "evaluate": _evaluate}
