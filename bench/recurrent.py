"""Benchmark: LSTM / GRU and attention input projections pruned by default (issue 13, items 6-7).

For a Transformer encoder (the model of bench/sparse.py) and 2-layer LSTM / GRU language-model-sized
stacks: pk.save file size against a dense torch.save(state_dict), pk.summary compression and MAC
reduction, pk.prune time, and what pk.sparsify decides at 90 % (magnitude, same fraction per layer).
Writes bench/results/recurrent.json and the "Recurrent and attention weights" section of RESULTS.md.

    PYTHONPATH=src python bench/recurrent.py [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from torch import nn

import prunekit as pk
from sparse import encoder, file_sizes, pruned
from results_md import write_section  # bench/ is on sys.path when a bench script runs

HERE = Path(__file__).parent
BEGIN, END = "<!-- recurrent:begin -->", "<!-- recurrent:end -->"


class Stack(nn.Module):
    """Two recurrent layers (256 -> 512) and a 256-way head over every step."""

    def __init__(self, cell: type):
        super().__init__()
        self.rnn = cell(256, 512, num_layers=2, batch_first=True)
        self.head = nn.Linear(512, 256)

    def forward(self, x):
        return self.head(self.rnn(x)[0])


MODELS = {
    "Transformer enc. 4x(d256, ff1024), seq 16": (encoder, (8, 16, 256)),
    "LSTM 2x512 over 256, seq 32": (lambda: Stack(nn.LSTM), (8, 32, 256)),
    "GRU 2x512 over 256, seq 32": (lambda: Stack(nn.GRU), (8, 32, 256)),
}


def measure(name: str, make, shape) -> dict:
    x = torch.randn(shape)
    sizes = file_sizes(make, name)
    counts = []
    for row in sizes:
        s = pk.summary(pruned(make, row["sparsity"]), x)
        counts.append({"sparsity": row["sparsity"], "compression": s.compression, "mac_reduction": s.speedup})
    times = []
    for _ in range(3):
        model = make()
        start = time.perf_counter()
        pk.prune(model, 0.9, scope="layer")
        times.append(time.perf_counter() - start)
    fast = pk.sparsify(pruned(make, 0.9), x, repeats=10)
    plan = fast.sparsify_plan
    return {"model": name, "sizes": sizes, "counts": counts, "prune_s": statistics.median(times),
            "sparsify": {"dense_ms": plan.dense_ms, "sparse_ms": plan.sparse_ms,
                         "layers": [{"name": c.name, "kind": c.kind, "choice": c.choice, "reason": c.reason}
                                    for c in plan]}}


def report(results: list[dict], meta: dict) -> str:
    out = ["## Recurrent and attention weights (issue 13, bench/recurrent.py)", "",
           f"Machine: {meta['machine']}; torch {meta['torch']}; {meta['threads']} torch thread(s); total "
           f"{meta['seconds']:.0f} s. Magnitude pruning, same fraction in every prunable tensor, which now "
           "includes LSTM/GRU `weight_ih_l*`/`weight_hh_l*` and MultiheadAttention `in_proj_weight`.", "",
           "| model | sparsity | pk.save fp32 / dense | fp16 / dense | compression | MAC reduction |",
           "|---|---:|---:|---:|---:|---:|"]
    for r in results:
        for size, count in zip(r["sizes"], r["counts"]):
            out.append(f"| {r['model']} | {size['sparsity']:.0%} | {size['fp32_ratio']:.3f} | {size['fp16_ratio']:.3f} "
                       f"| {count['compression']:.2f}x | {count['mac_reduction']:.2f}x |")
    out += ["", "| model | pk.prune 90 % (s, median of 3) | pk.sparsify at 90 %, batch 8 |", "|---|---:|---|"]
    for r in results:
        sp = r["sparsify"]
        kept = [f"{l['name']}: {l['choice']} {l['reason']}" for l in sp["layers"] if l["kind"] in ("LSTM", "GRU", "MultiheadAttention")]
        whole = "" if sp["dense_ms"] is None else f"; whole model {sp['dense_ms']:.2f} ms dense vs {sp['sparse_ms']:.2f} ms"
        out.append(f"| {r['model']} | {r['prune_s']:.3f} | {kept[0] if kept else '-'}{whole} |")
    out += ["", "Before this change the same encoder's 90 % file was 0.350 of dense (table of bench/sparse.py: "
            "`in_proj_weight`, a quarter of the weights, stayed dense); recurrent layers were not prunable at all.",
            "Recurrent and attention layers stay dense in `pk.sparsify`: torch runs them with fused dense kernels, "
            "and the plan says so per layer.",
            "File sizes, compression and MAC reductions are exact counts; the seconds and milliseconds depend on the "
            "machine's load, stated above."]
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    results = [measure(name, make, shape) for name, (make, shape) in MODELS.items()]
    load = os.getloadavg()[0]
    meta = {"machine": f"{platform.machine()} Linux, {os.cpu_count()} CPU cores shared with other work (1-min load "
                       f"{load:.1f} at end)", "torch": torch.__version__, "threads": args.threads,
            "seconds": time.perf_counter() - start}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "recurrent.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    write_section(f"{BEGIN}\n{report(results, meta)}{END}", BEGIN, END, HERE / "RESULTS.md")
    print(report(results, meta))


if __name__ == "__main__":
    main()
