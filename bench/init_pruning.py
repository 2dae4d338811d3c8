"""Pruning at initialization, the classic check (Tanaka et al. 2020; Frankle et al. 2021).

(a) Layer collapse: LeNet-300-100 and the zoo's CIFAR VGG-16, freshly initialized, pruned by each
score (snip, grasp, synflow, random, magnitude, and synflow-biases: SynFlow keeping |b| as the authors'
code does; all with one global ranking) at compressions
10^1 … 10^4 of the prunable weights (10^(k/4) steps). A point is *connected* when some path of
surviving weights joins input and output (all-ones input through the binary masks, biases zeroed,
BatchNorm as identity); the table gives the largest compression up to which every grid point is
connected, and the first point where a layer is emptied. One-shot scores are computed once per
model and ranked at every point; SynFlow runs its 100 rounds through ``pk.prune`` at every point
(for VGG top-down, stopping at the first connected point).
(b) MNIST: LeNet-300-100 pruned at initialization at 10× and 100× by each score, then trained a
few epochs with its masks held; top-1 on the 10,000 test images after the last epoch.

    nice -n 10 env PYTHONPATH=src python bench/init_pruning.py [--epochs 3] [--seeds 0] [--resume [--scores ...]]

writes bench/results/init_pruning.json and the init_pruning section of bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

import prunekit as pk
from prunekit.data import batches, load
from prunekit.structures import PRUNABLE_TYPES
from results_md import write_section  # bench/ is on sys.path when a bench script runs

HERE = Path(__file__).resolve().parent
SCORES = ["snip", "grasp", "synflow", "random", "magnitude", "synflow-biases"]
ONE_SHOT = ["synflow-1shot"]  # collapse table only: SynFlow scored once, to show what the rounds buy
ITERATIVE = {"synflow": pk.scores.SynFlow(), "synflow-biases": pk.scores.SynFlow(biases=True)}
GRID = [10 ** (k / 4) for k in range(4, 17)]  # LeNet-300-100: 13 points from 10 to 10^4
COARSE = GRID[::2]  # VGG-16 (14.7 M weights): 7 points, every half decade
SHAPES = {"lenet300": (1, 28, 28), "vgg16": (3, 32, 32)}
BEGIN, END = "<!-- init_pruning:start -->", "<!-- init_pruning:end -->"


class Prepared(pk.scores.Score):
    """A one-shot score whose state was computed once on the initial weights: ranked at many compressions."""

    def __init__(self, score: pk.scores.Score, model: nn.Module, data: Any):
        self.inner, self.reduce = score, score.reduce
        inputs = data[0] if score.needs_example_inputs else data
        self.state = score.prepare(model, pk.prunable(model), inputs, None)

    def prepare(self, model, targets, data, loss_fn):
        return self.state

    def __call__(self, weight, context):
        return self.inner(weight, context)


def connected(model: nn.Module, shape: tuple[int, ...]) -> bool:
    """Whether a path of surviving weights joins input and output: ones through the 0/1 masks, biases 0."""
    probe = copy.deepcopy(model).eval()
    with torch.no_grad():
        for m in probe.modules():
            if isinstance(m, PRUNABLE_TYPES):
                m.weight.copy_((m.weight != 0).float())
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.fill_(1), m.bias.zero_(), m.running_mean.zero_(), m.running_var.fill_(1)
        return bool(probe(torch.ones(1, *shape)).sum() > 0)


def emptied(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, PRUNABLE_TYPES) and not m.weight.any()]


def score_data(name: str, seed: int, mnist: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch for the data-driven scores: 256 MNIST training images, or 64 N(0, 1) images with random labels."""
    gen = torch.Generator().manual_seed(seed)
    if name == "lenet300":
        return next(iter(batches(mnist, 256, shuffle=True, generator=gen)))
    return torch.randn(64, *SHAPES[name], generator=gen), torch.randint(0, 10, (64,), generator=gen)


def prune_at(model: nn.Module, score: Any, c: float, data: Any) -> nn.Module:
    """A pruned copy at compression ``c`` of the prunable weights, collapse allowed (it is what we measure)."""
    m = copy.deepcopy(model)
    inputs = {} if isinstance(score, Prepared) else {"example_inputs": data[0]} if score in ITERATIVE else {"data": data}
    pk.prune(m, sparsity=1 - 1 / c, score=ITERATIVE.get(score, score), allow_collapse=True, **inputs)
    return m


