"""The best epoch is chosen on the data's metric: highest top-1 for classifiers, lowest loss (perplexity) for text."""
from __future__ import annotations

import pytest
import torch

import prunekit as pk
from prunekit.data.text import windows
from prunekit.errors import PruneError
from prunekit.training.callbacks import History

RECORDS = [{"epoch": 1, "val_top1": 0.50, "val_loss": 1.0},
           {"epoch": 2, "val_top1": 0.60, "val_loss": 1.5},  # more right answers, less confident overall
           {"epoch": 3, "val_top1": 0.55, "val_loss": 0.9}]


def test_history_selects_on_its_metric():
    assert History(RECORDS).best_epoch == 2
    assert History(RECORDS, select_on="loss").best_epoch == 3


def text(n: int, seed: int) -> pk.data.TextWindows:
    gen = torch.Generator().manual_seed(seed)
    return windows(torch.randint(0, 5, (n,), generator=gen) * (torch.arange(n) % 2), 16, stride=16)


def test_text_training_restores_the_lowest_validation_loss():
    torch.manual_seed(0)
    model = pk.models.create("gpt-tiny", num_classes=5, input_size=16)
    train, val = text(2048, 0), text(512, 1)
    history = pk.train(model, train, val, epochs=4, batch_size=16, lr=3e-2, optimizer="adamw", restore_best=True,
                       progress=False)
    assert history.select_on == "loss"
    best = min(history, key=lambda r: r["val_loss"])
    assert history.best_epoch == best["epoch"]
    assert pk.evaluate(model, val)["loss"] == pytest.approx(best["val_loss"], rel=1e-5)


def test_select_on_is_checked():
    model = pk.models.create("gpt-tiny", num_classes=5, input_size=16)
    with pytest.raises(PruneError, match="select_on"):
        pk.train(model, text(256, 0), text(64, 1), epochs=1, select_on="accuracy", progress=False)
