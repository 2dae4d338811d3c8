"""``prunekit prune``: every ``pk.prune`` option as a flag; ends in a smaller model on disk and a
per-layer report of what was removed."""
from __future__ import annotations

import argparse
import copy
import re
from pathlib import Path
from typing import Any

import torch

from ..errors import PruneError, UnknownNameError
from .model import FORMS, build_model, load_model, megabytes, model_options, size_of, write_model
from .train import data_options, load_data


def add_parser(sub: argparse._SubParsersAction) -> None:
    """``prunekit prune``: every ``pk.prune`` option as a flag, help read from the registries."""
    from .. import choices
    from ..api import METHODS
    from ..training.schedules import SCHEDULES

    traced = choices.traced_names()
    p = sub.add_parser("prune", help="prune a checkpoint (optionally fine-tune it) and save a smaller model",
                       description="Load MODEL with --weights, prune it by --structure × --score × --scope to "
                                   "--sparsity, --compression or --macs-reduction, optionally fine-tune on --data, "
                                   "and write it in its smallest form: compacted (smaller dense layers, a folder) "
                                   "for neurons, channels and heads, sparse (pk.save) otherwise. Prints the size "
                                   "before and after and what was removed per layer.")
    model_options(p)
    p.add_argument("--weights", required=True, type=Path, help="weights to prune (.pt/.th/.safetensors, any form)")
    p.add_argument("--output", "-o", required=True, type=Path,
                   help="where to write: a .safetensors file (sparse, dense) or a folder (compact)")
    p.add_argument("--format", choices=("auto", *FORMS), default="auto",
                   help="auto (default): compact where compaction removes units, else sparse; dense keeps "
                        "zeros and masks in a plain state dict")
    p.add_argument("--report", type=Path, metavar="JSON", help="also write the per-layer report as JSON")
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
    p.add_argument("--prune-outputs", action="append", default=[], metavar="NAME",
                   help="an output layer that neurons, channels or heads may shrink (kept whole unless named; repeatable)")
    p.add_argument("--allow-collapse", action="store_true",
                   help="prune even when a layer would lose every weight (its output then ignores its input)")
    p.add_argument("--round-to", type=int, metavar="K", help=f"keep widths multiples of K ({', '.join(traced)})")
    p.add_argument("--reduce", choices=["sum", "mean", "max"], help=f"how slice scores combine ({', '.join(traced)})")
    p.add_argument("--max-ratio", type=float, metavar="F",
                   help=f"most of any coupled group removed ({', '.join(traced)})")
    data_options(p, required=False)
    p.add_argument("--score-batches", type=int, default=1, metavar="N", help="training batches fed to the score")
    p.add_argument("--finetune-epochs", type=int, default=0, metavar="N",
                   help="fine-tune N epochs on --data after each pruning round (default 0: prune only)")
    p.add_argument("--schedule", choices=SCHEDULES, default="oneshot",
                   help="oneshot (default), iterative rounds (--rounds) or gradual inside the fine-tuning")
    p.add_argument("--rounds", type=int, default=3, metavar="N", help="rounds of an iterative schedule")
    p.add_argument("--lr", type=float, default=0.01, help="fine-tuning learning rate (default 0.01)")
    p.set_defaults(usage_error=p.error)



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
    from .. import choices, data, summary
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
    model, example, _ = load_model(args, args.weights)
    dense, before = copy.deepcopy(model), summary(model, example)
    train = batch = None
    if args.data:
        train = load_data(args)[0]
        gen = torch.Generator().manual_seed(args.seed)
        batch = [b for b, _ in zip(data.batches(train, args.batch_size, shuffle=True, generator=gen),
                                   range(args.score_batches))]
    options = {k: v for k, v in dict(structure=structure, score=args.score, scope=_scope(args.scope), method=args.method,
                                     exclude=args.exclude, prune_outputs=args.prune_outputs, round_to=args.round_to, reduce=args.reduce,
                                     max_ratio=args.max_ratio, seed=args.seed,
                                     allow_collapse=args.allow_collapse or None).items() if v not in (None, [])}
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
        err.args = (flags(str(err)),)  # same error (and its fields), in the words of the CLI
        raise
    out, form = _deployable(model, example, structure, args.format)
    write_model(out, args.output, form)
    _print_report(args, structure, dense, before, out, example, form)
    return 0


def _deployable(model: torch.nn.Module, example: torch.Tensor, structure: str, choice: str) -> tuple[torch.nn.Module, str]:
    """The model in the form ``--format`` asks for; ``auto`` compacts unit structures when that removes
    anything (never elementwise or N:M ones) and keeps the rest sparse."""
    from .. import choices, compact

    if choice in ("sparse", "dense"):
        return model, choice
    unitwise = not choices.is_elementwise(structure) and choices.needs(structure).fixed_sparsity is None
    if choice == "auto" and not unitwise:
        return model, "sparse"
    small = compact(model, example)
    params = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    if choice == "auto" and params(small) >= params(model):
        return model, "sparse"
    return small, "compact"


def _print_report(args: argparse.Namespace, structure: str, dense: torch.nn.Module, before: Any,
                  out: torch.nn.Module, example: torch.Tensor, form: str) -> None:
    """Size before → after, totals, and the per-layer table (and --report JSON)."""
    from .. import sparsity, summary
    from . import layers
    from .tables import console, table

    after = summary(out, example)
    records = layers.rows(dense, before, out, after)
    size_in, size_out = size_of(args.weights), size_of(args.output)
    totals = {"form": form, "bytes_before": size_in, "bytes_after": size_out, "params": before.params,
              "nonzero_params_after": after.nonzero_params, "compression": before.params / max(1, after.nonzero_params),
              "macs": before.macs, "macs_after": after.nonzero_macs, "sparsity": sparsity(out) if form != "compact" else None}
    if args.report:
        layers.write_json(args.report, records, totals)
    term = console()
    term.print(table(f"{args.model}: what was removed, per layer", layers.COLUMNS, layers.text_rows(records)))
    term.print(f"{args.model}: {structure} pruned; {megabytes(size_in)} → {megabytes(size_out)} ({form}, {args.output}); parameters "
               f"{before.params:,} → {after.nonzero_params:,} nonzero (compression {totals['compression']:.2f}x), "
               f"MACs {before.macs:,} → {after.nonzero_macs:,} (theoretical speedup "
               f"{before.macs / max(1, after.nonzero_macs):.2f}x)")


HANDLERS = {"prune": _prune}
