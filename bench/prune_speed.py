"""pk.prune vs torch.nn.utils.prune.global_unstructured vs an approximate floor: time, peak memory, latency.

Global magnitude pruning to 90 % of stacks of Linear layers (~25 M and ~100 M parameters), with 1
and 2 intra-op threads. The *floor* is the least work any exact-ish global magnitude pruning must
do: a threshold from a sample of |w|, then one pass that writes the mask and zeroes the weights
(chunked on one thread, and whole-tensor at the process's threads; the faster is the floor). Each
(threads, size, tool) runs in a fresh subprocess, so peak memory (VmHWM, reset just before pruning)
is its own; forward latency (batch 64) is dense against pruned, interleaved by metrics.time_interleaved.

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

from results_md import write_section as write_results_section  # bench/ is on sys.path when a bench script runs

HERE = Path(__file__).resolve().parent
SIZES = {"25M": (2048, 6), "100M": (4096, 6)}  # (width, layers) of a Linear stack
SPARSITY = 0.9
REPEATS = 3
TOOLS = ("prunekit", "torch.nn.utils.prune", "floor-chunked", "floor-whole", "floor-bits")
FLOORS = ("floor-chunked", "floor-whole")  # the floor: plain torch ops
FLOOR_SAMPLE, FLOOR_CHUNK = 1 << 16, 1 << 18


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def floor_prune(weights: list, sparsity: float, chunked: bool, bits: bool = False) -> list:
    """Approximate global magnitude pruning with the least work: sampled threshold, one mask pass.

    ``bits`` uses the kernels pk.prune uses (compare into float, zero by ANDing the float's bits with
    the widened mask) instead of torch's slower bool-output compare and ``where``: the floor for the
    same kernels, so that prunekit's own kernel choice does not flatter its ratio.
    """
    import torch

    total = sum(w.numel() for w in weights)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        sample = torch.cat([w.view(-1)[torch.randint(w.numel(), (FLOOR_SAMPLE * w.numel() // total,), generator=gen)]
                            for w in weights]).abs_()
        threshold = sample.kthvalue(max(1, round(sparsity * sample.numel()))).values
        zero, masks = torch.zeros(()), []
        for w in weights:
            keep = torch.empty(w.shape, dtype=torch.bool)
            if bits:
                buf, wide = torch.empty(FLOOR_CHUNK), torch.empty(FLOOR_CHUNK, dtype=torch.int32)
                for c, kc in zip(w.view(-1).split(FLOOR_CHUNK), keep.view(-1).split(FLOOR_CHUNK)):
                    n = c.numel()
                    kc.copy_(torch.gt(c.abs(), threshold, out=buf[:n]))
                    c.view(torch.int32).bitwise_and_(wide[:n].copy_(kc.view(torch.uint8)).neg_())
            elif chunked:
                for c, kc in zip(w.view(-1).split(FLOOR_CHUNK), keep.view(-1).split(FLOOR_CHUNK)):
                    torch.gt(c.abs(), threshold, out=kc)
                    torch.where(kc, c, zero, out=c)
            else:
                torch.gt(w.abs(), threshold, out=keep)
                w.mul_(keep)
            masks.append(keep)
    return masks


def child(tool: str, size: str, threads: int) -> dict:
    """One measurement in this process: build, prune (timed, peak memory), time dense vs pruned forward."""
    import copy

    import torch
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    width, depth = SIZES[size]
    model = nn.Sequential(*[nn.Linear(width, width) for _ in range(depth)]).eval()
    params = sum(p.numel() for p in model.parameters())
    x = torch.randn(64, width)
    dense = copy.deepcopy(model)
    sys.path.insert(0, str(HERE.parent / "src"))
    import torch.nn.utils.prune as tprune

    import prunekit as pk
    from prunekit.metrics import time_interleaved
    from prunekit.threads import one_thread

    def run(target: nn.Module) -> None:
        if tool == "prunekit":
            pk.prune(target, SPARSITY)
        elif tool == "torch.nn.utils.prune":
            tprune.global_unstructured([(m, "weight") for m in target], pruning_method=tprune.L1Unstructured,
                                       amount=SPARSITY)
        else:
            with one_thread(tool != "floor-whole"):
                floor_prune([m.weight for m in target], SPARSITY, chunked=tool != "floor-whole",
                            bits=tool == "floor-bits")

    run(nn.Sequential(nn.Linear(64, 64)))  # first-call costs (kernel dispatch setup) out of the timing
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS counter (VmHWM)
    base = _rss_kib("VmRSS")
    start = time.perf_counter()
    run(model)
    wall = time.perf_counter() - start
    peak_extra = (_rss_kib("VmHWM") - base) * 1024
    with torch.no_grad():
        zeros = sum(int((m.weight == 0).sum()) for m in model)
    n = sum(m.weight.numel() for m in model)
    timing = time_interleaved({"dense": lambda: dense(x), "pruned": lambda: model(x)}, repeats=15, warmup=1)
    return {
        "tool": tool, "size": size, "threads": threads, "params": params, "model_bytes": params * 4,
        "prune_s": wall, "peak_extra_bytes": peak_extra, "sparsity": zeros / n,
        "exact": zeros == round(SPARSITY * n), "load": os.getloadavg()[0],
        "dense_forward_s": timing.median["dense"], "pruned_forward_s": timing.median["pruned"],
        "timer_threads": timing.threads,
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
    for key in ("prune_s", "peak_extra_bytes", "dense_forward_s", "pruned_forward_s", "load"):
        row[key] = statistics.median(r[key] for r in runs)
    row["exact"] = all(r["exact"] for r in runs)
    row["prune_s_all"] = [r["prune_s"] for r in runs]
    return row


def main() -> None:
    import torch

    rows, load_before = [], os.getloadavg()
    for threads in (1, 2):
        for size in SIZES:
            for tool in TOOLS:
                rows.append(_median_run(tool, size, threads))
                print({k: v for k, v in rows[-1].items() if k != "prune_s_all"}, flush=True)
    meta = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared with other jobs)",
        "torch": torch.__version__, "python": platform.python_version(),
        "command": "python bench/prune_speed.py", "batch": 64, "sparsity": SPARSITY, "repeats": REPEATS,
        "load_before": [round(v, 2) for v in load_before], "load_after": [round(v, 2) for v in os.getloadavg()],
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "prune_speed.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    text = table(rows, meta)
    print(text)
    write_section(text)


def write_section(text: str) -> None:
    """Replace this benchmark's section of bench/RESULTS.md (between its markers)."""
    path, start, end = HERE / "RESULTS.md", "<!-- prune_speed:start -->", "<!-- prune_speed:end -->"
    body = f"{start}\n## pk.prune vs torch.nn.utils.prune and the floor (issues 2, 11)\n\n{text}\n{end}"
    write_results_section(body, start, end, path)