def collapse_rows(name: str, seed: int, mnist: Any, synflow_budget_s: float, scores: list[str]) -> list[dict]:
    torch.manual_seed(seed)
    model = pk.models.create(name)
    data = score_data(name, seed, mnist)
    grid = GRID if name == "lenet300" else COARSE
    rows = []
    for score in scores:
        t0 = time.perf_counter()
        if score in ITERATIVE:
            for c in grid if name == "lenet300" else grid[::-1]:
                m = prune_at(model, score, c, data)
                rows.append({"model": name, "score": score, "compression": c, "connected": connected(m, SHAPES[name]),
                             "emptied": emptied(m)})
                if name != "lenet300" and (rows[-1]["connected"] or time.perf_counter() - t0 > synflow_budget_s):
                    break
        else:
            prepared = Prepared(pk.scores.registry.get(score.removesuffix("-1shot")), model, data)  # one round
            for c in GRID:
                m = prune_at(model, prepared, c, data)
                rows.append({"model": name, "score": score, "compression": c, "connected": connected(m, SHAPES[name]),
                             "emptied": emptied(m)})
        print(f"{name} {score}: {time.perf_counter() - t0:.0f} s", flush=True)
    return rows


def train_rows(mnist: tuple, seeds: list[int], epochs: int, scores: list[str]) -> list[dict]:
    train, _, test = mnist
    rows = []
    for seed in seeds:
        for score, c in [("dense", 1.0)] * ("dense" in scores) + [(s, c) for s in scores if s != "dense"
                                                                    for c in (10.0, 100.0)]:
            torch.manual_seed(seed)
            model = pk.models.create("lenet300")
            t0 = time.perf_counter()
            if score != "dense":
                model = prune_at(model, score, c, score_data("lenet300", seed, train))
            gone = emptied(model)
            pk.train(model, train, epochs=epochs, lr=0.1, momentum=0.9, lr_schedule="cosine", batch_size=128,
                     seed=seed, progress=False)
            top1 = pk.evaluate(model, test)["top1"]
            rows.append({"score": score, "compression": c, "seed": seed, "top1": top1, "emptied": gone,
                         "sparsity": pk.sparsity(model), "seconds": time.perf_counter() - t0})
            print(f"lenet300 {score} ×{c:g} seed {seed}: top-1 {top1:.4f} {gone or ''}", flush=True)
    return rows


def largest_connected(rows: list[dict], name: str, score: str) -> tuple[str, str]:
    """(largest c with every grid point up to it connected, first c with an emptied layer) as text."""
    pts = sorted((r for r in rows if r["model"] == name and r["score"] == score), key=lambda r: r["compression"])
    if not pts:
        return "—", "—"
    if pts[0]["compression"] > 10.5:  # top-down search: only the points it visited
        ok = [r["compression"] for r in pts if r["connected"]]
        best = f"{max(ok):.0f} (top-down)" if ok else f"< {min(r['compression'] for r in pts):.0f}"
    else:
        best, ok = "< 10", True
        for r in pts:
            if not r["connected"]:
                break
            best = f"{r['compression']:.0f}"
    first = next((r for r in pts if r["emptied"]), None)
    return best, ("none" if first is None else f"{first['compression']:.0f} ({', '.join(first['emptied'])})")


