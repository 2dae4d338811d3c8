"""The first main job: five ShrinkBench baselines on an MLP trained on scikit-learn's digits.

Trains once, then for every method × compression: copy, prune, fine-tune briefly, evaluate on the
held-out test split (checkpoints are chosen on validation only). Needs no files; ~1 minute on 2 cores.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader

from . import data as datasets
from . import models
from .api import METHODS, prune
from .metrics import summary
from .training import evaluate, train

COMPRESSIONS = (2, 4, 8, 16, 32)


@dataclass
class DemoResult:
    """Test top-1 per (method, compression), plus the dense model's."""

    dense_top1: float
    top1: dict[tuple[str, int], float]
    compression: dict[tuple[str, int], float]
    seconds: float

    def table(self) -> str:
        head = "| method | " + " | ".join(f"{c}×" for c in COMPRESSIONS) + " |"
        rows = [head, "|---|" + "---:|" * len(COMPRESSIONS)]
        for method in METHODS:
            cells = [f"{100 * self.top1[(method, c)]:.1f}" for c in COMPRESSIONS]
            rows.append(f"| {method} | " + " | ".join(cells) + " |")
        return "\n".join(rows)


def run(*, seed: int = 0, epochs: int = 30, finetune_epochs: int = 5, progress: bool = False) -> DemoResult:
    """Train the dense MLP, then prune + fine-tune it with each baseline at each compression."""
    start = time.perf_counter()
    torch.manual_seed(seed)
    train_set, val_set, test_set = datasets.load("digits", seed=seed)
    base = models.create("mlp", input_size=8, hidden=(128, 64))
    options = dict(batch_size=64, lr=0.05, optimizer="sgd", momentum=0.9, progress=progress)
    train(base, train_set, val_set, epochs=epochs, seed=seed, restore_best=True, lr_schedule="cosine", **options)
    dense = evaluate(base, test_set)["top1"]
    grad_batch = next(iter(DataLoader(train_set, batch_size=256, shuffle=False)))
    example = grad_batch[0][:1]
    top1, achieved = {}, {}
    for method in METHODS:
        for c in COMPRESSIONS:
            model = copy.deepcopy(base)
            prune(model, compression=c, method=method, data=grad_batch, seed=seed)
            train(model, train_set, val_set, epochs=finetune_epochs, seed=seed, restore_best=True,
                  **{**options, "lr": 0.01})
            top1[(method, c)] = evaluate(model, test_set)["top1"]
            achieved[(method, c)] = summary(model, example).compression
    return DemoResult(dense, top1, achieved, time.perf_counter() - start)
