"""print() of a gap report or an allocation is a short readable summary, not the sample tensors."""
from __future__ import annotations

import torch
from torch import nn

import prunekit as pk


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8))


def test_print_of_a_gap_report_is_a_few_lines():
    report = pk.theory.gap(_net(), torch.randn(256, 16), sparsity=0.5)
    text = str(report)
    assert text == repr(report) and len(text.splitlines()) == 3 and len(text) < 400
    assert "E‖Δy‖²" in text and "sup" in text and "tensor(" not in text


def test_print_of_an_allocation_is_a_table_of_layers():
    alloc = pk.theory.max_sparsity(_net(), torch.randn(128, 16), eps=0.5, delta=0.1, joint=True)
    text = str(alloc)
    assert "tensor(" not in text and len(text) < 1000
    assert all(name in text for name in alloc.ratios) and "all layers together" in text
