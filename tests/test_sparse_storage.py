"""pk.save / pk.load: bit-exact round trips, compact encodings, file sizes, no unpickling."""
from __future__ import annotations

import io

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import prunekit as pk
from prunekit.sparse.storage import encoded_sizes, read


def lenet() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10))


def convnet() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10)
    )


def bits(t: torch.Tensor) -> torch.Tensor:
    """The raw bit pattern, so -0.0 and +0.0 (and NaN payloads) count as different."""
    return t.reshape(-1).contiguous().view(torch.uint8) if t.dtype != torch.bool else t


def dense_size(model: nn.Module) -> int:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return len(buf.getvalue())


@pytest.mark.parametrize("make", [lenet, convnet])
@pytest.mark.parametrize("sparsity", [0.5, 0.9, 0.98])
def test_round_trip_is_bit_exact(tmp_path, make, sparsity):
    model = make()
    pk.prune(model, sparsity=sparsity, scope="layer")
    weight = model[-1].weight
    with torch.no_grad():  # a kept weight that is -0.0 must come back as -0.0
        weight.view(-1)[torch.nonzero(weight.view(-1))[0]] = -0.0
    model(torch.randn(2, *((784,) if make is lenet else (3, 8, 8))))  # BatchNorm running stats move
    pk.save(model, tmp_path / "m.safetensors")
    fresh = make()
    pk.load(tmp_path / "m.safetensors", fresh)
    want, got = model.state_dict(), fresh.state_dict()
    assert list(want) == list(got)
    for key in want:
        assert want[key].dtype == got[key].dtype and torch.equal(bits(want[key]), bits(got[key])), key
    assert dict(pk.Masks.from_model(fresh)).keys() == dict(pk.Masks.from_model(model)).keys()


def test_loaded_masks_are_enforced_in_training(tmp_path):
    model = lenet()
    pk.prune(model, sparsity=0.9)
    pk.save(model, tmp_path / "m.safetensors")
    fresh = pk.load(tmp_path / "m.safetensors", lenet())
    opt = torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    for _ in range(3):
        opt.zero_grad()
        fresh(torch.randn(16, 784)).square().mean().backward()
        opt.step()
    assert pk.sparsity(fresh) >= 0.9


def test_load_replaces_existing_masks(tmp_path):
    model = lenet()
    pk.prune(model, sparsity=0.5, score="random")
    pk.save(model, tmp_path / "m.safetensors")
    other = lenet()
    pk.prune(other, sparsity=0.9)
    pk.load(tmp_path / "m.safetensors", other)
    for key, mask in pk.Masks.from_model(model).items():
        assert torch.equal(pk.Masks.from_model(other)[key], mask)


def test_fp16_values_are_rounded_once(tmp_path):
    model = lenet()
    pk.prune(model, sparsity=0.9)
    full, half = tmp_path / "full.safetensors", tmp_path / "half.safetensors"
    pk.save(model, full)
    pk.save(model, half, fp16=True)
    fresh = pk.load(half, lenet())
    for key, value in model.state_dict().items():
        got = fresh.state_dict()[key]
        assert got.dtype == value.dtype
        expected = value.half().to(value.dtype) if value.is_floating_point() else value
        assert torch.equal(got, expected), key
    assert half.stat().st_size < 0.7 * full.stat().st_size


@pytest.mark.parametrize("sparsity,limit", [(0.5, 0.56), (0.9, 0.15), (0.98, 0.05)])
def test_file_size_ratio(tmp_path, sparsity, limit):
    model = lenet()
    dense = dense_size(model)
    pk.prune(model, sparsity=sparsity, scope="layer")
    pk.save(model, tmp_path / "m.safetensors")
    ratio = (tmp_path / "m.safetensors").stat().st_size / dense
    assert ratio <= limit, f"{sparsity:.0%} sparse file is {ratio:.3f}x the dense torch.save"


def test_encoding_is_chosen_by_size(tmp_path):
    model = lenet()
    pk.prune(model, sparsity=0.5, scope="layer")
    assert set(pk.save(model, tmp_path / "a.safetensors").values()) == {"bitmask"}
    pk.prune(model, sparsity=0.99, scope="layer")
    assert set(pk.save(model, tmp_path / "b.safetensors").values()) == {"csr"}


@settings(max_examples=20, deadline=None)
@given(
    shape=st.lists(st.integers(1, 9), min_size=1, max_size=4),
    density=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_any_mask_round_trips(tmp_path_factory, shape, density, seed):
    gen = torch.Generator().manual_seed(seed)
    layer = nn.Linear(1, 1)
    layer.weight = nn.Parameter(torch.randn(shape, generator=gen))
    mask = torch.rand(shape, generator=gen) < density
    pk.masks.attach(layer, "weight", mask)
    path = tmp_path_factory.mktemp("m") / "m.safetensors"
    pk.save(layer, path)
    state, masks = read(path)
    assert torch.equal(masks["weight"], mask)
    assert torch.equal(bits(state["weight"]), bits(layer.weight.detach()))
    sizes = encoded_sizes(mask, 4)
    assert min(sizes.values()) <= -(-mask.numel() // 8) + int(mask.sum()) * 4


def test_tied_weights_save(tmp_path):
    emb = nn.Embedding(20, 8)
    head = nn.Linear(8, 20, bias=False)
    head.weight = emb.weight
    model = nn.Sequential(emb, head)
    pk.prune(model, sparsity=0.5)
    pk.save(model, tmp_path / "m.safetensors")
    fresh = nn.Sequential(nn.Embedding(20, 8), nn.Linear(8, 20, bias=False))
    fresh[1].weight = fresh[0].weight
    pk.load(tmp_path / "m.safetensors", fresh)
    assert torch.equal(fresh[0].weight, model[0].weight)


def test_plain_safetensors_file_is_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"0.weight": torch.zeros(2, 2)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(pk.StorageFormatError, match="pk.save"):
        pk.load(tmp_path / "x.safetensors", lenet())


def test_wrong_model_is_refused(tmp_path):
    model = lenet()
    pk.prune(model, sparsity=0.5)
    pk.save(model, tmp_path / "m.safetensors")
    with pytest.raises(pk.MaskMismatchError):
        pk.load(tmp_path / "m.safetensors", convnet())
    small = nn.Sequential(nn.Linear(784, 30), nn.ReLU(), nn.Linear(30, 100), nn.ReLU(), nn.Linear(100, 10))
    with pytest.raises(pk.StorageFormatError, match="does not fit"):
        pk.load(tmp_path / "m.safetensors", small)


def test_neuron_masks_cover_biases(tmp_path):
    model = convnet()
    pk.prune(model, sparsity=0.5, structure="neurons")
    pk.save(model, tmp_path / "m.safetensors")
    fresh = pk.load(tmp_path / "m.safetensors", convnet())
    assert "0.bias" in pk.Masks.from_model(fresh)
    for key, value in model.state_dict().items():
        assert torch.equal(bits(fresh.state_dict()[key]), bits(value)), key
