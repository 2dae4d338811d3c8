"""pk.prune vs torch.nn.utils.prune.global_unstructured: wall time, peak extra memory, forward latency.

Global magnitude pruning to 90 % of stacks of Linear layers (~25 M and ~100 M parameters), with 1
and 2 intra-op threads. Each (threads, size, tool) runs in a fresh subprocess, so peak memory
(VmHWM, reset just before pruning) is its own; the forward latency is the median of 15 runs at batch 64.

    python bench/prune_speed.py            # writes bench/results/prune_speed.json and a RESULTS.md section
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIZES = {"25M": (2048, 6), "100M": (4096, 6)}  # (width, layers) of a Linear stack
SPARSITY = 0.9
REPEATS = 3


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def child(tool: str, size: str, threads: int) -> dict:
    """One measurement in this process: build, time dense forward, prune, time pruned forward."""
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    width, depth = SIZES[size]
    model = nn.Sequential(*[nn.Linear(width, width) for _ in range(depth)]).eval()
    params = sum(p.numel() for p in model.parameters())
    x = torch.randn(64, width)
    dense_latency = _latency(model, x)
    sys.path.insert(0, str(HERE.parent / "src"))
    import torch.nn.utils.prune as tprune

    import prunekit as pk

    warm = nn.Sequential(nn.Linear(64, 64))  # first-call costs (kernel dispatch setup) out of the timing
    if tool == "prunekit":
        pk.prune(warm, SPARSITY)
    else:
        tprune.global_unstructured([(warm[0], "weight")], pruning_method=tprune.L1Unstructured, amount=SPARSITY)
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS counter (VmHWM)
    base = _rss_kib("VmRSS")
    start = time.perf_counter()
    if tool == "prunekit":
        pk.prune(model, SPARSITY)
    else:
        targets = [(m, "weight") for m in model]
        tprune.global_unstructured(targets, pruning_method=tprune.L1Unstructured, amount=SPARSITY)
    wall = time.perf_counter() - start
    peak_extra = (_rss_kib("VmHWM") - base) * 1024
    with torch.no_grad():
        achieved = sum(int((m.weight == 0).sum()) for m in model) / sum(m.weight.numel() for m in model)
    pruned_latency = _latency(model, x)
    return {
        "tool": tool, "size": size, "threads": threads, "params": params, "model_bytes": params * 4,
        "prune_s": wall, "peak_extra_bytes": peak_extra, "sparsity": achieved,
        "dense_forward_s": dense_latency, "pruned_forward_s": pruned_latency,
    }


def _median_run(tool: str, size: str, threads: int) -> dict:
    """Median of REPEATS fresh-process runs, metric by metric (the machine is shared and noisy)."""
    runs = []
    for _ in range(REPEATS):
        out = subprocess.run(
            [sys.executable, __file__, "--child", tool, size, str(threads)],
            capture_output=True, text=True, check=True,
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    row = dict(runs[0])
    for key in ("prune_s", "peak_extra_bytes", "dense_forward_s", "pruned_forward_s"):
        row[key] = statistics.median(r[key] for r in runs)
    row["prune_s_all"] = [r["prune_s"] for r in runs]
    return row


def main() -> None:
    import torch

    rows = []
    for threads in (1, 2):
        for size in SIZES:
            for tool in ("prunekit", "torch.nn.utils.prune"):
                rows.append(_median_run(tool, size, threads))
                print(rows[-1], flush=True)
    meta = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared with other jobs)",
        "torch": torch.__version__, "python": platform.python_version(),
        "command": "python bench/prune_speed.py", "batch": 64, "sparsity": SPARSITY, "repeats": REPEATS,
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "prune_speed.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    text = table(rows, meta)
    print(text)
    write_section(text)


def write_section(text: str) -> None:
    """Replace this benchmark's section of bench/RESULTS.md (between its markers)."""
    path, start, end = HERE / "RESULTS.md", "<!-- prune_speed:start -->", "<!-- prune_speed:end -->"
    body = f"{start}\n## pk.prune vs torch.nn.utils.prune (issue 2)\n\n{text}\n{end}"
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    if start in old:
        new = old[: old.index(start)] + body + old[old.index(end) + len(end):]
    else:
        head, _, rest = old.partition("\n")
        new = f"{head}\n\n{body}\n{rest}"
    path.write_text(new)


def table(rows: list[dict], meta: dict) -> str:
    lines = [
        "| threads | size | tool | prune time (s) | speed ratio | peak extra memory (MB) | × model size | forward before → after (ms, batch 64) | after/before |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    by = {(r["threads"], r["size"], r["tool"]): r for r in rows}
    for r in rows:
        ref = by[(r["threads"], r["size"], "torch.nn.utils.prune")]
        lines.append(
            f"| {r['threads']} | {r['size']} ({r['params'] / 1e6:.1f} M) | {r['tool']} | {r['prune_s']:.2f} | "
            f"{ref['prune_s'] / r['prune_s']:.1f}× | {r['peak_extra_bytes'] / 1e6:.0f} | "
            f"{r['peak_extra_bytes'] / r['model_bytes']:.2f} | "
            f"{r['dense_forward_s'] * 1e3:.1f} → {r['pruned_forward_s'] * 1e3:.1f} | "
            f"{r['pruned_forward_s'] / r['dense_forward_s']:.2f} |"
        )
    lines.append(
        f"\nGlobal magnitude to {meta['sparsity']:.0%} on stacks of 6 `Linear` layers; each cell is the median of "
        f"{meta['repeats']} fresh processes. Peak extra memory = peak RSS during pruning minus RSS before "
        "(prunekit's includes its boolean masks, 0.25 × the model). Machine: "
        f"{meta['machine']}; torch {meta['torch']}; command: `{meta['command']}`."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], sys.argv[3], int(sys.argv[4]))))
    else:
        main()
