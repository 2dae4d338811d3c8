"""Accuracy after depth, width and width+depth pruning (issue 14): zoo ResNets on Fashion-MNIST.

Per model and seed: train a base on a training subset (cached in runs/depth-fashion-bases, which git
ignores), then for each method and MAC target prune a copy, compact it, fine-tune it the same short way
(same steps, batches and learning rate for every method), and measure test accuracy. Writes
bench/results/depth_fashion.json and a RESULTS.md section.

    PYTHONPATH=src python bench/depth_fashion.py [--models resnet20 resnet56] [--seeds 0 1 2] [--threads 1]
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from torch.utils.data import Subset

import prunekit as pk
from results_md import write_section  # bench/ is on sys.path when a bench script runs

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "runs" / "depth-fashion-bases"
RESULTS = ROOT / "bench" / "RESULTS.md"
# width and width+depth prune channels the same way (L1, the same ratio in every layer), so the only
# difference between them is the blocks removed first (global-scope L1 fell to chance at 3x in an earlier short run)
METHODS = {
    "depth (blocks, block-influence)": {"structure": "blocks", "score": "block-influence"},
    "width (channels, l1, layer)": {"structure": "channels", "score": "l1", "scope": "layer"},
    "width+depth (l1 layer, depth_share 0.5)": {"structure": ["blocks", "channels"], "score": "l1", "scope": "layer"},
}


def base(name: str, seed: int, train, args) -> tuple[torch.nn.Module, float | None]:
    """The trained base for (model, seed) and its training seconds (None when read from the cache)."""
    path = CACHE / f"{name}-s{seed}-n{args.train_n}-e{args.epochs}.safetensors"
    model = pk.models.create(name, num_classes=10, in_channels=1, input_size=(28, 28))
    if path.is_file():
        from safetensors.torch import load_file

        model.load_state_dict(load_file(path))
        return model.eval(), None
    t0 = time.perf_counter()
    pk.train(model, train, epochs=args.epochs, seed=seed, batch_size=64, lr=0.05, momentum=0.9,
             weight_decay=5e-4, lr_schedule="cosine", progress=False)
    seconds = time.perf_counter() - t0
    print(f"{name} seed {seed}: base trained in {seconds:.0f} s", flush=True)
    from safetensors.torch import save_file

    CACHE.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    return model.eval(), seconds


def prune_row(dense: torch.nn.Module, kw: dict, target: float, seed: int, data: dict, args) -> dict:
    """Prune a copy of ``dense`` to ``target`` x fewer MACs, compact, fine-tune, and measure it."""
    t0 = time.perf_counter()
    x = data["calib"]
    model = copy.deepcopy(dense)
    pk.prune(model, example_inputs=x, macs_reduction=target, seed=seed, **kw)
    removed = len(pk.structures.allocation(model, x).blocks_removed)
    small = pk.compact(model.eval(), x)  # outputs equal the masked model's; cheaper to fine-tune
    before = pk.evaluate(small, data["test_before"])["top1"]
    pk.finetune(small, "continue", data["train"], steps=args.ft_steps, seed=seed, batch_size=64, lr=0.01,
                lr_schedule="cosine", progress=False)
    return {"top1_before_ft": before, "top1": pk.evaluate(small, data["test"])["top1"],
            "macs_ratio": data["dense_macs"] / pk.summary(small, x).macs, "blocks_removed": removed,
            "seconds": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["resnet20"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--targets", nargs="+", type=float, default=[2.0, 3.0])
    ap.add_argument("--train-n", type=int, default=12000, help="base training images (the first N of the train split)")
    ap.add_argument("--epochs", type=int, default=2, help="base training epochs over --train-n")
    ap.add_argument("--ft-steps", type=int, default=50, help="fine-tuning SGD steps x 64 images, every method")
    ap.add_argument("--test-n", type=int, default=10000, help="test images for dense and fine-tuned accuracy")
    ap.add_argument("--before-n", type=int, default=2000, help="test images for accuracy before fine-tuning")
    ap.add_argument("--calib-n", type=int, default=64, help="training images for Block Influence and tracing")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)")
    ap.add_argument("--data-dir", default="/work/shared/datasets/fashion-mnist")
    ap.add_argument("--name", default="depth-fashion",
                    help="results name: bench/results/NAME.json (- as _) and its own RESULTS.md section")
    ap.add_argument("--markdown-only", action="store_true", help="rewrite the RESULTS.md section from the JSON")
    args = ap.parse_args()
    if args.markdown_only:
        saved = json.loads(_json(args.name).read_text())
        write_markdown(saved["rows"], saved["meta"], argparse.Namespace(**{**vars(args), **saved["meta"]["args"]}))
        return
    torch.set_num_threads(args.threads)
    meta = {"machine": f"{platform.machine()} {os.cpu_count()}-core {_cpu()}", "torch": torch.__version__,
            "threads": args.threads, "load_start": os.getloadavg(), "args": vars(args), "base_seconds": {}}
    t_start = time.perf_counter()
    train_full, _, test_full = pk.data.load("fashion-mnist", args.data_dir, val_fraction=0.1, seed=0)
    data = {"train": Subset(train_full, range(args.train_n)), "test": Subset(test_full, range(args.test_n)),
            "test_before": Subset(test_full, range(args.before_n)),
            "calib": torch.stack([train_full[i][0] for i in range(args.calib_n)])}
    rows = []
    for name in args.models:
        for seed in args.seeds:
            dense, seconds = base(name, seed, data["train"], args)
            meta["base_seconds"][f"{name}-s{seed}"] = seconds
            acc = pk.evaluate(dense, data["test"])["top1"]
            rows.append({"model": name, "seed": seed, "method": "dense", "target": 1.0, "top1": acc, "macs_ratio": 1.0})
            print(f"{name} seed {seed} dense {acc:.4f}", flush=True)
            data["dense_macs"] = pk.summary(dense, data["calib"]).macs
            for method, kw in METHODS.items():
                for target in args.targets:
                    row = {"model": name, "seed": seed, "method": method, "target": target,
                           **prune_row(dense, kw, target, seed, data, args)}
                    rows.append(row)
                    print(row, flush=True)
            meta.update(load_end=os.getloadavg(), wall_seconds=time.perf_counter() - t_start)
            save(rows, meta, args)  # after every seed: a cut-short run keeps what it finished


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def _json(name: str) -> Path:
    return ROOT / "bench" / "results" / f"{name.replace('-', '_')}.json"


def save(rows: list[dict], meta: dict, args) -> None:
    _json(args.name).parent.mkdir(parents=True, exist_ok=True)
    _json(args.name).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    write_markdown(rows, meta, args)


def _ms(values: list[float], scale: float = 100, digits: int = 1) -> str:
    mean = statistics.mean(values) * scale
    if len(values) == 1:
        return f"{mean:.{digits}f}"  # one seed: no spread to report
    return f"{mean:.{digits}f} ± {statistics.stdev(values) * scale:.{digits}f}"


def write_markdown(rows: list[dict], meta: dict, args) -> None:
    lines = ["| model | method | MAC target | MACs fewer (achieved, min–max) | blocks removed | "
             f"top-1 % before fine-tune ({args.before_n} test images) | top-1 % after fine-tune | "
             "after − dense of the same base (points) |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name in args.models:
        dense = {r["seed"]: r["top1"] for r in rows if r["model"] == name and r["method"] == "dense"}
        if dense:
            lines.append(f"| {name} | dense ({len(dense)} base{'s' * (len(dense) > 1)}) | 1 | 1.00 | 0 | | {_ms(list(dense.values()))} | |")
        for method in METHODS:
            for target in args.targets:
                rs = [r for r in rows if r["model"] == name and r["method"] == method and r["target"] == target]
                if rs:
                    m = [r["macs_ratio"] for r in rs]
                    lines.append(f"| {name} | {method} | {target:g}x | {statistics.mean(m):.2f} "
                                 f"({min(m):.2f}–{max(m):.2f}) | {statistics.mean(r['blocks_removed'] for r in rs):.1f} | "
                                 f"{_ms([r['top1_before_ft'] for r in rs])} | {_ms([r['top1'] for r in rs])} | "
                                 f"{_ms([r['top1'] - dense[r['seed']] for r in rs])} |")
    seeds = {n: sorted({r["seed"] for r in rows if r["model"] == n}) for n in args.models}
    finished = "; ".join(f"{n}: {', '.join(map(str, s)) or 'none'}" for n, s in seeds.items())
    bases = ", ".join(f"{k} {v:.0f} s" for k, v in meta["base_seconds"].items() if v is not None)
    load = lambda la: " / ".join(f"{v:.1f}" for v in la)  # noqa: E731
    start, end = f"<!-- {args.name}:start -->", f"<!-- {args.name}:end -->"
    section = (f"{start}\n## Depth vs width on Fashion-MNIST (issue 14), {args.ft_steps}-step fine-tune\n\n"
               f"Machine: {meta['machine']}, torch {meta['torch']}, {meta['threads']} torch thread(s), run under "
               f"`nice -n 10` next to other work (load average 1/5/15 min {load(meta['load_start'])} at the start, "
               f"{load(meta['load_end'])} at the end; wall {meta['wall_seconds'] / 60:.0f} min).\n\n"
               f"Zoo ResNets (option-A shortcuts, 28×28 inputs). Each seed trains its own base on the first "
               f"{args.train_n} images of the Fashion-MNIST training split for {args.epochs} epochs (SGD, batch 64, "
               f"lr 0.05 cosine, momentum 0.9, wd 5e-4, no augmentation)"
               f"{' — ' + bases if bases else ', read from the cache of an earlier run'}. Every pruned "
               f"model is compacted and fine-tuned the same way: {args.ft_steps} SGD steps × 64 images of that "
               f"subset, lr 0.01 cosine, the same batches for every method of a seed. Top-1 on the first "
               f"{args.test_n} test images (before fine-tuning: the first {args.before_n}); mean ± std over seeds. "
               f"Block Influence and tracing use {args.calib_n} training images. MACs fewer = dense MACs ÷ MACs of "
               "the compacted model. Every method removes the fewest units that reach the target, so it lands at or "
               "above it: blocks come whole (ResNet-20 has 7 removable blocks, ResNet-56 25; the first blocks of stages 2 "
               "and 3 change shape and stay), and layer-scope channels narrow every layer by the same fraction, "
               "one channel of a 16-wide layer at a time. Short by design: the bases are not fully trained, so "
               "compare methods under the same budget rather than with published accuracies.\n\n"
               f"Seeds finished: {finished}.\n\n"
               f"Command: `PYTHONPATH=src nice -n 10 python bench/depth_fashion.py --models {' '.join(args.models)} "
               f"--train-n {args.train_n} --epochs {args.epochs} --ft-steps {args.ft_steps} --test-n {args.test_n} "
               f"--before-n {args.before_n} --threads {args.threads}"
               + (f" --name {args.name}" if args.name != "depth-fashion" else "")
               + "`\n\n" + "\n".join(lines) + f"\n{end}\n")
    write_section(section, start, end, RESULTS)
    print(section)


if __name__ == "__main__":
    main()
