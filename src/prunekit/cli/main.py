"""The ``prunekit`` command: demo, bench, report, prune, finetune, evaluate, summary, models and gap.

Every subcommand has ``--help``. A user mistake exits non-zero with one line saying what is wrong;
tracebacks are kept for real bugs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from ..errors import PruneError

DEMO_OUT = "demo-out"


def _bench_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resume", action="store_true", help="continue a sweep in OUT, skipping finished runs")
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="local processes (default) or a Ray cluster")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="parallel worker processes (local) or CPUs of a new local Ray instance (default 1)")
    p.add_argument("--address", metavar="ADDR", help="Ray cluster to join, e.g. auto or ray://host:10001")
    p.add_argument("--threads", type=int, default=1, metavar="N", help="torch threads per run (default 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--yes", action="store_true", help="run a grid of more than 10,000 runs")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="prunekit", description=__doc__.splitlines()[0].replace("``", ""))
    parser.add_argument("--version", action="version", version=f"prunekit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="the five baselines on bundled digits data, with a report (~2 CPU-minutes)",
                       description="Prune an MLP and a small CNN on scikit-learn's digits with the five "
                                   "ShrinkBench baselines at 5 compressions × 2 seeds; writes the store, "
                                   "runs.csv, report.md and plots to OUT.")
    p.add_argument("--out", default=DEMO_OUT, metavar="DIR", help=f"output directory (default {DEMO_OUT})")
    _bench_options(p)

    p = sub.add_parser("bench", help="run a sweep from a YAML config into a results directory",
                       description="Run every run of CONFIG (datasets × models × methods × compressions × "
                                   "seeds) and record it in OUT/runs.db, then write OUT/report.md.")
    p.add_argument("config", type=Path, help="experiment YAML (see configs/)")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="results directory")
    p.add_argument("--data-dir", metavar="DIR", help="dataset files folder (overrides the config's data_dir)")
    _bench_options(p)

    p = sub.add_parser("report", help="write report.md, runs.csv and plots for a results directory",
                       description="Read DIR/runs.db and write DIR/report.md, DIR/runs.csv and PNG plots.")
    p.add_argument("dir", type=Path, help="results directory written by `prunekit bench`")

    from . import gap, model, prune, train

    prune.add_parser(sub)
    train.add_parsers(sub)
    model.add_parsers(sub)
    gap.add_parser(sub)
    return parser


def _executor(args: argparse.Namespace):
    from ..bench import make

    return make(args.executor, args.workers, args.address)


def run_sweep(config_path: Path, out: Path, args: argparse.Namespace, data_dir: str | None = None) -> int:
    """Load, sweep, report; prints where the report is. Returns the exit code (1 if runs failed)."""
    from ..bench import Env, load, report, sweep
    from ..bench.progress import bar
    from ..bench.terminal import print_summary

    config = load(config_path)
    if args.threads < 1:
        raise PruneError(f"--threads must be >= 1 (got {args.threads})")
    env = Env(data_dir=data_dir or config.data_dir, threads=args.threads)
    executor = _executor(args)
    try:
        with bar(not args.no_progress) as progress:
            outcome = sweep(config, out, resume=args.resume, executor=executor, env=env, progress=progress, allow_large=args.yes)
    finally:
        executor.close()
    path = report(out)
    print_summary(out)
    print(f"{outcome.done} runs done, {outcome.skipped} already finished, {len(outcome.failed)} failed; "
          f"report: {path}")
    for run_id, reason in outcome.failed[:5]:
        print(f"  failed {run_id}: {reason}", file=sys.stderr)
    return 1 if outcome.failed else 0


def _demo(args: argparse.Namespace) -> int:
    from ..bench import DEMO_CONFIG

    return run_sweep(DEMO_CONFIG, Path(args.out), args)


def _bench(args: argparse.Namespace) -> int:
    return run_sweep(args.config, args.out, args, args.data_dir)


def _report(args: argparse.Namespace) -> int:
    from ..bench import report
    from ..bench.terminal import print_summary

    path = report(args.dir)
    print_summary(args.dir)
    print(f"report: {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``prunekit`` script; returns the exit code."""
    args = build_parser().parse_args(argv)
    from . import gap, model, prune, train

    handlers = {"demo": _demo, "bench": _bench, "report": _report, "gap": gap.run, **model.HANDLERS,
                **prune.HANDLERS, **train.HANDLERS}
    try:
        return handlers[args.command](args)
    except PruneError as err:
        print(f"prunekit {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"prunekit {args.command}: interrupted; finished runs are kept (use --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
