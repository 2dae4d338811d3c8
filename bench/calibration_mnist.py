"""One-shot pruning without fine-tuning on real MNIST: magnitude vs Wanda vs SparseGPT on LeNet-300-100.

A small check that calibration helps on a real trained network (the language-model benchmark is
bench/lm.py). LeNet-300-100 is trained once (SGD 0.1, momentum 0.9, 3 epochs, seed 0), then pruned
one-shot from the same dense weights at each sparsity, with no fine-tuning; Wanda and SparseGPT
calibrate on 1024 training images (the first 1024 of the seeded train split). Test accuracy is read
on the official 10k test set after pruning; nothing is selected on it.

    PYTHONPATH=src nice -n 10 python bench/calibration_mnist.py     # → bench/results/calibration_mnist.json + RESULTS.md
"""
from __future__ import annotations

import copy
import json
import os
import platform
import time
from pathlib import Path

import torch

import prunekit as pk
from results_md import write_section  # bench/ is on sys.path when this script runs

HERE = Path(__file__).resolve().parent
DATA = Path("/work/shared/datasets/mnist")
START, END = "<!-- calibration_mnist:start -->", "<!-- calibration_mnist:end -->"
METHODS = {  # label → prune keywords (sparsity added per run; None for N:M)
    "layer-magnitude": dict(score="magnitude", scope="layer"),
    "row-magnitude": dict(score="magnitude", scope="row"),
    "wanda (row)": dict(score="wanda", scope="row"),
    "sparsegpt (layer)": dict(score="sparsegpt", scope="layer"),
}
SPARSITIES = [0.5, 0.7, 0.8, 0.9]


def main() -> None:
    t0 = time.time()
    train, val, test = pk.data.load("mnist", DATA)
    torch.manual_seed(0)
    dense = pk.models.create("lenet300")
    pk.train(dense, train, val, epochs=3, lr=0.1, momentum=0.9, seed=0, progress=False)
    xs = torch.stack([train[i][0] for i in range(1024)])
    calib = list(xs.split(256))

    def accuracy(model):
        return pk.evaluate(model, test)["top1"]

    rows = {"dense": {"-": accuracy(dense)}}
    for label, kw in METHODS.items():
        rows[label] = {}
        for s in SPARSITIES:
            model = copy.deepcopy(dense)
            pk.prune(model, s, data=calib if kw["score"] != "magnitude" else None, **kw)
            rows[label][f"{s:.0%}"] = accuracy(model)
        model = copy.deepcopy(dense)
        pk.prune(model, structure="2:4", score=kw["score"], data=calib if kw["score"] != "magnitude" else None)
        rows[label]["2:4"] = accuracy(model)
    meta = {"machine": f"{platform.machine()} {os.cpu_count()}-core AMD EPYC (shared)", "torch": torch.__version__,
            "minutes": round((time.time() - t0) / 60, 1), "load": " ".join(f"{x:.1f}" for x in os.getloadavg())}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "calibration_mnist.json").write_text(json.dumps({"meta": meta, "accuracy": rows}, indent=1))
    cols = [f"{s:.0%}" for s in SPARSITIES] + ["2:4"]
    lines = [f"| method | {' | '.join(cols)} |", "|---|" + "---:|" * len(cols)]
    for label in METHODS:
        lines.append(f"| {label} | " + " | ".join(f"{100 * rows[label][c]:.2f}" for c in cols) + " |")
    section = f"""{START}
## One-shot, no fine-tuning: magnitude vs Wanda vs SparseGPT on MNIST LeNet-300-100 (issue 12, bench/calibration_mnist.py)

Test accuracy (%) right after pruning the same dense net (dense: {100 * rows['dense']['-']:.2f} %, SGD 3 epochs,
seed 0), no fine-tuning; Wanda and SparseGPT calibrate on 1024 training images; 2:4 uses each
method's score within blocks of 4 inputs (magnitude: |w|). One seed, one run; {meta['machine']},
torch {meta['torch']}, {meta['minutes']} min in all.

{chr(10).join(lines)}
{END}"""
    write_section(section, START, END)


if __name__ == "__main__":
    main()
