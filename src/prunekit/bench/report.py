"""Reports from a benchmark directory: ``runs.csv``, PNG tradeoff plots and ``report.md``.

Every curve is the mean over seeds with ± one standard deviation, one panel per dataset/model pair,
every method (the random baseline included). Each pair is judged by its task metric (top-1 accuracy,
or perplexity for a language model, lower being better; see :mod:`prunekit.bench.task_metric`). The
best method at each compression is chosen on the validation metric; the test metric is only reported,
never used to choose.
"""
from __future__ import annotations

import csv
import json
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from ..errors import PruneError
from . import task_metric
from .plots import PLOTS, plot
from .speed import FLOOR_QUANTILE, above_floor, noise_floor
from .store import DB_NAME, Store
from .task_metric import TaskMetric, of_pair


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


def _fmt(values: list[float], metric: TaskMetric) -> str:
    """As the metric is shown (top-1 in percent), mean ± std over seeds; a single seed has no spread to show."""
    m, s = mean_std([metric.shown(v) for v in values])
    return f"{m:.2f}" if len(values) == 1 else f"{m:.2f} ± {s:.2f}"


def seeds_text(n: int) -> str:
    """How many seeds a cell stands for, in words."""
    return "1 seed" if n == 1 else f"mean ± std over {n} seeds"


def floors(finished: list[dict]) -> dict[tuple[str, str], float | None]:
    """(dataset, model) → noise floor of its measured speedups (dense vs dense twin, every run)."""
    ratios: dict = defaultdict(list)
    for r in finished:
        ratios[(r["dataset"], r["model"])].append(r["metrics"].get("noise_ratio"))
    return {p: noise_floor(v for v in vs if v is not None) for p, vs in ratios.items()}


def speedup_text(runs: list[dict], floor: float | None) -> str:
    """A measured speedup as it should be read: 1.00× by construction for a dense form, else the
    median with the quartiles of its per-round ratios, and whether it stands above the noise floor."""
    if all(m.get("speedup_by_construction") for m in runs):
        return "1.00× (dense, by construction)"
    x = statistics.median(m["measured_speedup"] for m in runs)
    q1 = statistics.median(m.get("measured_speedup_q1", x) for m in runs)
    q3 = statistics.median(m.get("measured_speedup_q3", x) for m in runs)
    return f"{x:.2f}× [{q1:.2f}–{q3:.2f}]" + ("" if above_floor(x, floor) else " (inside noise floor)")


def best_table(pair: tuple[str, str], methods: dict[str, dict[float, list[dict]]]) -> list[str]:
    """Markdown rows: the test metric of every method at each compression, the best chosen on validation
    (its validation metric and the runner-up's beside it)."""
    names, metric = sorted(methods), of_pair(methods)
    ratios = sorted({c for m in methods.values() for c in m})
    head = f"| compression | best (chosen on val) | val {metric.name}{metric.direction}: best / next | "
    lines = [head + " | ".join(names) + " |",
             "|---:|---|---|" + "---:|" * len(names)]
    for c in ratios:
        cells = [_fmt([r[metric.reported] for r in methods[n][c]], metric) if methods[n].get(c) else "—"
                 for n in names]
        ranked = best_on_val(methods, c)
        val = " / ".join(f"{metric.shown(v):.2f}" for _, v in ranked[:2])
        lines.append(f"| {c:g} | **{ranked[0][0] if ranked else ''}** | {val} | " + " | ".join(cells) + " |")
    return lines


def best_on_val(methods: dict[str, dict[float, list[dict]]], c: float) -> list[tuple[str, float]]:
    """(method, mean validation metric) at compression ``c``, best first (lowest perplexity, highest
    top-1; ties: name order)."""
    metric = of_pair(methods)
    vals = [(n, statistics.fmean(r[metric.select_on] for r in methods[n][c]))
            for n in sorted(methods) if methods[n].get(c)]
    return metric.best_first(vals)


def _dense(store: Store) -> dict[tuple[str, str], tuple[float, float, int]]:
    """(dataset, model) → mean, std and count over seeds of the dense model's test metric."""
    by_pair: dict = defaultdict(list)
    for b in store.bases():
        if b["status"] == "done":
            by_pair[(b["dataset"], b["model"])].append(b["metrics"][f"test_{task_metric.of(b['metrics']).key}"])
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
    grouped, noise = groups(finished), floors(finished)
    if grouped:
        for name, (key, label) in PLOTS.items():
            plot(grouped, key, label, directory / name, dense, noise)
    failed = [r for r in runs if r["status"] == "failed"]
    text = _markdown(config, counts, dense, grouped, finished, bases, failed, sessions, noise)
    (directory / "report.md").write_text(text)
    return directory / "report.md"


