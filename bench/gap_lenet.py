"""LeNet-300-100 on MNIST: per-layer max_sparsity vs global magnitude at the same overall sparsity.

Used by bench/gap.py. The dense model is trained here (seeded); the allocation uses validation
images, the guarantee is re-checked on other validation images, accuracy is on the test set only.
"""
from __future__ import annotations

import copy
import time
from typing import Any

import torch

import prunekit as pk
from prunekit import theory

DELTA = 0.05


def _accuracy(model: torch.nn.Module, test: Any) -> float:
    return pk.evaluate(model, test)["top1"]


def _finetune(model: torch.nn.Module, train: Any, epochs: int, seed: int) -> torch.nn.Module:
    pk.train(model, train, epochs=epochs, lr=0.01, momentum=0.9, seed=seed, progress=False)
    return model


def _compare(model: torch.nn.Module, ratios: dict[str, float] | None, sparsity: float, eps: float,
             x_check: torch.Tensor, train: Any, test: Any, ft_epochs: int, seed: int) -> dict[str, Any]:
    """Prune a copy by ``ratios`` (or global magnitude at ``sparsity``): gap on held-out inputs, accuracy."""
    pruned = copy.deepcopy(model)
    if ratios is None:
        masks = pk.prune(pruned, sparsity=sparsity, score="magnitude", scope="global")
    else:
        masks = pk.prune(pruned, score="magnitude", scope=ratios)
    check = theory.gap(model, x_check, sparsity=ratios or sparsity, score="magnitude", scope="global")
    p, low, high = check.prob_within(eps, relative=True)
    return {
        "layers": {k: 1 - float(m.float().mean()) for k, m in masks.items()},
        "sparsity": masks.sparsity, "p_within": p, "p_low": low, "p_high": high,
        "rel_mean_sq": check.mean_sq_interval(relative=True)[0],
        "top1_pruned": _accuracy(pruned, test),
        "top1_finetuned": _accuracy(_finetune(pruned, train, ft_epochs, seed), test),
    }


def run(data_dir: str, eps_values: list[float], *, epochs: int, ft_epochs: int, n_alloc: int, n_check: int,
        seed: int = 0) -> dict[str, Any]:
    """Train, allocate per layer for each ε (relative L2 gap of the logits), compare with global magnitude."""
    t0 = time.time()
    train, val, test = pk.data.load("mnist", data_dir, seed=seed)
    model = pk.models.create("lenet300")
    pk.train(model, train, val, epochs=epochs, lr=0.05, momentum=0.9, seed=seed, progress=False)
    model.eval()
    perm = torch.randperm(len(val), generator=torch.Generator().manual_seed(seed))
    x_alloc = val.batch(perm[:n_alloc])[0]
    x_check = val.batch(perm[n_alloc:n_alloc + n_check])[0]
    dense = {"test_top1": _accuracy(model, test), "train_s": time.time() - t0}
    rows = []
    for eps in eps_values:
        for joint in (False, True):
            alloc = theory.max_sparsity(model, x_alloc, eps=eps, delta=DELTA, relative=True, joint=joint)
            row: dict[str, Any] = {"eps": eps, "delta": DELTA, "mode": alloc.mode, "sparsity": alloc.sparsity}
            for name, ratios in (("max_sparsity", alloc.ratios), ("global", None)):
                row[name] = _compare(model, ratios, alloc.sparsity, eps, x_check, train, test, ft_epochs, seed)
            rows.append(row)
    return {"dense": dense, "rows": rows, "n_alloc": n_alloc, "n_check": n_check, "epochs": epochs,
            "ft_epochs": ft_epochs, "seed": seed, "wall_s": time.time() - t0}


def plot(result: dict[str, Any], path: Any) -> None:
    """Per-layer sparsity of each allocation beside global magnitude's: one panel per (mode, ε)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    eps = list(dict.fromkeys(r["eps"] for r in rows))
    layers = list(rows[0]["max_sparsity"]["layers"])
    fig, axes = plt.subplots(len(modes), len(eps), figsize=(3.2 * len(eps), 3.0 * len(modes)),
                             sharey=True, squeeze=False)
    for row in rows:
        ax = axes[modes.index(row["mode"])][eps.index(row["eps"])]
        xs = range(len(layers))
        ax.bar([x - 0.2 for x in xs], [row["max_sparsity"]["layers"][k] for k in layers], 0.4,
               label=f"max_sparsity ({row['mode']})")
        ax.bar([x + 0.2 for x in xs], [row["global"]["layers"][k] for k in layers], 0.4, label="global magnitude")
        ax.set_xticks(list(xs), [k.removesuffix(".weight") for k in layers])
        ax.set_title(f"{row['mode']}, ε={row['eps']:g}: overall {row['sparsity']:.3f}", fontsize=9)
        ax.legend(fontsize=6, loc="lower left")
    for r in range(len(modes)):
        axes[r][0].set_ylabel("layer sparsity")
    fig.suptitle("LeNet-300-100 (layers 1, 3, 5 = fc1, fc2, fc3): per-layer sparsity at equal overall sparsity",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