def markdown(result: dict) -> str:
    meta, rows, acc = result["meta"], result["collapse"], result["mnist"]
    out = [BEGIN, "## Pruning at initialization: layer collapse and MNIST accuracy (issue 12, bench/init_pruning.py)", "",
           f"{meta['machine']}, torch {meta['torch']}, `nice -n 10`, {meta['threads']} thread(s); "
           f"wall {meta['wall_s'] / 60:.1f} min. Compression = prunable weights / surviving prunable weights "
           "(Tanaka et al.'s convention; biases and BatchNorm stay dense and are not counted). Every score ranks "
           "globally. SNIP/GraSP score one batch: 256 MNIST training images for "
           "LeNet-300-100, 64 N(0,1) images with random labels for VGG-16 (no CIFAR). *Connected* = a path of "
           "surviving weights joins input and output. Grid: 10^(k/4) for LeNet-300-100, 10^(k/2) for VGG-16.", "",
           "| model | score | largest compression still connected | first compression with an emptied layer |",
           "|---|---|---:|---|"]
    for name in SHAPES:
        for score in [*SCORES, *ONE_SHOT]:
            best, first = largest_connected(rows, name, score)
            out.append(f"| {name} | {score} | {best} | {first} |")
    out += ["", "`synflow` is the default iterative SynFlow (100 rounds, exponential schedule, through `pk.prune`; "
            "biases and running means zeroed while scoring); `synflow-biases` keeps them as |b| "
            "(`SynFlow(biases=True)`, the authors' code); `synflow-1shot` scores once. "
            "VGG-16's iterative SynFlow is run top-down from 10^4 and stops at "
            "the first connected point (each point is 100 rescoring rounds of 14.7 M weights).", "",
            f"MNIST, LeNet-300-100 pruned at initialization then trained {meta['epochs']} epochs (SGD, momentum "
            "0.9, lr 0.1 cosine, batch 128, masks held; 60,000 training images, no validation selection), top-1 "
            f"on the 10,000 test images after the last epoch; seeds {', '.join(map(str, meta['seeds']))} (mean):", "",
            "| score | 10× | 100× |", "|---|---:|---:|"]
    dense = [r["top1"] for r in acc if r["score"] == "dense"]
    out.append(f"| dense (1×) | {100 * sum(dense) / len(dense):.2f} % | |")
    for score in SCORES:
        cells = []
        for c in (10.0, 100.0):
            v = [r for r in acc if r["score"] == score and r["compression"] == c]
            note = " (layer emptied)" if any(r["emptied"] for r in v) else ""
            cells.append(f"{100 * sum(r['top1'] for r in v) / len(v):.2f} %{note}")
        out.append(f"| {score} | {cells[0]} | {cells[1]} |")
    return "\n".join(out + [END])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default="/work/shared/datasets/mnist")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--synflow-budget-s", type=float, default=1800, help="stop VGG's top-down SynFlow search after this")
    ap.add_argument("--skip-vgg", action="store_true")
    ap.add_argument("--resume", action="store_true", help="keep the phases bench/results/init_pruning.json holds")
    ap.add_argument("--scores", nargs="+", help="with --resume: recompute only these scores' rows")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    mnist = load("mnist", args.data_dir, val_fraction=0)
    path = HERE / "results" / "init_pruning.json"
    path.parent.mkdir(exist_ok=True)
    phases = json.loads(path.read_text()).get("phases", {}) if path.exists() and args.resume else {}
    todo = {"collapse:lenet300": lambda s: collapse_rows("lenet300", 0, mnist[0], args.synflow_budget_s, s),
            "mnist": lambda s: train_rows(mnist, args.seeds, args.epochs, s)}
    if not args.skip_vgg:
        todo["collapse:vgg16"] = lambda s: collapse_rows("vgg16", 0, mnist[0], args.synflow_budget_s, s)
    for key, fn in todo.items():
        every = ["dense", *SCORES] if key == "mnist" else [*SCORES, *ONE_SHOT]
        old = phases.get(key, {"rows": [], "wall_s": 0.0})
        redo = [s for s in every if s in (args.scores or every) and (args.scores or key not in phases)]
        if not redo:
            continue
        t0 = time.perf_counter()
        rows = [r for r in old["rows"] if r["score"] not in redo] + fn(redo)
        phases[key] = {"rows": rows, "wall_s": old["wall_s"] + time.perf_counter() - t0}
        path.write_text(json.dumps({"phases": phases}, indent=1))  # kept per phase: --resume skips or merges
    meta = {"machine": "2-core AMD EPYC (shared with ~9 engineers)", "torch": torch.__version__,
            "python": platform.python_version(), "threads": args.threads, "epochs": args.epochs, "seeds": args.seeds,
            "wall_s": sum(p["wall_s"] for p in phases.values())}
    result = {"meta": meta, "phases": phases,
              "collapse": [r for k, p in phases.items() if k.startswith("collapse") for r in p["rows"]],
              "mnist": phases["mnist"]["rows"]}
    path.write_text(json.dumps(result, indent=1))
    text = markdown(result)
    print(text)
    write_section(text, BEGIN, END, HERE / "RESULTS.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
