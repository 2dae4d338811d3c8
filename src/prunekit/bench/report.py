"""Reports from a benchmark directory: ``runs.csv``, PNG tradeoff plots and ``report.md``.

Every curve is the mean over seeds with ± one standard deviation, one panel per dataset/model pair,
every method (the random baseline included). The best method at each compression is chosen on
validation accuracy; the test accuracy is only reported, never used to choose.
"""
from __future__ import annotations

import csv
import json
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from ..errors import PruneError
from .store import DB_NAME, Store

ACCURACY = "finetuned_test_top1"
SELECT_ON = "finetuned_val_top1"
PLOTS = {
    "accuracy_vs_compression.png": ("achieved_compression", "compression (all / nonzero parameters, log₂)"),
    "accuracy_vs_theoretical_speedup.png": ("theoretical_speedup", "theoretical speedup (dense MACs / nonzero MACs, log₂)"),
    "accuracy_vs_measured_speedup.png": ("measured_speedup", "measured speedup (dense latency / deployed latency)"),
}


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def groups(runs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, dict[float, list[dict]]]]:
    """(dataset, model) → method → target compression → finished runs (one per seed)."""
    out: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for r in runs:
        out[(r["dataset"], r["model"])][r["method"]][r["compression"]].append(r["metrics"])
    return out


