"""GPU 2:4 sparsity (issue 12): Wanda and SparseGPT 2:4 language-model layers through pk.sparsify's
semi-structured path against dense, per layer shape and token count, on a CUDA GPU (compute capability >= 8.0).

Each Linear shape is pruned 2:4 by Wanda and by SparseGPT on the GPU from random calibration tokens (a
kernel's speed does not depend on which two of four weights survive; the calibration runs where a user's
would), cast to float16, and ``pk.sparsify(policy="time")`` times it dense against PyTorch's 2:4
semi-structured weight on inputs of 1 to 4096 tokens (medians of interleaved runs), checks the outputs
agree and records its choice. Without such a GPU it says why and writes nothing. Writes
bench/results/gpu_24.json and its section of bench/RESULTS.md.

    PYTHONPATH=src python bench/gpu_24.py [--quick]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
from torch import nn

import prunekit as pk
from results_md import write_section  # bench/ is on sys.path when a bench script runs

ROOT = Path(__file__).resolve().parents[1]
JSON = ROOT / "bench" / "results" / "gpu_24.json"
START, END = "<!-- gpu-24:start -->", "<!-- gpu-24:end -->"
SHAPES = {  # (out_features, in_features): bench/lm.py's gpt-8x160, and one block of a 7 B LLaMA
    "gpt-8x160 attn": (160, 160),
    "gpt-8x160 fc": (640, 160),
    "gpt-8x160 proj": (160, 640),
    "LLaMA-7B attn": (4096, 4096),
    "LLaMA-7B up/gate": (11008, 4096),
    "LLaMA-7B down": (4096, 11008),
}
TOKENS = (1, 16, 128, 512, 2048, 4096)
METHODS = ("wanda", "sparsegpt")


def gpu_problem() -> str | None:
    """Why this machine cannot run the semi-structured path, or None."""
    if not torch.cuda.is_available():
        return "no CUDA GPU is visible to torch"
    major, minor = torch.cuda.get_device_capability()
    return None if major >= 8 else f"{torch.cuda.get_device_name()} has compute capability {major}.{minor} (< 8.0)"


def pruned_layer(shape: tuple[int, int], method: str, device: str, dtype: torch.dtype, calib_tokens: int) -> nn.Module:
    """A seeded Linear of ``shape`` pruned 2:4 by ``method`` on ``calib_tokens`` random inputs, then cast."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(shape[1], shape[0])).to(device)
    x = torch.randn(calib_tokens, shape[1], device=device)
    pk.prune(model, structure="2:4", score=method, data=list(x.split(128)))
    return model.to(dtype)


def measure(shapes: dict, tokens: tuple[int, ...], methods: tuple[str, ...], device: str, dtype: torch.dtype,
            calib_tokens: int, repeats: int) -> list[dict]:
    """One row per (shape, method, tokens): pk.sparsify's dense and sparse medians and its choice."""
    rows = []
    for name, shape in shapes.items():
        for method in methods:
            start = time.perf_counter()
            model = pruned_layer(shape, method, device, dtype, calib_tokens)
            prune_s = time.perf_counter() - start
            for n in tokens:
                x = torch.randn(n, shape[1], device=device, dtype=dtype)
                choice = pk.sparsify(model, x, policy="time", repeats=repeats).sparsify_plan[0]
                rows.append({"layer": name, "shape": list(shape), "method": method, "tokens": n, "prune_s": prune_s,
                             "dense_ms": choice.dense_ms, "sparse_ms": choice.sparse_ms, "choice": choice.choice,
                             "reason": choice.reason})
                print(f"{name:18s} {method:9s} {n:5d} tokens: {choice.dense_ms} / {choice.sparse_ms} ms {choice.choice} "
                      f"{choice.reason}", flush=True)
    return rows


def markdown(res: dict) -> str:
    """Dense / 2:4 latency ratio per layer, method and token count; a cell without 2:4 says what ran."""
    tokens = sorted({r["tokens"] for r in res["rows"]})
    cell = {(r["layer"], r["method"], r["tokens"]): r for r in res["rows"]}
    lines = [START, "## GPU 2:4 semi-structured layers (issue 12, `bench/gpu_24.py`)", "",
             f"Device: {res['device']}, torch {res['torch']}, {res['dtype']}. Each Linear pruned 2:4 by the method "
             f"on {res['calib_tokens']} random calibration tokens, then `pk.sparsify(policy=\"time\")` on inputs of N "
             "tokens: dense time / 2:4 time (median of interleaved runs; > 1 means 2:4 is faster), and what "
             "pk.sparsify chose.", "",
             "| layer (out × in) | method | " + " | ".join(f"{n} tok" for n in tokens) + " |",
             "|---" * (len(tokens) + 2) + "|"]
    reasons = {}
    for layer, method in dict.fromkeys((r["layer"], r["method"]) for r in res["rows"]):
        cells = []
        for n in tokens:
            r = cell.get((layer, method, n))
            if r is None or r["sparse_ms"] is None:
                cells.append("–" if r is None else "no kernel")
                if r is not None:
                    reasons[f"{layer} ({method})"] = r["reason"]
                continue
            cells.append(f"{r['dense_ms'] / r['sparse_ms']:.2f}× ({r['choice']})")
        shape = next(r["shape"] for r in res["rows"] if r["layer"] == layer)
        lines.append(f"| {layer} ({shape[0]} × {shape[1]}) | {method} | " + " | ".join(cells) + " |")
    if reasons:
        lines += ["", "No kernel: " + "; ".join(f"{k}: {v}" for k, v in reasons.items()) + "."]
    return "\n".join(lines + ["", END])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two shapes and three token counts")
    ap.add_argument("--calib-tokens", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args()
    problem = gpu_problem()
    if problem:
        sys.exit(f"bench/gpu_24.py needs a CUDA GPU with compute capability >= 8.0: {problem}; nothing measured")
    shapes = dict(list(SHAPES.items())[::3]) if args.quick else SHAPES
    tokens = TOKENS[::2] if args.quick else TOKENS
    rows = measure(shapes, tokens, METHODS, "cuda", torch.float16, args.calib_tokens, args.repeats)
    res = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "dtype": "float16",
           "calib_tokens": args.calib_tokens, "repeats": args.repeats, "host": platform.node(), "rows": rows}
    JSON.write_text(json.dumps(res, indent=1))
    write_section(markdown(res), START, END)
    print(markdown(res))


if __name__ == "__main__":
    main()
