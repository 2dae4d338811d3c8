"""Tradeoff plots of a results folder: each pair's task metric (test top-1 accuracy, or perplexity for a
language model; mean ± std over seeds) against compression, theoretical speedup and measured speedup,
one panel per dataset/model pair, every method.

On the measured-speedup plot a grey band is the noise floor (dense vs an identical dense copy, timed
side by side in every run): a point inside it is drawn hollow at its value and means *no measured
effect*; horizontal bars are the quartiles of the per-round latency ratios; each point is labelled
with its target compression.
"""
from __future__ import annotations

import statistics
from pathlib import Path

from . import task_metric
from .speed import above_floor
PLOTS = {
    "accuracy_vs_compression.png": ("achieved_compression", "compression (all / nonzero parameters, log₂)"),
    "accuracy_vs_theoretical_speedup.png": ("theoretical_speedup", "theoretical speedup (dense MACs / nonzero MACs, log₂)"),
    "accuracy_vs_measured_speedup.png": ("measured_speedup", "measured speedup (dense latency / deployed latency, log₂)"),
}
MEASURED_NOTE = ("vertical bars: ± std of the test metric over seeds; "
                 "horizontal bars: quartiles of per-round latency ratios; "
                 "grey band: noise floor (dense vs dense); hollow: inside the floor, no measured effect")


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _values(runs: list[dict], metric: task_metric.TaskMetric) -> tuple[float, float]:
    """Mean and std over seeds of the runs' test metric, as shown (top-1 in percent)."""
    return _mean_std([metric.shown(m[metric.reported]) for m in runs])


def _measured_panel(ax, methods: dict, floor: float | None, metric: task_metric.TaskMetric) -> None:
    """Points with speedup quartiles as x-error bars; hollow inside the noise floor; labelled ×compression."""
    if floor is not None:
        ax.axvspan(1 / floor, floor, color="0.85", zorder=0, label=f"noise floor ×{floor:.2f}")
    ax.axvline(1.0, color="gray", linewidth=0.8)
    for i, method in enumerate(sorted(methods)):
        color = f"C{i}"
        for c, runs in sorted(methods[method].items()):
            x = statistics.median(m["measured_speedup"] for m in runs)
            q1 = statistics.median(m.get("measured_speedup_q1", x) for m in runs)
            q3 = statistics.median(m.get("measured_speedup_q3", x) for m in runs)
            y, s = _values(runs, metric)
            real = above_floor(x, floor)
            ax.errorbar([x], [y], xerr=[[max(0.0, x - q1)], [max(0.0, q3 - x)]], yerr=[s], marker="o", ms=5,
                        capsize=2, color=color, mfc=color if real else "none", linestyle="none",
                        label=method if c == min(methods[method]) else None)
            ax.annotate(f"×{c:g}", (x, y), textcoords="offset points", xytext=(4, 3), fontsize=6, color=color)
    ax.set_xscale("log", base=2)


def plot(grouped: dict, x_key: str, x_label: str, path: Path, dense: dict,
         floors: dict | None = None) -> None:
    """One panel per dataset/model: its test metric (mean ± std over seeds) against ``x_key``, per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs, measured = sorted(grouped), x_key == "measured_speedup"
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.2 * len(pairs), 4.4 if measured else 4), squeeze=False)
    for ax, pair in zip(axes[0], pairs):
        methods = grouped[pair]
        metric = task_metric.of_pair(methods)
        if measured:
            _measured_panel(ax, methods, (floors or {}).get(pair), metric)
        else:
            for method in sorted(methods):
                pts = sorted(methods[method].items())
                xs = [statistics.fmean(m[x_key] for m in runs) for _, runs in pts]
                ys = [_values(runs, metric) for _, runs in pts]
                ax.errorbar(xs, [y for y, _ in ys], yerr=[s for _, s in ys], marker="o", ms=4, capsize=3,
                            label=method, linestyle="--" if method == "random" else "-")
            ax.set_xscale("log", base=2)
        if pair in dense:
            ax.axhline(metric.shown(dense[pair][0]), color="gray", linestyle=":", label="dense")
        ax.set_title(f"{pair[0]} / {pair[1]}")
        ax.set_xlabel(x_label)
        ax.set_ylabel(metric.axis)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if measured:
        fig.text(0.5, 0.005, MEASURED_NOTE, ha="center", va="bottom", fontsize=7, wrap=True)
        fig.tight_layout(rect=(0, 0.05, 1, 1))
    else:
        fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
