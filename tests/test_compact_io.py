"""Saving compacted models without pickled code, and the torch.export round trip."""
from __future__ import annotations

import json

import pytest
import torch
from test_graph_models import cifar_resnet, transformer

import prunekit as pk
from prunekit.graph.io import export_compact


def _pruned_resnet():
    torch.manual_seed(0)
    model, x = cifar_resnet(20).eval(), torch.randn(2, 3, 32, 32)
    pk.prune(model, 0.5, structure="channels", example_inputs=x)
    return model, x


def test_save_load_round_trip_resnet(tmp_path):
    model, x = _pruned_resnet()
    small = pk.compact(model, x)
    pk.save_compact(small, tmp_path / "r20")
    manifest = json.loads((tmp_path / "r20" / "manifest.json").read_text())
    assert manifest["format"] == "prunekit-compact" and manifest["plan"]["params"]
    loaded = pk.load_compact(tmp_path / "r20", lambda: cifar_resnet(20))
    assert sum(p.numel() for p in loaded.parameters()) == sum(p.numel() for p in small.parameters())
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x), small(x), atol=1e-6, rtol=1e-6)


def test_save_load_round_trip_pruned_heads(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(2, 5, 16)
    model = transformer().eval()
    pk.prune(model, 0.5, structure="heads", example_inputs=x)
    small = pk.compact(model, x)
    pk.save_compact(small, tmp_path / "tf")
    loaded = pk.load_compact(tmp_path / "tf", transformer).eval()
    assert type(loaded[1].attn).__name__ == "PrunedMultiheadAttention"
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), small(x), atol=1e-6, rtol=1e-6)


def test_load_errors(tmp_path):
    with pytest.raises(pk.PruneError, match="not a compact-model folder"):
        pk.load_compact(tmp_path, lambda: cifar_resnet(20))
    model, x = _pruned_resnet()
    pk.save_compact(pk.compact(model, x), tmp_path / "r20")
    with pytest.raises(pk.PruneError, match="do not fit"):
        pk.load_compact(tmp_path / "r20", lambda: cifar_resnet(56))
    with pytest.raises(pk.PruneError, match="compact it first"):
        pk.save_compact(cifar_resnet(20), tmp_path / "plain")


def test_torch_export_round_trip(tmp_path):
    model, x = _pruned_resnet()
    small = pk.compact(model, x)
    path = export_compact(small, x, tmp_path / "r20.pt2")
    program = torch.export.load(str(path))
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), small(x), atol=1e-5, rtol=1e-5)
