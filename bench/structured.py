"""Structured pruning benchmark: do fewer MACs give real CPU speed?  Writes JSON + a Markdown section.

Cases: the pretrained CIFAR-10 ResNet-56 (option-A shortcuts) pruned to 2x and 3x fewer MACs with
prunekit and with Torch-Pruning; a wide MLP and a Transformer encoder (heads + MLP width), where
dense GEMMs should turn MAC savings into near-ideal speedups. Latency: median of interleaved runs.

    PYTHONPATH=src /work/venv/bin/python bench/structured.py [--quick]
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the small architecture definitions live with the tests
from test_graph_models import EncoderBlock  # noqa: E402

import prunekit as pk  # noqa: E402
from prunekit import runtimes as rt_  # noqa: E402
from results_md import write_section  # bench/ is on sys.path when a bench script runs

CKPT = ROOT.parent / "shared" / "models" / "cifar10-resnet" / "resnet56-4bfd9763.th"
RESULTS = ROOT / "bench" / "RESULTS.md"
START, END = "<!-- structured:start -->", "<!-- structured:end -->"
DEPTH_START, DEPTH_END = "<!-- structured-depth:start -->", "<!-- structured-depth:end -->"


def resnet56() -> nn.Module:
    model = pk.models.create("resnet56")
    if CKPT.is_file():
        pk.models.load_weights(model, CKPT)
    return model.eval()


def prunekit_at(model: nn.Module, x: torch.Tensor, target: float, **kw) -> tuple[nn.Module, float]:
    model = copy.deepcopy(model)
    t0 = time.perf_counter()
    pk.prune(model, structure="channels", example_inputs=x, macs_reduction=target, **kw)
    small = pk.compact(model, x)
    return small, time.perf_counter() - t0


def torch_pruning_at(model: nn.Module, x: torch.Tensor, target: float) -> tuple[nn.Module | None, float, str]:
    """Torch-Pruning, magnitude (L2) importance, stepped until the MAC target is met.

    Its graph does not map the option-A zero padding, so pruning the residual stream gives a model that
    fails to run; we report that, then prune what it can do safely (each block's inner conv1 width).
    """
    import torch_pruning as tp

    note = ""
    trial = copy.deepcopy(model)
    try:
        tp.pruner.MagnitudePruner(trial, x, importance=tp.importance.MagnitudeImportance(p=2),
                                  pruning_ratio=0.5, ignored_layers=[trial.linear]).step()
        trial(x)
    except Exception as err:  # noqa: BLE001  (recorded, not hidden)
        note = f"unrestricted run breaks the model: {type(err).__name__}: {str(err)[:80]}"
    model = copy.deepcopy(model)
    keep_out = [m for n, m in model.named_modules() if n == "conv1" or n.endswith("conv2")] + [model.linear]
    dense, _ = tp.utils.count_ops_and_params(model, x)
    t0 = time.perf_counter()
    pruner = tp.pruner.MagnitudePruner(model, x, importance=tp.importance.MagnitudeImportance(p=2),
                                       pruning_ratio=0.95, iterative_steps=95, ignored_layers=keep_out)
    for _ in range(95):
        pruner.step()
        if dense / tp.utils.count_ops_and_params(model, x)[0] >= target:
            return model, time.perf_counter() - t0, note
    return None, time.perf_counter() - t0, note + "; target not reached with inner widths only"


def case(prefix: str, models: dict[str, nn.Module], prune_s: dict[str, float], shape1: tuple,
         repeats: tuple[int, int], runtimes: list[str]) -> list[dict]:
    """Rows for ``models`` (the first one is the dense baseline), timed side by side in every runtime."""
    base_name = next(iter(models))
    x1 = torch.randn(shape1)
    base = pk.summary(models[base_name], x1)
    rows = []
    for name, model in models.items():
        s = pk.summary(model, x1)
        rows.append({"model": f"{prefix} {name}", "params": s.params, "macs": s.macs, "mac_ratio": base.macs / s.macs,
                     "prune_s": prune_s.get(name), "ms": {}, "speedup": {}})
    for batch, reps in zip((1, 64), repeats):
        x = torch.randn((batch,) + tuple(shape1[1:]))
        for rt in runtimes:
            t = rt_.latencies({n: rt_.build(m, x, rt) for n, m in models.items()}, x, reps).median
            for row, name in zip(rows, models):
                row["ms"][f"{rt} b{batch}"] = t[name] * 1e3
                row["speedup"][f"{rt} b{batch}"] = t[base_name] / t[name]
    return rows


def conv_probe(repeats: int) -> list[dict]:
    """One 3x3 conv per ResNet-56 stage shape at full, 1/sqrt(2) and 1/sqrt(3) width (eager, batch 1): how
    time follows MACs for a single layer, which bounds what any channel pruning of this model gains there."""
    rows = []
    for hw, full in ((32, 16), (16, 32), (8, 64)):
        convs = {w: nn.Conv2d(w, w, 3, padding=1, bias=False).eval()
                 for w in (full, round(full / 2 ** 0.5), round(full / 3 ** 0.5))}
        t = {w: rt_.latencies({"c": c}, torch.randn(1, w, hw, hw), repeats).median["c"] for w, c in convs.items()}
        for w in convs:
            rows.append({"shape": f"{full}ch {hw}x{hw}", "width": w, "us": t[w] * 1e6,
                         "mac_ratio": full ** 2 / w ** 2, "speedup": t[full] / t[w]})
    return rows


def resnet_case(quick: bool, runtimes: list[str]) -> tuple[list[dict], list[str]]:
    x = torch.randn(1, 3, 32, 32)
    dense = resnet56()
    models, prune_s, notes = {"dense": dense}, {}, []
    for target in (2.0, 3.0):
        for scope, round_to in (("layer", None), ("global", None), ("layer", 8)):
            name = f"prunekit {target:.0f}x ({scope}{', round_to=8' if round_to else ''})"
            models[name], prune_s[name] = prunekit_at(dense, x, target, scope=scope, round_to=round_to or 1)
        tp_model, secs, note = torch_pruning_at(dense, x, target)
        if note and note not in notes:
            notes.append(note)
        if tp_model is not None:
            models[f"torch-pruning {target:.0f}x"], prune_s[f"torch-pruning {target:.0f}x"] = tp_model, secs
    rows = case("resnet56", models, prune_s, (1, 3, 32, 32), (10, 3) if quick else (100, 12), runtimes)
    return rows, notes


def depth_case(repeats: tuple[int, int], runtimes: list[str]) -> list[dict]:
    """ResNet-56 at 2x and 3x fewer MACs by channels, by whole blocks, and by both (half the log-target each)."""
    x = torch.randn(1, 3, 32, 32)
    dense = resnet56()
    models, prune_s = {"dense": dense}, {}
    for target in (2.0, 3.0):
        for label, kw in (("channels (layer)", {"structure": "channels", "scope": "layer"}),
                          ("blocks (block-influence)", {"structure": "blocks", "score": "block-influence"}),
                          ("blocks+channels (depth_share 0.5)", {"structure": ["blocks", "channels"]})):
            name = f"prunekit {target:.0f}x {label}"
            model = copy.deepcopy(dense)
            t0 = time.perf_counter()
            pk.prune(model, example_inputs=x, macs_reduction=target, **kw)
            models[name] = pk.compact(model, x)
            prune_s[name] = time.perf_counter() - t0
            if isinstance(kw["structure"], list):
                print(name, pk.structures.allocation(model, x), flush=True)
    return case("resnet56", models, prune_s, (1, 3, 32, 32), repeats, runtimes)


def depth_markdown(rows: list[dict], meta: dict) -> str:
    lines = _table(rows)
    return (f"{DEPTH_START}\n## Depth pruning: whole blocks vs channels, MACs vs measured CPU latency (issue 14)\n\n"
            f"Machine: {meta['machine']}; torch {meta['torch']}, {meta['threads']} intra-op thread(s); load average "
            f"{meta['load']} at the start (the machine is shared: ratios are medians of interleaved runs, but a "
            "loaded machine still blurs them). Pretrained ResNet-56, random CIFAR-shaped inputs (latency only; "
            "block scores computed on those random inputs, no accuracy here). Pruned rows: speedup over dense in the "
            "same runtime and batch, with speedup ÷ MAC ratio (rounded down) in brackets; target ≥ 0.80 at batch 1 "
            f"for 2x. `blocks+channels` removes blocks to √target, then channels to the target.\n\n"
            f"Command: `{meta['command']}`\n\n" + "\n".join(lines) + f"\n{DEPTH_END}\n")


def gemm_cases(quick: bool, runtimes: list[str]) -> list[dict]:
    """Wide dense layers: the MAC savings should show up almost one to one."""
    mlp = nn.Sequential(nn.Linear(1024, 4096), nn.ReLU(), nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, 10)).eval()
    small, secs = prunekit_at(mlp, torch.randn(1, 1024), 2.0)
    rows = case("mlp", {"dense": mlp, "prunekit 2x": small}, {"prunekit 2x": secs}, (1, 1024),
                (20, 5) if quick else (100, 30), runtimes)
    torch.manual_seed(0)
    tf = nn.Sequential(nn.Linear(16, 256), *(EncoderBlock(256, 8, 1024, handwritten=True) for _ in range(4)),
                       nn.LayerNorm(256), nn.Linear(256, 10)).eval()
    xt = torch.randn(1, 64, 16)
    pruned = copy.deepcopy(tf)
    t0 = time.perf_counter()
    pk.prune(pruned, 0.5, structure="heads", example_inputs=xt)
    pk.prune(pruned, 0.5, structure="channels", example_inputs=xt)
    small = pk.compact(pruned, xt)
    secs = time.perf_counter() - t0
    name = "prunekit heads 50% + MLP 50%"
    return rows + case("transformer", {"dense": tf, name: small}, {name: secs}, (1, 64, 16),
                       (20, 3) if quick else (60, 8), runtimes)


def _floor2(x: float) -> float:
    """Rounded down to 2 decimals, so a ratio just under the 0.80 target never prints as 0.80."""
    return math.floor(x * 100) / 100


def _table(rows: list[dict]) -> list[str]:
    """Markdown table lines: dense rows in ms, pruned rows as speedup (speedup ÷ MAC ratio, rounded down)."""
    cols = list(rows[0]["ms"])
    lines = ["| model | params | MACs | MAC ratio | prune+compact s | " + " | ".join(cols) + " |",
             "|---|---:|---:|---:|---:|" + "---:|" * len(cols)]
    for r in rows:
        p = "" if r["prune_s"] is None else f"{r['prune_s']:.1f}"
        cells = [f"{r['ms'][c]:.2f} ms" if r["mac_ratio"] == 1.0 else
                 f"×{r['speedup'][c]:.2f} ({_floor2(r['speedup'][c] / r['mac_ratio']):.2f})" for c in cols]
        lines.append(f"| {r['model']} | {r['params']:,} | {r['macs']:,} | {r['mac_ratio']:.2f} | {p} | "
                     + " | ".join(cells) + " |")
    return lines


def markdown(rows: list[dict], probe: list[dict], notes: list[str], meta: dict) -> str:
    cols = list(rows[0]["ms"])
    lines = _table(rows)
    pruned = [r for r in rows if r["model"].startswith("resnet56 prunekit")]
    verdict = "; ".join(f"{c}: {sum(r['speedup'][c] >= 0.8 * r['mac_ratio'] for r in pruned)} of {len(pruned)}"
                        for c in cols)
    notes_md = (f"- Target (measured speedup ≥ 0.8 × MAC ratio), prunekit ResNet-56 rows meeting it — {verdict}.\n"
                "- Torch-Pruning rows prune only each block's inner width (conv1), the part of this model it "
                "can prune safely; magnitude (L2) importance, uniform ratio, stepped until the MAC target.\n")
    notes_md += "".join(f"- Torch-Pruning on the same model, residual stream included: {n}\n" for n in notes)
    probe_md = ("| conv (3x3, batch 1) | width | MAC ratio | µs | speedup (÷ MAC ratio) |\n|---|---:|---:|---:|---:|\n"
                + "\n".join(f"| {p['shape']} | {p['width']} | {p['mac_ratio']:.2f} | {p['us']:.0f} | "
                            f"×{p['speedup']:.2f} ({p['speedup'] / p['mac_ratio']:.2f}) |" for p in probe))
    effs = [p["speedup"] / p["mac_ratio"] for p in probe if p["mac_ratio"] > 1]
    lo, hi = min(effs), max(effs)
    return (f"{START}\n## Structured pruning: MACs vs measured CPU latency (issue 5)\n\n"
            f"Machine: {meta['machine']}; torch {meta['torch']}, {meta['threads']} intra-op thread(s); "
            f"load average {meta['load']} at the start. Every model runs in each runtime (see "
            "`prunekit.runtimes`: eager PyTorch; TorchScript traced + frozen, which folds BatchNorm; ONNX Runtime "
            "CPU), dense and pruned alike; models are interleaved in every round and the median of the repeats "
            "is kept. Dense rows give milliseconds; pruned rows give the speedup over dense in the same runtime "
            "and batch, with speedup ÷ MAC ratio (rounded down) in brackets (target ≥ 0.80). MACs are `pk.summary` counts "
            "(conv/linear only). No accuracy: CIFAR-10 is not available offline, and nothing is fine-tuned.\n\n"
            f"Command: `{meta['command']}`\n\n{chr(10).join(lines)}\n\n{notes_md}\n"
            "Why batch 1 falls short: single conv layers of ResNet-56, timed alone (eager, batch 1). Cut to "
            f"1/√2 or 1/√3 of their width, they reach only {lo:.2f}–{hi:.2f} of their MAC ratio: each call has a "
            "fixed cost (im2col buffers, GEMM setup, dispatch) that channel pruning cannot remove, and the whole "
            "model (55 convs plus BatchNorm, ReLU and adds) inherits it.\n\n"
            f"{probe_md}\n{END}\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats (smoke run)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--depth", action="store_true", help="only the depth-pruning rows (issue 14)")
    ap.add_argument("--repeats", nargs=2, type=int, metavar=("B1", "B64"), help="timed rounds at batch 1 and 64")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    meta = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "torch": torch.__version__,
            "threads": args.threads, "load": f"{os.getloadavg()[0]:.1f}",
            "command": "PYTHONPATH=src python bench/structured.py" + (" --quick" * args.quick)}
    runtimes = rt_.available()
    if args.depth:
        meta["command"] += " --depth" + (f" --repeats {args.repeats[0]} {args.repeats[1]}" if args.repeats else "")
        rows = depth_case(tuple(args.repeats or ((10, 3) if args.quick else (100, 12))), runtimes)
        out = ROOT / "bench" / "results" / "structured_depth.json"
        out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
        section = depth_markdown(rows, meta)
        write_section(section, DEPTH_START, DEPTH_END, RESULTS)
        print(section)
        return
    rows, notes = resnet_case(args.quick, runtimes)
    rows += gemm_cases(args.quick, runtimes)
    probe = conv_probe(20 if args.quick else 200)
    out = ROOT / "bench" / "results" / "structured.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": rows, "conv_probe": probe, "notes": notes}, indent=1))
    section = markdown(rows, probe, notes, meta)
    write_section(section, START, END, RESULTS)
    print(section)


if __name__ == "__main__":
    main()