def table(rows: list[dict], meta: dict) -> str:
    lines = [
        "| threads | size | tool | prune time (s) | vs torch.nn.utils.prune | vs floor | vs floor-bits "
        "| peak extra memory (MB) | × model size | exact count | forward dense → pruned (ms, batch 64) |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|:-:|---:|",
    ]
    by = {(r["threads"], r["size"], r["tool"]): r for r in rows}
    for r in rows:
        ref = by[(r["threads"], r["size"], "torch.nn.utils.prune")]
        floor = min(by[(r["threads"], r["size"], f)]["prune_s"] for f in FLOORS)
        bits = by[(r["threads"], r["size"], "floor-bits")]["prune_s"]
        lines.append(
            f"| {r['threads']} | {r['size']} ({r['params'] / 1e6:.1f} M) | {r['tool']} | {r['prune_s']:.3f} | "
            f"{ref['prune_s'] / r['prune_s']:.1f}× faster | {r['prune_s'] / floor:.2f}× | {r['prune_s'] / bits:.2f}× | "
            f"{r['peak_extra_bytes'] / 1e6:.0f} | {r['peak_extra_bytes'] / r['model_bytes']:.2f} | "
            f"{'yes' if r['exact'] else 'no'} | "
            f"{r['dense_forward_s'] * 1e3:.1f} → {r['pruned_forward_s'] * 1e3:.1f} |"
        )
    lines.append(
        f"\nGlobal magnitude to {meta['sparsity']:.0%} on stacks of 6 `Linear` layers; each cell is the median of "
        f"{meta['repeats']} fresh processes (first large call in each; a 64×64 layer is pruned first to take "
        "one-time dispatch setup out). *floor*: threshold from a 65 536-entry sample of |w|, then one pass writing "
        "the mask and zeroing the weights — chunked on one thread, or whole tensors at the given threads; "
        "'vs floor' divides by the faster of the two. It is approximate (its count is not exact). "
        "*floor-bits* is the chunked floor written with the kernels pk.prune uses (compare into a float buffer, "
        "zero by ANDing the weight's bits with the widened mask; torch's bool-output compare and `where` are 3-6× "
        "slower per chunk here), so 'vs floor-bits' is the ratio with prunekit's kernel choice taken out. "
        "pk.prune runs its chunked pass on all of torch's threads when the other cores are idle and on one when "
        "they are busy (`prunekit.threads.cores_busy`, read from the kernel's runnable count at the call). "
        "Peak extra memory = peak RSS during pruning minus RSS before (includes the boolean masks, 0.25 × the model). "
        f"Load average (1 min) before / after the run: {meta['load_before'][0]} / {meta['load_after'][0]} "
        "on 2 cores shared with other jobs, so absolute times are noisy; ratios are measured in the same run. "
        f"Machine: {meta['machine']}; torch {meta['torch']}; command: `{meta['command']}`."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], sys.argv[3], int(sys.argv[4]))))
    else:
        main()
