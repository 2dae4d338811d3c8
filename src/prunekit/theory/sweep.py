"""Sweeps over width, depth and sparsity on i.i.d. random networks, and their plots."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

from .gap import gap, is_stochastic
from .networks import random_network


def sweep(
    configs: Iterable[Sequence[int]],
    sparsities: Sequence[float],
    *,
    kind: str = "fcn",
    scores: Sequence[str] = ("random", "magnitude"),
    init: str = "gaussian",
    inputs: str = "gaussian",
    n_inputs: int = 128,
    trials: int = 8,
    rescale: bool = False,
    image_size: int = 8,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Gap summaries for every network in ``configs`` (lists of widths) × score × sparsity.

    Each layer is pruned to the same fraction (scope "layer"), as in the paper's per-layer analysis;
    random scores average ``trials`` mask draws, each on fresh inputs from ``inputs``.
    """
    rows = []
    for widths in configs:
        net = random_network(widths, kind, init, image_size=image_size, seed=seed)
        for score in scores:
            for s in sparsities:
                rep = gap(
                    net, inputs, sparsity=s, score=score, scope="layer", rescale=rescale, n_inputs=n_inputs,
                    trials=trials if is_stochastic(score) else 1, seed=seed,
                )
                rows.append({
                    "net": f"{kind} {'-'.join(map(str, widths))}", "kind": kind, "init": init,
                    "widths": list(widths), "depth": len(widths) - 1,
                    "width": max(widths[1:-1], default=widths[-1]), "rescale": rescale, **rep.summary(),
                })
    return rows


def plot_sweep(rows: Sequence[dict[str, Any]], path: str | Path, metric: str = "rel_mean_sq", title: str = "") -> Path:
    """Plot ``metric`` against sparsity: one colour per ``row["net"]``, dashed for random, solid otherwise."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nets = list(dict.fromkeys(r["net"] for r in rows))
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for i, net in enumerate(nets):
        for score in dict.fromkeys(r["score"] for r in rows):
            pts = sorted((r["sparsity"], r[metric]) for r in rows if r["net"] == net and r["score"] == score)
            if pts:
                ax.plot(*zip(*pts), color=f"C{i % 10}", linestyle="-" if score != "random" else "--",
                        marker="o", markersize=3, label=f"{score} {net}")
    ax.set_yscale("log")
    ax.set_xlabel("sparsity (fraction of prunable weights pruned)")
    ax.set_ylabel({"rel_mean_sq": "E[(‖Δy‖ / ‖y‖)²]", "mean_sq": "E‖Δy‖²"}.get(metric, metric))
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
