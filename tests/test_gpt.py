"""The zoo's causal Transformer LM: causal, sized as documented, trainable and prunable like any model."""
from __future__ import annotations

import pytest
import torch

import prunekit as pk
from prunekit.data.text import windows


def test_gpt_is_causal_and_shaped():
    torch.manual_seed(0)
    model = pk.models.create("gpt-tiny", num_classes=40, input_size=16).eval()
    idx = torch.randint(40, (2, 16))
    out = model(idx)
    assert out.shape == (2, 16, 40)
    changed = idx.clone()
    changed[:, 9] = (changed[:, 9] + 1) % 40
    after = model(changed)
    assert torch.allclose(out[:, :9], after[:, :9], atol=1e-6)  # the past never sees the future
    assert not torch.allclose(out[:, 9:], after[:, 9:])


def test_zoo_gpt_is_a_few_million_parameters_with_plain_linears():
    model = pk.models.create("gpt", num_classes=256)
    assert 0.5e6 < sum(p.numel() for p in model.parameters()) < 3e6
    linears = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    assert linears[:6] == ["blocks.0.attn.q", "blocks.0.attn.k", "blocks.0.attn.v", "blocks.0.attn.out",
                           "blocks.0.fc", "blocks.0.proj"]
    assert model.context == 128


def test_gpt_refuses_bad_inputs():
    model = pk.models.create("gpt-tiny", num_classes=10, input_size=8)
    with pytest.raises(pk.PruneError, match="context"):
        model(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(pk.PruneError, match="token ids"):
        model(torch.zeros(1, 8))
    with pytest.raises(pk.PruneError, match="heads"):
        pk.models.create("gpt-tiny", num_classes=10, heads=3)


def test_gpt_learns_a_pattern_and_pruned_weights_stay_zero():
    """pk.train and pk.evaluate handle (B, T, V) logits; a pruned LM keeps its zeros while training."""
    stream = torch.arange(600) % 7  # a periodic text: perfectly predictable after one period
    data = windows(stream, 16)
    torch.manual_seed(0)
    model = pk.models.create("gpt-tiny", num_classes=7, input_size=16)
    before = pk.evaluate(model, data)["loss"]
    pk.prune(model, 0.5, scope="layer", exclude=["head"])
    zeros = {n: p == 0 for n, p in model.named_parameters() if n.startswith("blocks") and p.dim() == 2}
    history = pk.train(model, data, steps=60, batch_size=8, lr=1e-2, optimizer="adam", progress=False)
    after = pk.evaluate(model, data)
    assert after["loss"] < 0.5 * before and after["top1"] > 0.8
    assert 0 <= history.records[-1]["train_top1"] <= 1
    params = dict(model.named_parameters())
    assert all((params[n][z] == 0).all() for n, z in zeros.items())
    assert sum(int(z.sum()) for z in zeros.values()) == sum(z.numel() for z in zeros.values()) // 2


def test_zoo_gpt_8x160_is_the_bench_lm_with_eight_blocks():
    """The LM bench's model: a few million parameters in 8 blocks, so 25 % of the layers is 2 whole blocks."""
    model = pk.models.create("gpt-8x160", num_classes=256).eval()
    assert sum(p.numel() for p in model.parameters()) == 2_576_960
    assert len(model.blocks) == 8 and model.context == 128
    assert model(torch.randint(256, (2, 128))).shape == (2, 128, 256)


def test_dropping_a_quarter_of_gpt_blocks_shrinks_the_layer_list():
    """structure='blocks' at sparsity 0.25 removes 2 of 8 decoder blocks; compact deletes them, same outputs."""
    torch.manual_seed(0)
    model = pk.models.create("gpt-8x160", num_classes=256, input_size=16).eval()
    x = torch.randint(256, (2, 16))
    pk.prune(model, 0.25, structure="blocks", score="block-influence", example_inputs=x)
    small = pk.compact(model, x)
    assert len(small.blocks) == 6
    torch.testing.assert_close(small(x), model(x), atol=1e-4, rtol=1e-4)
