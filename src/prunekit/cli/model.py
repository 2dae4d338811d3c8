"""``prunekit prune`` and ``prunekit summary``: one model from the zoo or ``module:factory``, one file."""
from __future__ import annotations

import argparse
import importlib
import re
from pathlib import Path

import torch
from torch import nn

from ..errors import PruneError, UnknownNameError


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


def _prune_parser(sub: argparse._SubParsersAction) -> None:
    """``prunekit prune``: every ``pk.prune`` option as a flag, help read from the registries."""
    from .. import choices
    from ..api import METHODS
    from ..training.schedules import SCHEDULES

    traced = choices.traced_names()
    p = sub.add_parser("prune", help="prune a checkpoint (optionally fine-tune it) and save weights with masks",
                       description="Load MODEL with --weights, prune it by --structure × --score × --scope to "
                                   "--sparsity, --compression or --macs-reduction, optionally fine-tune on --data, "
                                   "and write the state dict (masks included) to --output.")
    _model_options(p)
    p.add_argument("--weights", required=True, type=Path, help="state dict to prune (.pt/.th/.safetensors)")
    p.add_argument("--output", "-o", required=True, type=Path, help="where to write (.safetensors or .pt)")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--sparsity", type=float, help="final fraction of prunable weights (or units) removed, in [0, 1)")
    target.add_argument("--compression", type=float, help="all parameters / nonzero parameters, > 1")
    target.add_argument("--macs-reduction", type=float, metavar="R",
                        help=f"dense MACs / remaining MACs (structures {', '.join(traced)})")
    p.add_argument("--structure", default="weights", metavar="NAME",
                   help=f"what is removed: {', '.join(choices.structure_names())}, or {choices.NM_HINT} "
                        "(default weights)")
    p.add_argument("--score", metavar="NAME",
                   help=f"how units are ranked: {', '.join(choices.score_names('weights'))} for weights and "
                        f"neurons; {', '.join(choices.score_names(traced[0]))} for {', '.join(traced)} "
                        "(default magnitude, or l2)" if traced else None)
    p.add_argument("--scope", metavar="NAME|LAYER=R,...",
                   help=f"where scores are compared: {', '.join(choices.scope_names())}, or per-layer ratios "
                        "such as fc1=0.9,fc2=0.5 (default global)")
    p.add_argument("--method", choices=sorted(METHODS),
                   help="a ShrinkBench baseline, shorthand for --score and --scope")
    p.add_argument("--exclude", action="append", default=[], metavar="NAME",
                   help="module name or glob left dense (repeatable)")
    p.add_argument("--round-to", type=int, metavar="K", help=f"keep widths multiples of K ({', '.join(traced)})")
    p.add_argument("--reduce", choices=["sum", "mean", "max"], help=f"how slice scores combine ({', '.join(traced)})")
    p.add_argument("--max-ratio", type=float, metavar="F",
                   help=f"most of any coupled group removed ({', '.join(traced)})")
    p.add_argument("--data", metavar="DATASET",
                   help="dataset for scores that need data and for fine-tuning (e.g. digits, mnist)")
    p.add_argument("--data-dir", metavar="DIR", help="folder of the dataset's files")
    p.add_argument("--score-batches", type=int, default=1, metavar="N", help="training batches fed to the score")
    p.add_argument("--finetune-epochs", type=int, default=0, metavar="N",
                   help="fine-tune N epochs on --data after each pruning round (default 0: prune only)")
    p.add_argument("--schedule", choices=SCHEDULES, default="oneshot",
                   help="oneshot (default), iterative rounds (--rounds) or gradual inside the fine-tuning")
    p.add_argument("--rounds", type=int, default=3, metavar="N", help="rounds of an iterative schedule")
    p.add_argument("--lr", type=float, default=0.01, help="fine-tuning learning rate (default 0.01)")
    p.add_argument("--batch-size", type=int, default=128, metavar="N", help="batch size (default 128)")
    p.add_argument("--seed", type=int, default=0, help="seed of random scores and fine-tuning (default 0)")
    p.set_defaults(usage_error=p.error)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``prune`` and ``summary`` on the ``prunekit`` subparsers."""
    _prune_parser(sub)
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


def flags(message: str) -> str:
    """A ``pk.prune`` error message in the words of the command line: ``score=`` becomes ``--score``,
    and a message that starts with an option's name starts with its flag."""
    import inspect

    from .. import api

    names = "|".join(n for n in inspect.signature(api.prune).parameters if n not in ("model", "graph_options"))
    names += "|round_to|reduce|max_ratio"

    def flag(m: re.Match) -> str:
        value = m[2] if m[2] is not None else m[3]
        return f"--{m[1].replace('_', '-')}" + (f" {value}" if value else "")

    message = re.sub(rf"\b({names})=(?:'([^']*)'|([\w.:-]+))?", flag, message)
    return re.sub(rf"^({names}) ", lambda m: f"--{m[1].replace('_', '-')} ", message)  # "max_ratio must be ..."


