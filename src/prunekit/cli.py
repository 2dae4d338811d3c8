"""The ``prunekit`` command line."""
from __future__ import annotations

import argparse
import sys

from .errors import PruneError


def _demo(args: argparse.Namespace) -> int:
    from . import demo

    result = demo.run(seed=args.seed, progress=not args.quiet)
    print(f"Dense MLP on digits: test top-1 {100 * result.dense_top1:.1f} %")
    print("Test top-1 (%) after pruning to each compression (all params / nonzero params) and fine-tuning:\n")
    print(result.table())
    print(f"\n{result.seconds:.0f} s")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="prunekit", description="Prune PyTorch models and measure what it gained.")
    sub = p.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="five baselines × five compressions on the bundled digits data")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(func=_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except PruneError as e:
        print(f"prunekit: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