def _largest_batch(metrics: dict) -> int:
    sizes = [int(k[len("measured_speedup_b"):]) for k in metrics
             if k.startswith("measured_speedup_b") and k[len("measured_speedup_b"):].isdigit()]
    return max(sizes) if sizes else 1


def deploy_table(methods: dict[str, dict[float, list[dict]]], structures: dict[str, str],
                 floor: float | None) -> list[str]:
    """Markdown rows: per method and compression, the test metric beside what the deployed model costs
    (file, nonzero MACs, latency at the largest batch) and the measured speedup with its spread."""
    some = next(iter(next(iter(methods.values())).values()))[0]
    b, metric = _largest_batch(some), of_pair(methods)
    lines = [f"| method | compression | structure | deployed as | test {metric.name} | file kB (dense) | MACs (dense) "
             f"| latency b{b} ms (dense) | measured speedup [quartiles] |",
             "|---|---:|---|---|---:|---:|---:|---:|---|"]
    for method in sorted(methods):
        for c, ms in sorted(methods[method].items()):
            forms = Counter(m.get("deployed_as") or m.get("deploy_form", "?") for m in ms)
            med = lambda k: statistics.median(m[k] for m in ms)  # noqa: E731
            lines.append(
                f"| {method} | {c:g} | {structures.get(method) or '?'} | {', '.join(f'{f} ×{n}' for f, n in forms.items())} "
                f"| {_fmt([m[metric.reported] for m in ms], metric)} | {med('file_bytes') / 1e3:,.1f} ({med('dense_file_bytes') / 1e3:,.1f}) "
                f"| {med('nonzero_macs'):,.0f} ({med('macs'):,.0f}) "
                f"| {1e3 * med(f'latency_b{b}_s'):.3f} ({1e3 * med(f'dense_latency_b{b}_s'):.3f}) "
                f"| {speedup_text(ms, floor)} |")
    return lines


def _judged_by(grouped: dict) -> str:
    """The report's opening words on what its numbers are (top-1 accuracy, perplexity or both)."""
    metrics = sorted({of_pair(methods) for methods in grouped.values()}, key=lambda m: m.lower_is_better)
    if metrics in ([], [task_metric.TOP1]):
        return "Accuracy is test top-1 (%)"
    return "Numbers are " + " and ".join(m.axis for m in metrics)


def _forms(finished: list) -> str:
    counts = Counter(r["metrics"].get("deploy_form", "?") for r in finished)
    return ", ".join(f"{form} ×{n}" for form, n in counts.most_common())


def _markdown(config: dict, counts: dict, dense: dict, grouped: dict, finished: list, bases: list, failed: list,
              sessions: list, noise: dict) -> str:
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
             f"{_judged_by(grouped)} after fine-tuning, {seeds_text(len(config.get('seeds') or [0]))}; the "
             "fine-tuning checkpoint and the best method are chosen on the validation split, never on test. "
             "Measured speedup: median latency of the dense model over the pruned model as deployed, timed "
             "side by side with an identical dense copy in the same process at the largest batch size, with "
             "the quartiles of the per-round ratios; a deployed form that computes the dense model (zeros "
             "multiplied) is 1.00× by construction. The noise floor ×f is what dense vs dense reads "
             f"({int(100 * FLOOR_QUANTILE)}% of runs fall in [1/f, f]); a speedup inside it is no measured "
             f"effect (forms used: {_forms(finished)}).", ""]
    if grouped:
        lines += [f"![{n}]({n})" for n in PLOTS] + [""]
    for pair in sorted(grouped):
        d = dense.get(pair)
        lines += [f"## {pair[0]} / {pair[1]}", ""]
        if d:
            metric = of_pair(grouped[pair])
            spread = (f" ± {metric.shown(d[1]):.2f}{metric.unit} over {d[2]} seeds" if d[2] > 1
                      else f"{metric.unit} (1 seed)")
            lines += [f"Dense test {metric.name}: {metric.shown(d[0]):.2f}{spread}.", ""]
        floor = noise.get(pair)
        lines += best_table(pair, grouped[pair]) + [""]
        structures = {r["method"]: r.get("structure") for r in finished if (r["dataset"], r["model"]) == pair}
        lines += [f"Noise floor of measured speedups: ×{floor:.3f}." if floor else "Noise floor: not measured.", ""]
        lines += deploy_table(grouped[pair], structures, floor) + [""]
    if failed:
        lines += ["## Failed runs", ""] + [f"- `{r['id']}` {r['model']} {r['method']} ×{r['compression']:g} seed {r['seed']}: {r['error']}" for r in failed] + [""]
    lines += ["Every run with every metric: [runs.csv](runs.csv)."]
    return "\n".join(lines) + "\n"
