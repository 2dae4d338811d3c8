"""Gradient and random scores, the registry, and user-defined scores."""
from __future__ import annotations

import torch
from torch import nn

import prunekit as pk
from conftest import mlp


def batch(seed=0, n=32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 20, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_gradient_score_ranks_w_times_grad():
    model = mlp()
    x, y = batch()
    ref = mlp()
    nn.functional.cross_entropy(ref(x), y).backward()
    expected = {n: (p * p.grad).abs() for n, p in ref.named_parameters() if n.endswith("weight")}
    masks = pk.prune(model, 0.6, score="gradient", data=(x, y))
    kept = torch.cat([expected[n][m] for n, m in masks.items()])
    dropped = torch.cat([expected[n][~m] for n, m in masks.items()])
    assert kept.min() >= dropped.max()
    assert all(p.grad is None for p in model.parameters())  # user's grads left as found


def test_gradient_over_iterable_of_batches_and_custom_loss():
    model = mlp()
    data = [batch(0), batch(1)]
    calls = []

    def loss_fn(out, y):
        calls.append(1)
        return nn.functional.cross_entropy(out, y)

    pk.prune(model, 0.5, method="global-gradient", data=data, loss_fn=loss_fn)
    assert len(calls) == 2
    assert pk.sparsity(model) == 0.5


def test_gradient_does_not_touch_batchnorm_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 16), nn.BatchNorm1d(16), nn.Linear(16, 10)).train()
    before = model[1].running_mean.clone()
    pk.prune(model, 0.5, score="gradient", data=batch())
    assert torch.equal(model[1].running_mean, before) and model.training


def test_custom_score_class_and_registry():
    @pk.scores.register("test-inverse-magnitude")
    class InverseMagnitude(pk.scores.Score):
        """Keeps the smallest weights: the opposite of magnitude (a test-only score)."""

        def __call__(self, weight, context):
            return -weight.detach().abs()

    a, b = mlp(), mlp()
    before = a[0].weight.detach().abs().clone()
    masks = pk.prune(a, 0.5, score="test-inverse-magnitude", scope="layer")
    pk.prune(b, 0.5, score=InverseMagnitude(), scope="layer")
    assert before[masks["0.weight"]].max() <= before[~masks["0.weight"]].min()
    assert torch.equal(a[0].weight, b[0].weight)
    assert "test-inverse-magnitude" in pk.scores.registry.names()


def test_all_five_baselines_run():
    for method in pk.METHODS:
        model = mlp()
        pk.prune(model, compression=4, method=method, data=batch())
        s = pk.summary(model, batch()[0])
        assert 3.5 < s.compression < 4.5, method
