"""Accuracy after depth, width and width+depth pruning (issue 14): zoo ResNets on Fashion-MNIST.

Per model and seed: train a base on a training subset (cached in /runs/depth-fashion-bases, which git
ignores), then for each method and MAC target prune a copy, fine-tune it the same short way, and
measure test accuracy on a test subset. Writes bench/results/depth_fashion.json and a RESULTS.md section.

    PYTHONPATH=src python bench/depth_fashion.py [--models resnet20 resnet56] [--seeds 0 1 2]
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from pathlib import Path

import torch
from torch.utils.data import Subset

import prunekit as pk

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent.parent / "shared" / "datasets" / "fashion-mnist"
CACHE = ROOT / "runs" / "depth-fashion-bases"
RESULTS = ROOT / "bench" / "RESULTS.md"
START, END = "<!-- depth-fashion:start -->", "<!-- depth-fashion:end -->"
METHODS = {
    "depth (blocks, block-influence)": {"structure": "blocks", "score": "block-influence"},
    "width (channels, l1, global)": {"structure": "channels", "score": "l1"},
    "width (channels, l1, layer)": {"structure": "channels", "score": "l1", "scope": "layer"},
    "width+depth (depth_share 0.5)": {"structure": ["blocks", "channels"], "score": "l1"},
}


def base(name: str, seed: int, train, args) -> torch.nn.Module:
    """The trained base for (model, seed), from the cache when present."""
    path = CACHE / f"{name}-s{seed}-n{args.train_n}-e{args.epochs}.safetensors"
    model = pk.models.create(name, num_classes=10, in_channels=1, input_size=(28, 28))
    if path.is_file():
        from safetensors.torch import load_file

        model.load_state_dict(load_file(path))
        return model.eval()
    t0 = time.perf_counter()
    pk.train(model, train, epochs=args.epochs, seed=seed, batch_size=64, lr=0.05, momentum=0.9,
             weight_decay=5e-4, lr_schedule="cosine", progress=False)
    print(f"{name} seed {seed}: base trained in {time.perf_counter() - t0:.0f} s", flush=True)
    from safetensors.torch import save_file

    CACHE.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    return model.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["resnet20"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--targets", nargs="+", type=float, default=[2.0, 3.0])
    ap.add_argument("--train-n", type=int, default=6000)
    ap.add_argument("--test-n", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--ft-steps", type=int, default=30)
    args = ap.parse_args()
    torch.set_num_threads(1)
    train_full, _, test_full = pk.data.load("fashion-mnist", DATA, val_fraction=0.1, seed=0)
    train, test = Subset(train_full, range(args.train_n)), Subset(test_full, range(args.test_n))
    x = torch.stack([train_full[i][0] for i in range(8)])  # example inputs and block-score calibration
    rows = []
    for name in args.models:
        for seed in args.seeds:
            dense = base(name, seed, train, args)
            acc = pk.evaluate(dense, test)["top1"]
            rows.append({"model": name, "seed": seed, "method": "dense", "target": 1.0, "top1": acc, "macs_ratio": 1.0})
            print(f"{name} seed {seed} dense {acc:.4f}", flush=True)
            dense_macs = pk.summary(dense, x).macs
            for method, kw in METHODS.items():
                for target in args.targets:
                    model = copy.deepcopy(dense)
                    pk.prune(model, example_inputs=x, macs_reduction=target, seed=seed, **kw)
                    pruned_acc = pk.evaluate(model, test)["top1"]
                    pk.finetune(model, "continue", train, steps=args.ft_steps, seed=seed, batch_size=64, lr=0.01,
                                lr_schedule="cosine", progress=False)
                    small = pk.compact(model.eval(), x)
                    row = {"model": name, "seed": seed, "method": method, "target": target,
                           "top1_before_ft": pruned_acc, "top1": pk.evaluate(small, test)["top1"],
                           "macs_ratio": dense_macs / pk.summary(small, x).macs}
                    if isinstance(kw["structure"], list):
                        mix = pk.structures.allocation(model, x)
                        row["blocks_removed"] = len(mix.blocks_removed)
                    rows.append(row)
                    print(row, flush=True)
            save(rows, args)  # after every seed: a cut-short run keeps what it finished


def save(rows: list[dict], args) -> None:
    meta = {"machine": f"{os.cpu_count()} cores", "torch": torch.__version__, "args": vars(args)}
    out = ROOT / "bench" / "results" / "depth_fashion.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    write_markdown(rows, args)


def _ms(values: list[float]) -> str:
    mean = statistics.mean(values) * 100
    sd = statistics.stdev(values) * 100 if len(values) > 1 else 0.0
    return f"{mean:.1f} ± {sd:.1f}"


def write_markdown(rows: list[dict], args) -> None:
    lines = ["| model | method | MAC target | MACs (achieved) | top-1 % before fine-tune | top-1 % after |",
             "|---|---|---:|---:|---:|---:|"]
    for name in args.models:
        dense = [r["top1"] for r in rows if r["model"] == name and r["method"] == "dense"]
        lines.append(f"| {name} | dense | 1 | 1.00 | | {_ms(dense)} |")
        for method in METHODS:
            for target in args.targets:
                rs = [r for r in rows if r["model"] == name and r["method"] == method and r["target"] == target]
                if rs:
                    lines.append(f"| {name} | {method} | {target:g}x | {statistics.mean(r['macs_ratio'] for r in rs):.2f} | "
                                 f"{_ms([r['top1_before_ft'] for r in rs])} | {_ms([r['top1'] for r in rs])} |")
    section = (f"{START}\n## Depth vs width on Fashion-MNIST (issue 14)\n\n"
               f"Zoo ResNets (option-A shortcuts), bases trained on the first {args.train_n} Fashion-MNIST training "
               f"images for {args.epochs} epoch(s) (SGD, batch 64, lr 0.05 cosine), one base per seed "
               f"(seeds {', '.join(map(str, args.seeds))}); every pruned model fine-tuned {args.ft_steps} SGD steps "
               f"× 64 images (lr 0.01 cosine); top-1 on the first {args.test_n} test images, mean ± std over seeds. "
               "Block Influence is measured on 8 training images. Short by design (a shared 2-core machine): the "
               "absolute accuracies are far below a fully trained ResNet; the comparison between methods under "
               "the same budget is the point.\n\n"
               f"Seeds finished: {', '.join(str(s) for s in sorted({r['seed'] for r in rows}))}.\n\n"
               f"Command: `PYTHONPATH=src nice -n 10 python bench/depth_fashion.py --models {' '.join(args.models)} "
               f"--train-n {args.train_n} --epochs {args.epochs} --ft-steps {args.ft_steps} --test-n {args.test_n}`"
               f"\n\n" + "\n".join(lines) + f"\n{END}\n")
    text = RESULTS.read_text()
    if START in text:
        text = text[: text.index(START)] + section + text[text.index(END) + len(END) + 1:]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text)
    print(section)


if __name__ == "__main__":
    main()
