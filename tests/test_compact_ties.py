"""Compacted models whose tensors are shared (tied embeddings, one module used twice) save and load."""
from __future__ import annotations

import hashlib
import json

import pytest
import torch
from torch import nn

import prunekit as pk
from prunekit import safefiles


class TiedLM(nn.Module):
    """Input embedding tied to the output layer, and one MLP block applied twice."""

    def __init__(self, vocab: int = 20, d: int = 8):
        super().__init__()
        self.emb, self.head = nn.Embedding(vocab, d), nn.Linear(d, vocab, bias=False)
        self.head.weight = self.emb.weight
        self.block = nn.Sequential(nn.Linear(d, 16), nn.ReLU(), nn.Linear(16, d))
        self.again = self.block

    def forward(self, ids):
        x = self.emb(ids)
        x = x + self.block(x)
        return self.head(x + self.again(x))


def test_tied_and_shared_tensors_round_trip(tmp_path):
    torch.manual_seed(0)
    model, ids = TiedLM().eval(), torch.randint(0, 20, (2, 5))
    pk.prune(model, 0.5, structure="channels", example_inputs=ids)
    small = pk.compact(model, ids)
    assert small.block[0].out_features < 16 and small.again is small.block
    pk.save_compact(small, tmp_path / "lm")
    ties = json.loads((tmp_path / "lm" / "manifest.json").read_text())["ties"]
    assert ties == {"head.weight": "emb.weight", "again.0.weight": "block.0.weight", "again.0.bias": "block.0.bias",
                    "again.2.weight": "block.2.weight", "again.2.bias": "block.2.bias"}
    loaded = pk.load_compact(tmp_path / "lm", TiedLM).eval()
    assert loaded.head.weight is loaded.emb.weight and loaded.again[0].weight is loaded.block[0].weight
    other = torch.randint(0, 20, (3, 7))
    assert torch.equal(loaded(other), small(other))


def test_untied_factory_is_tied_as_saved(tmp_path):
    """A factory that builds the layers untied still gets the tie the saved model had."""
    torch.manual_seed(0)
    model, ids = TiedLM().eval(), torch.randint(0, 20, (2, 5))
    pk.prune(model, 0.5, structure="channels", example_inputs=ids)
    pk.save_compact(pk.compact(model, ids), tmp_path / "lm")

    def untied():
        m = TiedLM()
        m.head.weight = nn.Parameter(m.emb.weight.detach().clone())
        return m

    loaded = pk.load_compact(tmp_path / "lm", untied)
    assert loaded.head.weight is loaded.emb.weight


def test_bad_ties_are_refused(tmp_path):
    torch.manual_seed(0)
    model, ids = TiedLM().eval(), torch.randint(0, 20, (2, 5))
    pk.prune(model, 0.5, structure="channels", example_inputs=ids)
    pk.save_compact(pk.compact(model, ids), tmp_path / "lm")
    manifest = tmp_path / "lm" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["ties"]["head.weight"] = "nothing.weight"
    text = json.dumps(data)
    manifest.write_text(text)
    weights = tmp_path / "lm" / "model.safetensors"
    tensors, meta = safefiles.read(weights, pk.StorageFormatError, "weights")
    meta.pop(safefiles.DIGEST)
    safefiles.write(weights, tensors, {**meta, "manifest_sha256": hashlib.sha256(text.encode()).hexdigest()})
    with pytest.raises(pk.StorageFormatError, match="ties 'head.weight' to 'nothing.weight'"):
        pk.load_compact(tmp_path / "lm", TiedLM)


def test_load_without_factory_needs_a_transformers_model(tmp_path):
    torch.manual_seed(0)
    model, ids = TiedLM().eval(), torch.randint(0, 20, (2, 5))
    pk.prune(model, 0.5, structure="channels", example_inputs=ids)
    pk.save_compact(pk.compact(model, ids), tmp_path / "lm")
    with pytest.raises(pk.InvalidArgumentError, match="pass factory="):
        pk.load_compact(tmp_path / "lm")