def _choices(args: argparse.Namespace) -> tuple[str, str | None]:
    """The structure and score named by the flags, checked against the registries, as flags."""
    from .. import choices
    from ..api import METHODS

    if args.method and (args.score or args.scope):
        raise PruneError(f"--method {args.method} already sets --score and --scope; pass one or the others")
    try:
        structure = choices.check_structure(args.structure)
        score = args.score or (METHODS[args.method][0] if args.method else None)
        if score is not None:
            choices.check_score(score, structure)
    except UnknownNameError as err:
        raise UnknownNameError(re.sub(r"\b(structure|score)\b", r"--\1", str(err), count=2)) from None
    if args.scope is not None and "=" not in args.scope and args.scope not in choices.scope_names():
        raise UnknownNameError(f"unknown --scope {args.scope!r}; valid scopes: {', '.join(choices.scope_names())}, "
                               "or per-layer ratios name=ratio,name=ratio")
    fixed = choices.needs(structure).fixed_sparsity
    if fixed is not None and (args.compression is not None or args.sparsity not in (None, fixed)):
        raise PruneError(f"--structure {structure} fixes the sparsity at {fixed:g}; omit --sparsity and --compression")
    for f in ("round_to", "reduce", "max_ratio", "macs_reduction"):
        valid = choices.traced_names() if f == "macs_reduction" else choices.taking(f)
        if getattr(args, f) is not None and structure not in valid:
            raise PruneError(f"--{f.replace('_', '-')} applies to --structure {' or '.join(valid)} "
                             f"(got --structure {structure})")
    return structure, score


def _scope(text: str | None) -> str | dict[str, float] | None:
    """``--scope``: a registered name, or per-layer ratios ``name=r,name=r``."""
    if text is None or "=" not in text:
        return text
    try:
        return {k.strip(): float(v) for k, v in (item.split("=", 1) for item in text.split(","))}
    except ValueError:
        raise PruneError(f"--scope {text!r}: per-layer ratios are written name=ratio,name=ratio") from None


def _prune(args: argparse.Namespace) -> int:
    from .. import choices, data, sparsity, summary
    from ..training import schedules
    from ..training.driver import Retraining, prune_and_finetune, prune_inputs, target_sparsity

    structure, score = _choices(args)
    need = choices.needs(structure, score)
    if args.sparsity is None and args.compression is None and args.macs_reduction is None \
            and need.fixed_sparsity is None:
        args.usage_error("one of the arguments --sparsity --compression --macs-reduction is required")
    if (need.data or args.finetune_epochs) and not args.data:
        why = f"--score {score} scores with data" if need.data else "--finetune-epochs trains"
        raise PruneError(f"{why}: pass --data DATASET (and --data-dir)")
    model, example = build_model(args)
    load_into(model, args.weights)
    train = batch = None
    if args.data:
        train, _, _ = data.load(args.data, args.data_dir)
        gen = torch.Generator().manual_seed(args.seed)
        batch = [b for b, _ in zip(data.batches(train, args.batch_size, shuffle=True, generator=gen),
                                   range(args.score_batches))]
    options = {k: v for k, v in dict(structure=structure, score=args.score, scope=_scope(args.scope), method=args.method,
                                     exclude=args.exclude, round_to=args.round_to, reduce=args.reduce,
                                     max_ratio=args.max_ratio, seed=args.seed).items() if v not in (None, [])}
    try:
        inputs = prune_inputs(options, batch, example)
        target = ({"macs_reduction": args.macs_reduction} if args.macs_reduction is not None else
                  {"sparsity": args.sparsity if args.compression is None and need.fixed_sparsity is None
                   else target_sparsity(model, options, inputs, args.compression)})
        schedule = schedules.make(args.schedule, **target, rounds=args.rounds, **options)
        retraining = Retraining(options={"epochs": args.finetune_epochs, "lr": args.lr,
                                         "batch_size": args.batch_size, "progress": False})
        prune_and_finetune(model, schedule, train if train is not None else [], retraining=retraining,
                           data=batch, example_inputs=example, seed=args.seed)
    except PruneError as err:
        raise type(err)(flags(str(err))) from None
    save(model, args.output)
    s = summary(model, example)
    print(f"{args.model}: {structure} pruned, {sparsity(model):.2%} of prunable weights zero, compression "
          f"{s.compression:.2f}x, theoretical speedup {s.speedup:.2f}x; wrote {args.output}")
    return 0


def _summary(args: argparse.Namespace) -> int:
    from .. import summary

    model, example = build_model(args)
    if args.weights:
        load_into(model, args.weights)
    print(summary(model, example))
    return 0


HANDLERS = {"prune": _prune, "summary": _summary}
