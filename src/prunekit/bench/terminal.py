"""What ``prunekit demo`` and ``prunekit bench`` print: per dataset/model, the test metric (top-1 accuracy, or
perplexity for a language model) of every method at every compression as a ``rich`` table that fits the
terminal (one line per method, never wrapped), the best method per compression marked (chosen on
validation), and the measured-speedup noise floor."""
from __future__ import annotations

import statistics
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .report import _dense, best_on_val, floors, groups, mean_std, seeds_text
from .speed import above_floor
from .store import Store
from .task_metric import TaskMetric, of_pair

METHOD_WIDTH = 18  # the longest baseline name, global-magnitude, and a margin


def _cell(runs: list[dict], best: bool, metric: TaskMetric) -> str:
    m, s = mean_std([metric.shown(r[metric.reported]) for r in runs])
    d = metric.decimals
    text = f"{m:.{d}f}" if len(runs) == 1 else f"{m:.{d}f}±{s:.{d}f}"
    return text + ("*" if best else " ")


def _tables(pair: tuple[str, str], methods: dict, dense: tuple | None, width: int) -> list[Table]:
    from ..cli.tables import table

    ratios = sorted({c for m in methods.values() for c in m})
    best = {c: (best_on_val(methods, c) or [("", 0.0)])[0][0] for c in ratios}
    n_seeds = max(len(runs) for m in methods.values() for runs in m.values())
    cell = 6 if n_seeds == 1 else 10
    per_table = max(1, (width - METHOD_WIDTH - 2) // (cell + 2))
    seeds, metric = seeds_text(n_seeds), of_pair(methods)
    title = f"{pair[0]} / {pair[1]}: {metric.title}, {seeds}"
    if dense:
        title += f"; dense {metric.shown(dense[0]):.{metric.decimals}f}"
    out = []
    for i in range(0, len(ratios), per_table):
        chunk = ratios[i:i + per_table]
        rows = [[name] + [_cell(methods[name][c], best[c] == name, metric) if methods[name].get(c) else "—"
                          for c in chunk]
                for name in sorted(methods)]
        out.append(table(title if i == 0 else None, ["method", *(f"×{c:g}" for c in chunk)], rows))
    return out


def _speed_line(pair: tuple[str, str], methods: dict, floor: float | None) -> str:
    runs = [r for m in methods.values() for rs in m.values() for r in rs]
    dense = sum(1 for r in runs if r.get("speedup_by_construction"))
    timed = [r["measured_speedup"] for r in runs if not r.get("speedup_by_construction")]
    real = [s for s in timed if above_floor(s, floor)]
    text = f"{pair[1]}: {dense} of {len(runs)} runs deployed dense (speedup 1.00× by construction)"
    if floor is not None:
        text += f"; noise floor ×{floor:.2f}"
    if timed:
        text += (f"; {len(real)} of {len(timed)} timed runs above it"
                 + (f" (median {statistics.median(real):.2f}×)" if real else ""))
    return text


def print_summary(directory: str | Path, console: Console | None = None) -> None:
    """Print the accuracy tables of a results folder, sized to ``console`` (the terminal by default)."""
    from ..cli.tables import console as terminal

    console = console or terminal()
    with Store(directory) as store:
        finished, dense = store.runs("done"), _dense(store)
    grouped, noise = groups(finished), floors(finished)
    for pair in sorted(grouped):
        for t in _tables(pair, grouped[pair], dense.get(pair), console.width):
            console.print(t)
        console.print(_speed_line(pair, grouped[pair], noise.get(pair)))
        console.print()
    if grouped:
        nouns = " / ".join(sorted({of_pair(methods).noun for methods in grouped.values()}))
        console.print(f"* best at that compression, chosen on validation {nouns} (never on test); "
                      f"full report: {Path(directory) / 'report.md'}")
