"""The model zoo: parameter counts, forward shapes, and strict loading of the pretrained CIFAR ResNets."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import prunekit as pk

SHARED = Path(__file__).resolve().parents[2] / "shared"
RESNETS = SHARED / "models" / "cifar10-resnet"

COUNTS = {"lenet300": 266_610, "lenet5": 431_080, "resnet20": 269_722, "resnet32": 464_154,
          "resnet44": 658_586, "resnet56": 853_018}


def _count(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name,count", sorted(COUNTS.items()))
def test_parameter_counts(name, count):
    assert _count(pk.models.create(name)) == count


@pytest.mark.parametrize("name,shape", [
    ("mlp", (2, 1, 28, 28)), ("lenet300", (2, 1, 28, 28)), ("lenet5", (2, 1, 28, 28)),
    ("cnn", (2, 1, 8, 8)), ("resnet20", (2, 3, 32, 32)), ("vgg11", (2, 3, 32, 32)), ("vgg16", (2, 3, 32, 32)),
])
def test_forward_shapes(name, shape):
    model = pk.models.create(name, num_classes=7).eval()
    assert model(torch.randn(shape)).shape == (2, 7)


def test_small_inputs_and_options():
    assert pk.models.create("mlp", input_size=8, hidden=(32,))(torch.randn(3, 1, 8, 8)).shape == (3, 10)
    assert pk.models.create("cnn", in_channels=3, input_size=(8, 12))(torch.randn(3, 3, 8, 12)).shape == (3, 10)
    assert pk.models.create("lenet5", in_channels=3, input_size=32)(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    with pytest.raises(pk.PruneError, match="12"):
        pk.models.create("lenet5", input_size=8)
    with pytest.raises(pk.UnknownNameError, match="resnet20"):
        pk.models.create("resnet21")


def test_resnet_option_a_shortcut_has_no_parameters():
    model = pk.models.create("resnet20")
    block = model.layer2[0]
    assert block.downsample and block.pad == 8
    assert not any("shortcut" in k or "downsample" in k for k in model.state_dict())


def test_load_weights_strips_prefix_and_is_strict(tmp_path):
    src = pk.models.create("lenet300")
    path = tmp_path / "w.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}, "best": 1.0}, path)
    dst = pk.models.load_weights(pk.models.create("lenet300"), path)
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v)
    from safetensors.torch import save_file

    save_file(src.state_dict(), str(tmp_path / "w.safetensors"))
    pk.models.load_weights(pk.models.create("lenet300"), tmp_path / "w.safetensors")
    with pytest.raises(pk.CheckpointError, match="does not fit"):
        pk.models.load_weights(pk.models.create("lenet300", num_classes=5), path)
    with pytest.raises(pk.CheckpointError, match="does not exist"):
        pk.models.load_weights(src, tmp_path / "missing.pt")


def test_load_weights_refuses_pickled_objects(tmp_path):
    from fractions import Fraction  # any class outside weights_only's allow-list stands for "code"

    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"x": Fraction(1, 3)}}, path)
    with pytest.raises(pk.CheckpointError, match="safely"):
        pk.models.load_weights(pk.models.create("lenet300"), path)


@pytest.mark.skipif(not RESNETS.is_dir(), reason="../shared/models/cifar10-resnet not present")
@pytest.mark.parametrize("depth", [20, 32, 44, 56])
def test_pretrained_resnets_load_strictly(depth):
    (path,) = RESNETS.glob(f"resnet{depth}-*.th")
    model = pk.models.load_weights(pk.models.create(f"resnet{depth}"), path).eval()
    assert _count(model) == COUNTS[f"resnet{depth}"]
    raw = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    assert torch.equal(model.linear.weight, raw["module.linear.weight"])
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


@pytest.mark.parametrize("size", [8, 28])
def test_vit_tiny_heads_prune_and_compact_on_digits_and_mnist_sizes(size):
    """The zoo's transformer traces: pruning half of its heads and compacting keeps the outputs."""
    torch.manual_seed(0)
    model = pk.models.create("vit-tiny", input_size=size).eval()
    x = torch.randn(4, 1, size, size)
    assert model(x).shape == (4, 10)
    pk.prune(model, 0.5, structure="heads", example_inputs=x)
    small = pk.compact(model, x)
    assert [b.attn.num_heads for b in small.blocks] == [2, 2]
    assert _count(small) < _count(model)
    torch.testing.assert_close(small(x), model(x), atol=1e-5, rtol=1e-5)
    with pytest.raises(pk.PruneError, match="patch"):
        pk.models.create("vit-tiny", input_size=9, patch=2)
