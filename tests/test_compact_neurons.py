"""pk.compact on neuron-pruned models: rows, biases and consumer columns go, outputs stay equal."""
from __future__ import annotations

import torch
from torch import nn

import prunekit as pk
from prunekit import models
from prunekit.masks import mask_of

torch.set_num_threads(1)


def _randomize_bn(model: nn.Module) -> None:
    """Non-trivial BatchNorm statistics, so a dropped unit's BN shift is a real nonzero constant."""
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.5, 0.5)


def _kept(module: nn.Module) -> int:
    """Output units of ``module`` that pruning kept."""
    mask = mask_of(module, "weight")
    return module.weight.shape[0] if mask is None else int(mask.reshape(mask.shape[0], -1).any(1).sum())


def _prune_compact(model, x, sparsity, exclude):
    model.eval()
    pk.prune(model, sparsity, structure="neurons", exclude=exclude)
    masked = pk.summary(model, x)
    small = pk.compact(model, x)
    with torch.no_grad():
        torch.testing.assert_close(small(x), model(x), atol=1e-5, rtol=1e-5)
    return small, masked, pk.summary(small, x)


def _chain_counts(widths: list[int], kernels: list[int], positions: list[int]) -> tuple[int, int]:
    """Parameters and MACs of a chain of layers with these (kept) widths, kernel volumes and positions."""
    params = sum(a * b * k + b for a, b, k in zip(widths, widths[1:], kernels))
    macs = sum(a * b * k * p for a, b, k, p in zip(widths, widths[1:], kernels, positions))
    return params, macs


def test_lenet300_neurons_compact_to_the_kept_units():
    torch.manual_seed(0)
    model = models.create("lenet300")
    x = torch.randn(8, 1, 28, 28)
    small, masked, got = _prune_compact(model, x, 0.5, exclude=["5"])
    k1, k2 = _kept(model[1]), _kept(model[3])
    assert k1 < 300 and k2 < 100
    assert (small[1].out_features, small[3].in_features, small[3].out_features, small[5].in_features) == (k1, k1, k2, k2)
    params, macs = _chain_counts([784, k1, k2, 10], [1, 1, 1], [8, 8, 8])
    assert got.params == params
    assert got.macs == macs < masked.nonzero_macs  # summary's count, less the consumers' dead columns


def test_nonzero_activation_at_zero_is_folded_into_the_consumer_bias():
    """A pruned sigmoid unit outputs 0.5, not 0: its contribution moves into the next layer's bias."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 32), nn.Sigmoid(), nn.Linear(32, 16), nn.Sigmoid(), nn.Linear(16, 5))
    x = torch.randn(6, 20)
    small, _, got = _prune_compact(model, x, 0.5, exclude=["4"])
    k1, k2 = _kept(model[0]), _kept(model[2])
    assert (small[0].out_features, small[2].out_features) == (k1, k2) and k1 < 32 and k2 < 16
    assert got.params == _chain_counts([20, k1, k2, 5], [1, 1, 1], [6, 6, 6])[0]


def _bn_cnn(padding: int, size: int):
    """conv-BN-ReLU, conv-BN-sigmoid, pool, Linear; its filters neuron-pruned by half and compacted."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=padding), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 24, 3, padding=padding), nn.BatchNorm2d(24), nn.Sigmoid(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(24, 10),
    )
    _randomize_bn(model)
    return (model, *_prune_compact(model, torch.randn(2, 3, size, size), 0.5, exclude=["8"]))


def test_cnn_filters_with_batchnorm_compact_to_the_kept_filters():
    """Unpadded convs take a dropped filter's BN+activation constant into their bias: every filter goes."""
    model, small, masked, got = _bn_cnn(padding=0, size=12)
    k1, k2 = _kept(model[0]), _kept(model[3])
    assert (small[0].out_channels, small[1].num_features, small[3].in_channels) == (k1, k1, k1)
    assert (small[3].out_channels, small[4].num_features, small[8].in_features) == (k2, k2, k2)
    params, macs = _chain_counts([3, k1, k2, 10], [9, 9, 1], [2 * 100, 2 * 64, 2])
    assert got.params == params + 2 * (k1 + k2)  # BatchNorm weight and bias
    assert got.macs == macs < masked.nonzero_macs


def test_filter_whose_constant_meets_zero_padding_is_kept():
    """A zero-padded consumer sees the constant only inside the border: such filters stay (zeroed)."""
    model, small, _, _ = _bn_cnn(padding=1, size=8)
    k1 = _kept(model[0])
    with torch.no_grad():
        after_relu = torch.relu(model[1].bias - model[1].weight * model[1].running_mean
                                / (model[1].running_var + model[1].eps).sqrt())
    dropped = ~mask_of(model[0], "weight").reshape(16, -1).any(1)
    zero_after = int((dropped & (after_relu == 0)).sum())
    assert 0 < zero_after < int(dropped.sum())  # some dropped filters leave 0, others a constant
    assert small[0].out_channels == k1 + int(dropped.sum()) - zero_after
    assert small[3].out_channels == _kept(model[3])  # the sigmoid constant folds into the Linear


def test_residual_partners_stay_unless_all_are_pruned():
    torch.manual_seed(0)
    model = models.create("resnet20")
    _randomize_bn(model)
    x = torch.randn(2, 3, 32, 32)
    small, masked, got = _prune_compact(model, x, 0.5, exclude=["linear"])
    stream = {"conv1", *(f"layer{i}.{j}.conv2" for i in (1, 2, 3) for j in range(3))}
    for name in stream:  # the residual stream: a partner across some add is always kept here
        assert small.get_submodule(name).out_channels == model.get_submodule(name).out_channels
    inner = [f"layer{i}.{j}.conv1" for i in (1, 2, 3) for j in range(3)]
    widths = [small.get_submodule(n).out_channels for n in inner]
    assert all(_kept(model.get_submodule(n)) <= w for n, w in zip(inner, widths))
    assert sum(widths) < sum(model.get_submodule(n).out_channels for n in inner)
    assert got.params < masked.params and got.macs < masked.macs  # zeroed stream rows stay: real MACs


def test_channel_compaction_is_unchanged_by_neuron_support():
    """Channel-pruned models (consumer columns masked too) still compact to the same size."""
    torch.manual_seed(0)
    model = models.create("lenet5").eval()
    x = torch.randn(2, 1, 28, 28)
    pk.prune(model, 0.4, structure="channels", example_inputs=x)
    removed = sum(int((~m).sum()) for m in pk.masks.Masks.from_model(model).values())
    dense_params = sum(p.numel() for p in model.parameters())
    small = pk.compact(model, x)
    assert sum(p.numel() for p in small.parameters()) == dense_params - removed
