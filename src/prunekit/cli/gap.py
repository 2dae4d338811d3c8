"""``prunekit gap``: how far a network drifts when pruned, and how far each layer can go within ε.

Works on an i.i.d. random network (``--net fcn:32,128,128,10``) or a zoo model with weights
(``--model lenet300 --weights w.safetensors --data mnist --data-dir DIR``); prints tables and,
with ``--out``, writes ``gap.json`` and ``gap_vs_sparsity.png``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import PruneError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``gap`` subcommand on an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "gap", help="estimate the output gap of pruning, and per-layer max sparsity within eps",
        description=__doc__.split("\n\n")[0].replace("``", ""),
    )
    src = p.add_argument_group("network and inputs")
    src.add_argument("--net", default="fcn:32,128,128,10",
                     help="random i.i.d. network KIND:WIDTHS, e.g. fcn:784,300,100,10 or cnn:3,16,16,8")
    src.add_argument("--init", choices=("gaussian", "uniform"), default="gaussian", help="random network weights")
    src.add_argument("--model", help="zoo model name instead of --net (see prunekit models)")
    src.add_argument("--weights", help="weights for --model (safetensors or a state dict, read safely)")
    src.add_argument("--data", help="take inputs from this dataset's validation split (e.g. mnist)")
    src.add_argument("--data-dir", help="folder with the dataset's files")
    src.add_argument("--inputs", choices=("gaussian", "uniform", "sphere"), default="gaussian",
                     help="input distribution when --data is not given")
    src.add_argument("--n-inputs", type=int, default=256, help="inputs per trial")
    g = p.add_argument_group("pruning")
    g.add_argument("--sparsity", type=float, nargs="+", default=[0.25, 0.5, 0.75, 0.9])
    g.add_argument("--score", nargs="+", default=["random", "magnitude"])
    g.add_argument("--scope", choices=("layer", "global"), default="layer")
    g.add_argument("--rescale", action="store_true", help="scale survivors by 1/(1 - layer sparsity)")
    g.add_argument("--trials", type=int, default=16, help="mask draws for random scores")
    g.add_argument("--seed", type=int, default=0)
    e = p.add_argument_group("guarantee (max_sparsity)")
    e.add_argument("--eps", type=float, help="largest acceptable gap; also runs max_sparsity per layer")
    e.add_argument("--delta", type=float, default=0.05, help="allowed probability of exceeding eps")
    e.add_argument("--norm", choices=("l2", "linf"), default="l2")
    e.add_argument("--relative", action="store_true", help="gap divided by the output's norm")
    e.add_argument("--allocate-score", default="magnitude", help="score used by max_sparsity")
    e.add_argument("--joint", action="store_true",
                   help="allocate so that all layers pruned together meet the target (default: each layer alone)")
    p.add_argument("--out", type=Path, help="folder for gap.json and gap_vs_sparsity.png")
    p.set_defaults(func=run)
    return p


def _target(args: argparse.Namespace) -> tuple[nn.Module, torch.Tensor | str, str]:
    """The model, its inputs (a tensor or a distribution name) and a label for tables and plots."""
    from .. import theory

    if args.model is None:
        kind, _, widths = args.net.partition(":")
        try:
            sizes = [int(w) for w in widths.split(",")]
        except ValueError:
            raise PruneError(f"--net {args.net!r}: write KIND:WIDTHS such as fcn:32,128,10") from None
        model = theory.random_network(sizes, kind, args.init, seed=args.seed)
        label = f"{kind} {'-'.join(map(str, sizes))}"
    else:
        from .. import models

        model = models.create(args.model)
        if args.weights:
            models.load_weights(model, args.weights)
        label = args.model
    if args.data is None:
        if not hasattr(model, "input_shape"):
            raise PruneError(f"--model {args.model} needs --data (and --data-dir) to supply inputs")
        return model, args.inputs, label
    from .. import data

    train, val, _ = data.load(args.data, args.data_dir, seed=args.seed)
    pool = val if val is not None else train
    idx = torch.randperm(len(pool), generator=torch.Generator().manual_seed(args.seed))[: args.n_inputs]
    return model, pool.batch(idx)[0], label


def _print_table(title: str, rows: list[dict[str, Any]], cols: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for c in cols:
        table.add_column(c, justify="right")
    for r in rows:
        table.add_row(*[f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in cols])
    Console(width=max(Console().width, 120)).print(table)


def run(args: argparse.Namespace) -> int:
    """Measure the gap at each sparsity and score; with ``--eps``, find per-layer max sparsity."""
    from .. import theory

    try:
        model, inputs, label = _target(args)
        common = dict(n_inputs=args.n_inputs, seed=args.seed, rescale=args.rescale)
        rows = []
        for score in args.score:
            trials = args.trials if theory.is_stochastic(score) else 1
            for s in args.sparsity:
                rep = theory.gap(model, inputs, sparsity=s, score=score, scope=args.scope, trials=trials, **common)
                rows.append({"net": label, **rep.summary(args.eps, args.norm, args.relative)})
        cols = ["score", "sparsity", "mean_sq", "rel_mean_sq", "q90", "sup"]
        _print_table(f"gap of {label} ({args.norm}{', relative' if args.relative else ''})",
                     rows, cols + (["p_within", "p_low", "p_high"] if args.eps is not None else []))
        result: dict[str, Any] = {"net": label, "gap": rows}
        if args.eps is not None:
            alloc = theory.max_sparsity(
                model, inputs, eps=args.eps, delta=args.delta, joint=args.joint, score=args.allocate_score,
                norm=args.norm, relative=args.relative,
                trials=args.trials if theory.is_stochastic(args.allocate_score) else 1, **common,
            )
            p, low, high = alloc.joint.prob_within(args.eps, args.norm, args.relative)
            _print_table(f"max sparsity per layer ({alloc.mode}), P(gap <= {args.eps:g}) >= {1 - args.delta:g}; "
                         "P with each layer pruned alone", alloc.table(),
                         ["layer", "sparsity", "p_within", "p_low", "p_high"])
            print(f"all layers together: sparsity {alloc.sparsity:.4f}, "
                  f"P(gap <= eps) = {p:.3f} [{low:.3f}, {high:.3f}]")
            result["max_sparsity"] = {"mode": alloc.mode, "ratios": alloc.ratios, "sparsity": alloc.sparsity,
                                      "joint_p": [p, low, high]}
    except PruneError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gap.json").write_text(json.dumps(result, indent=2))
        theory.plot_sweep(rows, args.out / "gap_vs_sparsity.png", title=f"output gap of {label}")
        print(f"wrote {args.out / 'gap.json'} and {args.out / 'gap_vs_sparsity.png'}")
    return 0
