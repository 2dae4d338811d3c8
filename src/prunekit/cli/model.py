"""``prunekit prune`` and ``prunekit summary``: one model from the zoo or ``module:factory``, one file."""
from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import torch
from torch import nn

from ..errors import PruneError


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated sizes such as 1,28,28 (got {text!r})") from None
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"sizes must be >= 1 (got {text!r})")
    return shape


def _model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="zoo name (e.g. lenet300, resnet56) or module:factory returning an nn.Module")
    p.add_argument("--input-shape", type=_shape, metavar="C,H,W",
                   help="one example's shape (default: the zoo model's usual input)")
    p.add_argument("--num-classes", type=int, default=10, metavar="N", help="classes of a zoo model (default 10)")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``prune`` and ``summary`` on the ``prunekit`` subparsers."""
    from ..api import METHODS

    p = sub.add_parser("prune", help="prune a checkpoint and save the pruned weights with their masks",
                       description="Load MODEL with --weights, prune it to --sparsity or --compression "
                                   "with --method, and write the state dict (masks included) to --output.")
    _model_options(p)
    p.add_argument("--weights", required=True, type=Path, help="state dict to prune (.pt/.th/.safetensors)")
    p.add_argument("--output", "-o", required=True, type=Path, help="where to write (.safetensors or .pt)")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--sparsity", type=float, help="final fraction of prunable weights to remove, in [0, 1)")
    target.add_argument("--compression", type=float, help="all parameters / nonzero parameters, > 1")
    p.add_argument("--method", default="global-magnitude", choices=sorted(METHODS),
                   help="one of the five ShrinkBench baselines (default global-magnitude)")
    p.add_argument("--structure", default="weights", help="weights (default) or neurons")
    p.add_argument("--data", metavar="DATASET", help="dataset whose first training batch feeds gradient scores")
    p.add_argument("--data-dir", metavar="DIR", help="folder of the dataset's files")
    p.add_argument("--seed", type=int, default=0, help="seed of random scores (default 0)")

    p = sub.add_parser("summary", help="parameters, nonzeros, MACs and theoretical speedup of a model",
                       description="Print the pk.summary table of MODEL (optionally with --weights).")
    _model_options(p)
    p.add_argument("--weights", type=Path, help="state dict to load, masks included (default: fresh init)")


def build_model(args: argparse.Namespace) -> tuple[nn.Module, torch.Tensor]:
    """The model named on the command line and one example input for it."""
    from .. import models

    if ":" in args.model:
        module_name, _, factory = args.model.partition(":")
        try:
            model = getattr(importlib.import_module(module_name), factory)()
        except (ImportError, AttributeError) as err:
            raise PruneError(f"cannot load {args.model!r}: {err}; give module:factory importable from here") from None
        if not isinstance(model, nn.Module):
            raise PruneError(f"{args.model} returned {type(model).__name__}, not a torch.nn.Module")
        if args.input_shape is None:
            raise PruneError(f"{args.model} is not a zoo model: pass --input-shape C,H,W")
        return model, torch.zeros(1, *args.input_shape)
    from ..bench.zoo import default_input_shape

    shape = args.input_shape or default_input_shape(args.model)
    model = models.create(args.model, num_classes=args.num_classes, in_channels=shape[0], input_size=shape[1:])
    return model, torch.zeros(1, *shape)


def load_into(model: nn.Module, path: Path) -> None:
    """Load a state dict strictly, attaching the masks it carries first (files written by ``prune``)."""
    from .. import models
    from ..masks import Masks, split_state

    state = models.read_state_dict(path)
    masks = split_state(state)[1]
    if masks:
        Masks(masks).apply(model)
    models.load_weights(model, path)


def save(model: nn.Module, path: Path) -> None:
    """A state dict (masks included): safetensors for ``.safetensors``, else ``torch.save``."""
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)


def _prune(args: argparse.Namespace) -> int:
    from .. import data, prune, sparsity, summary
    from ..api import METHODS

    if METHODS[args.method][0] == "gradient" and not args.data:
        raise PruneError(f"--method {args.method} scores with gradients: pass --data DATASET (and --data-dir)")
    model, example = build_model(args)
    load_into(model, args.weights)
    batch = None
    if args.data:
        train, _, _ = data.load(args.data, args.data_dir)
        batch = next(iter(data.batches(train, 128)))
    prune(model, args.sparsity, compression=args.compression, method=args.method, structure=args.structure,
          data=batch, seed=args.seed)
    save(model, args.output)
    s = summary(model, example)
    print(f"{args.model}: {sparsity(model):.2%} of prunable weights pruned, compression {s.compression:.2f}x, "
          f"theoretical speedup {s.speedup:.2f}x; wrote {args.output}")
    return 0


def _summary(args: argparse.Namespace) -> int:
    from .. import summary

    model, example = build_model(args)
    if args.weights:
        load_into(model, args.weights)
    print(summary(model, example))
    return 0


HANDLERS = {"prune": _prune, "summary": _summary}