def write_csv(runs: list[dict[str, Any]], path: Path) -> None:
    """One row per run: identity, grid coordinates, status and every metric."""
    keys = sorted({k for r in runs for k in r["metrics"]})
    head = ["run_id", "dataset", "model", "method", "structure", "deployed_as", "compression", "seed", "status"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(head + keys)
        for r in runs:
            m = r["metrics"]
            w.writerow([r["id"], r["dataset"], r["model"], r["method"], r.get("structure") or "",
                        r.get("deployed_as") or "", r["compression"], r["seed"], r["status"]]
                       + [m.get(k, "") for k in keys])


def plot(grouped: dict, x_key: str, x_label: str, path: Path, dense: dict) -> None:
    """One panel per dataset/model: accuracy (mean ± std over seeds) against ``x_key``, per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs, measured = sorted(grouped), x_key == "measured_speedup"
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.2 * len(pairs), 4), squeeze=False)
    for ax, pair in zip(axes[0], pairs):
        for method in sorted(grouped[pair]):
            pts = sorted(grouped[pair][method].items())
            xs = [statistics.fmean(m[x_key] for m in runs) for _, runs in pts]
            ys = [mean_std([100 * m[ACCURACY] for m in runs]) for _, runs in pts]
            style = "none" if measured else "--" if method == "random" else "-"  # measured x is noisy
            ax.errorbar(xs, [y for y, _ in ys], yerr=[s for _, s in ys], marker="o", ms=4, capsize=3,
                        label=method, linestyle=style)
        if pair in dense:
            ax.axhline(100 * dense[pair][0], color="gray", linestyle=":", label="dense")
        if measured:
            ax.axvline(1.0, color="gray", linewidth=0.8)
        else:
            ax.set_xscale("log", base=2)
        ax.set_title(f"{pair[0]} / {pair[1]}")
        ax.set_xlabel(x_label)
        ax.set_ylabel("test top-1 accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(values: list[float]) -> str:
    m, s = mean_std([100 * v for v in values])
    return f"{m:.2f} ± {s:.2f}"


def best_table(pair: tuple[str, str], methods: dict[str, dict[float, list[dict]]]) -> list[str]:
    """Markdown rows: test top-1 of every method at each compression, the best chosen on validation."""
    names = sorted(methods)
    ratios = sorted({c for m in methods.values() for c in m})
    lines = [f"| compression | best (chosen on val) | " + " | ".join(names) + " |",
             "|---:|---|" + "---:|" * len(names)]
    for c in ratios:
        cells, best, best_val = [], "", -1.0
        for name in names:
            runs = methods[name].get(c, [])
            cells.append(_fmt([r[ACCURACY] for r in runs]) if runs else "—")
            if runs and statistics.fmean(r[SELECT_ON] for r in runs) > best_val:
                best, best_val = name, statistics.fmean(r[SELECT_ON] for r in runs)
        lines.append(f"| {c:g} | **{best}** | " + " | ".join(cells) + " |")
    return lines


def _dense(store: Store) -> dict[tuple[str, str], tuple[float, float, int]]:
    by_pair: dict = defaultdict(list)
    for b in store.bases():
        if b["status"] == "done":
            by_pair[(b["dataset"], b["model"])].append(b["metrics"]["test_top1"])
    return {p: (*mean_std(v), len(v)) for p, v in by_pair.items()}


def report(directory: str | Path) -> Path:
    """Write ``report.md``, ``runs.csv`` and the plots into ``directory``; returns the report's path."""
    directory = Path(directory)
    if not (directory / DB_NAME).exists():
        raise PruneError(f"{directory} holds no {DB_NAME}; run `prunekit bench CONFIG --out {directory}` first")
    with Store(directory) as store:
        runs, counts, dense = store.runs(), store.counts(), _dense(store)
        bases, config = store.bases(), json.loads(store.meta("config") or "{}")
        sessions = store.sessions()
    finished = [r for r in runs if r["status"] == "done"]
    write_csv(runs, directory / "runs.csv")
    grouped = groups(finished)
    if grouped:
        for name, (key, label) in PLOTS.items():
            plot(grouped, key, label, directory / name, dense)
    failed = [r for r in runs if r["status"] == "failed"]
    text = _markdown(config, counts, dense, grouped, finished, bases, failed, sessions)
    (directory / "report.md").write_text(text)
    return directory / "report.md"


def deploy_table(runs: list) -> list[str]:
    """Markdown rows: per method, its structure, what it was really deployed as, and what that gained."""
    lines = ["| method | structure | deployed as | params deployed / dense | file / dense file | measured speedup |",
             "|---|---|---|---|---|---|"]
    by_method: dict[str, list] = defaultdict(list)
    for r in runs:
        by_method[r["method"]].append(r)
    for method, rs in sorted(by_method.items()):
        forms = Counter(r.get("deployed_as") or r["metrics"].get("deploy_form", "?") for r in rs)
        ms = [r["metrics"] for r in rs]
        params = statistics.median(m.get("deployed_params", m["params"]) / m["params"] for m in ms)
        size = statistics.median(m["file_bytes"] / m["dense_file_bytes"] for m in ms)
        speed = statistics.median(m["measured_speedup"] for m in ms)
        lines.append(f"| {method} | {rs[0].get('structure') or '?'} | {', '.join(f'{f} ×{n}' for f, n in forms.items())} "
                     f"| {params:.2f} | {size:.2f} | {speed:.2f}× |")
    return lines


def _forms(finished: list) -> str:
    counts = Counter(r["metrics"].get("deploy_form", "?") for r in finished)
    return ", ".join(f"{form} ×{n}" for form, n in counts.most_common())


def _markdown(config: dict, counts: dict, dense: dict, grouped: dict, finished: list, bases: list, failed: list,
              sessions: list) -> str:
    cpu = sum(r["metrics"].get("cpu_s", 0) for r in finished) + sum(b["metrics"].get("cpu_s", 0) for b in bases if b["metrics"])
    wall = sum(r["metrics"].get("wall_s", 0) for r in finished) + sum(b["metrics"].get("wall_s", 0) for b in bases if b["metrics"])
    env = finished[0]["metrics"] if finished else {}
    lines = [f"# Benchmark report: {config.get('name', '?')}", "",
             f"Runs: {', '.join(f'{v} {k}' for k, v in sorted(counts.items()))}. "
             f"Total CPU time {cpu / 60:.1f} min (process time of bases and runs; summed task wall time "
             f"{wall / 60:.1f} min). Sweep invocations: " + (", ".join(
                 f"{s['executor']} ×{s['workers']}: {s['done']} runs in {s['wall_s'] / 60:.1f} min wall"
                 for s in sessions if s["done"]) or "none finished") + ".",
             f"Machine: {env.get('machine', '?')}, {env.get('cpu_count', '?')} CPUs; torch {env.get('torch_version', '?')}, "
             f"python {env.get('python_version', '?')}, prunekit {env.get('prunekit_version', '?')}.", "",
             "Accuracy is test top-1 after fine-tuning, mean ± std over seeds; the fine-tuning checkpoint and "
             "the best method are chosen on the validation split, never on test. Measured speedup: median "
             "latency of the dense model over the pruned model as deployed, timed side by side in the same "
             f"process at the largest batch size (forms used: {_forms(finished)}).", ""]
    if grouped:
        lines += [f"![{n}]({n})" for n in PLOTS] + [""]
    for pair in sorted(grouped):
        d = dense.get(pair)
        lines += [f"## {pair[0]} / {pair[1]}", ""]
        if d:
            lines += [f"Dense test top-1: {100 * d[0]:.2f} ± {100 * d[1]:.2f} % over {d[2]} seeds.", ""]
        lines += best_table(pair, grouped[pair]) + [""]
        lines += deploy_table([r for r in finished if (r["dataset"], r["model"]) == pair]) + [""]
    if failed:
        lines += ["## Failed runs", ""] + [f"- `{r['id']}` {r['model']} {r['method']} ×{r['compression']:g} seed {r['seed']}: {r['error']}" for r in failed] + [""]
    lines += ["Every run with every metric: [runs.csv](runs.csv)."]
    return "\n".join(lines) + "\n"
