"""MAC and parameter counts against hand counts; compression and speedup side by side."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import prunekit as pk


def lenet5() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 20, 5), nn.MaxPool2d(2), nn.Conv2d(20, 50, 5), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10),
    )


def test_lenet5_hand_count():
    s = pk.summary(lenet5(), torch.randn(1, 1, 28, 28))
    conv1 = 24 * 24 * 20 * 1 * 5 * 5
    conv2 = 8 * 8 * 50 * 20 * 5 * 5
    assert [l.macs for l in s.layers] == [conv1, conv2, 800 * 500, 500 * 10]
    assert s.macs == 2_293_000
    assert s.params == 431_080
    assert s.speedup == pytest.approx(1.0)


def test_batch_scales_macs():
    s1 = pk.summary(lenet5(), torch.randn(1, 1, 28, 28))
    s3 = pk.summary(lenet5(), torch.randn(3, 1, 28, 28))
    assert s3.macs == 3 * s1.macs


def test_strided_dilated_grouped_padded_convs():
    model = nn.Sequential(
        nn.Conv2d(4, 8, 3, stride=2, padding=1, dilation=2, groups=2),  # 15x15 -> 7x7
        nn.Conv2d(8, 8, 3, padding=1, groups=8),  # depthwise, 7x7 -> 7x7
        nn.Conv2d(8, 6, (1, 3), stride=(1, 2)),  # 7x7 -> 7x3
    )
    s = pk.summary(model, torch.randn(2, 4, 15, 15))
    expected = [
        2 * 7 * 7 * 8 * (4 // 2) * 9,
        2 * 7 * 7 * 8 * 1 * 9,
        2 * 7 * 3 * 6 * 8 * 3,
    ]
    assert [l.macs for l in s.layers] == expected


def test_conv1d_conv3d_transpose_and_linear_leading_dims():
    model = nn.Sequential(nn.Conv1d(3, 5, 4, stride=3, padding=2))  # L=20 -> floor((20+4-4)/3)+1 = 7
    assert pk.summary(model, torch.randn(1, 3, 20)).macs == 7 * 5 * 3 * 4
    model = nn.Sequential(nn.Conv3d(2, 4, 3, padding=1, stride=2))  # 5^3 -> 3^3
    assert pk.summary(model, torch.randn(1, 2, 5, 5, 5)).macs == 27 * 4 * 2 * 27
    model = nn.Sequential(nn.ConvTranspose2d(3, 4, 3, stride=2))  # every input pixel x 4*3*3 per in-ch
    assert pk.summary(model, torch.randn(1, 3, 5, 5)).macs == 25 * 3 * 4 * 9
    model = nn.Linear(16, 8)  # (batch, tokens, features): every token is one output position
    assert pk.summary(model, torch.randn(2, 7, 16)).macs == 2 * 7 * 16 * 8


def test_nonzero_macs_and_compression_after_pruning():
    model = lenet5()
    pk.prune(model, 0.9, scope="layer")
    s = pk.summary(model, torch.randn(1, 1, 28, 28))
    for layer, (conv_or_fc, n) in zip(s.layers, [(0, 500), (2, 25000), (5, 400000), (7, 5000)]):
        nnz = int(torch.count_nonzero(model[conv_or_fc].weight))
        assert nnz == n - round(0.9 * n)
        assert layer.nonzero_macs == layer.macs // n * nnz
    assert s.speedup == pytest.approx(s.macs / s.nonzero_macs)
    assert s.compression == pytest.approx(s.params / s.nonzero_params)
    text = str(s)
    assert "compression" in text and "speedup" in text and "total" in text


def test_summary_restores_training_mode():
    model = lenet5().train()
    pk.summary(model, torch.randn(1, 1, 28, 28))
    assert model.training
