"""Class 1 of issue 17: corrupt or foreign files raise the matching PruneError naming the file.

Also the property that keeps it so: any byte mutation of a file prunekit wrote either loads to exactly
the original tensors or raises a PruneError subclass — never another exception, never other tensors.
"""
from __future__ import annotations

import gzip
import json
import struct

import pytest
import torch
from conftest import convnet, mlp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

import prunekit as pk
from prunekit.data.cifar import ARCHIVE
from prunekit.data.idx import read_idx, IMAGES_MAGIC

X = torch.randn(2, 3, 16, 16)


def pruned_mlp() -> torch.nn.Module:
    model = mlp()
    pk.prune(model, 0.7)
    return model


def compact_net() -> torch.nn.Module:
    model = convnet().eval()
    pk.prune(model, 0.5, structure="channels", example_inputs=X)
    return pk.compact(model, X)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("valid")
    pk.save(pruned_mlp(), d / "m.safetensors")
    pk.Masks.from_model(pruned_mlp()).save(d / "masks.safetensors")
    pk.save_compact(compact_net(), d / "small")
    return d


def _loaders():
    return {
        "save": (lambda p: pk.load(p, mlp()), pk.StorageFormatError),
        "masks": (pk.Masks.load, pk.MaskMismatchError),
    }


# -- pk.load / Masks.load: truncated, empty, garbage, foreign, missing, folder ---------------------------
@pytest.mark.parametrize("kind", ["save", "masks"])
@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage", "header-lies", "missing", "folder"])
def test_damaged_tensor_file(files, tmp_path, kind, damage):
    load, error = _loaders()[kind]
    raw = (files / ("m.safetensors" if kind == "save" else "masks.safetensors")).read_bytes()
    path = tmp_path / "f.safetensors"
    if damage == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "garbage":
        path.write_bytes(b"\x89PNG not a tensor file at all" * 10)
    elif damage == "header-lies":  # header length claims more bytes than the file holds
        path.write_bytes(struct.pack("<Q", len(raw) * 10) + raw[8:])
    elif damage == "folder":
        path.mkdir()
    with pytest.raises(error) as info:
        load(path)
    assert str(path) in str(info.value)


def test_foreign_safetensors_are_refused(tmp_path):
    path = tmp_path / "w.safetensors"
    save_file({"0.weight": torch.zeros(32, 20)}, str(path))
    with pytest.raises(pk.StorageFormatError, match="w.safetensors"):
        pk.load(path, mlp())
    with pytest.raises(pk.MaskMismatchError, match="w.safetensors"):
        pk.Masks.load(path)


# -- compact folders: manifest not JSON, a list, lacking keys, naming other modules, indices out of range -
def _manifest_case(case: str, manifest: dict) -> str:
    plan = manifest["plan"]
    name = next(iter(plan["params"]))
    if case == "not-json":
        return "{not json"
    if case == "list":
        return json.dumps([manifest])
    if case == "no-plan":
        return json.dumps({"format": "prunekit-compact"})
    if case == "no-format":
        return json.dumps({"plan": plan})
    if case == "unknown-module":
        plan["params"]["nosuch.weight"] = plan["params"].pop(name)
    if case == "index-out-of-range":
        dims = plan["params"][name]
        dims[next(iter(dims))][-1] = 10_000
    if case == "bad-dim":
        plan["params"][name] = {"7": [0]}
    if case == "unknown-attr":
        plan["attrs"]["nosuch.out_channels"] = 3
    return json.dumps(manifest)


@pytest.mark.parametrize("case", ["not-json", "list", "no-plan", "no-format", "unknown-module",
                                  "index-out-of-range", "bad-dim", "unknown-attr"])
def test_bad_manifest(files, tmp_path, case):
    import shutil

    folder = tmp_path / "small"
    shutil.copytree(files / "small", folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(_manifest_case(case, manifest))
    with pytest.raises(pk.StorageFormatError, match="manifest.json"):
        pk.load_compact(folder, convnet)


def test_compact_folder_missing_or_a_file(tmp_path):
    with pytest.raises(pk.StorageFormatError, match="not a compact-model folder"):
        pk.load_compact(tmp_path / "nothing", convnet)
    (tmp_path / "f").write_text("x")
    with pytest.raises(pk.StorageFormatError, match="is a file"):
        pk.save_compact(compact_net(), tmp_path / "f")


def test_weights_of_another_compaction_are_refused(files, tmp_path):
    import shutil

    folder = tmp_path / "small"
    shutil.copytree(files / "small", folder)
    other = convnet(seed=3).eval()
    pk.prune(other, 0.25, structure="channels", example_inputs=X)
    pk.save_compact(pk.compact(other, X), tmp_path / "other")
    shutil.copy(tmp_path / "other" / "model.safetensors", folder / "model.safetensors")
    with pytest.raises(pk.StorageFormatError, match="does not belong"):
        pk.load_compact(folder, convnet)


# -- dataset files ----------------------------------------------------------------------------------------
def test_cifar_archive_truncated_or_not_gzip(files, tmp_path):
    (tmp_path / ARCHIVE).write_bytes(b"plain text, not gzip")
    with pytest.raises(pk.DataFileError, match=ARCHIVE):
        pk.data.load("cifar10", tmp_path)
    raw = gzip.compress(b"\0" * 200_000)
    (tmp_path / ARCHIVE).write_bytes(raw[: len(raw) // 2])
    with pytest.raises(pk.DataFileError, match=ARCHIVE):
        pk.data.load("cifar10", tmp_path)


def test_idx_with_corrupt_deflate_stream(tmp_path):
    raw = gzip.compress(struct.pack(">IIII", IMAGES_MAGIC, 2, 4, 4) + bytes(32))
    broken = raw[:12] + bytes(b ^ 0x5A for b in raw[12:-8]) + raw[-8:]
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(broken)
    with pytest.raises(pk.DataFileError, match="train-images-idx3-ubyte.gz"):
        read_idx(path, IMAGES_MAGIC)


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_data_dir_missing_or_a_file(tmp_path, name):
    with pytest.raises(pk.DataFileError, match="nowhere"):
        pk.data.load(name, tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(pk.DataFileError, match="file"):
        pk.data.load(name, tmp_path / "file")


# -- the property: every mutation loads the original tensors exactly, or raises a PruneError --------------
def _bits(t: torch.Tensor) -> bytes:
    return t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def _state(model: torch.nn.Module) -> dict[str, bytes]:
    return {k: _bits(v) for k, v in model.state_dict().items()}


def _mutate(raw: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    data = bytearray(raw)
    for pos, xor in edits:
        data[pos % len(data)] ^= xor
    return bytes(data[:cut % (len(data) + 1)] if cut is not None else data)


EDITS = st.lists(st.tuples(st.integers(0, 2**20), st.integers(1, 255)), min_size=1, max_size=3)
CUT = st.none() | st.integers(0, 2**20)
# Half the edits land in the header (the first few hundred bytes), where parsing is most fragile.
HEADER_EDITS = st.lists(st.tuples(st.integers(0, 600), st.integers(1, 255)), min_size=1, max_size=3)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["save", "masks", "manifest", "weights"]), edits=EDITS | HEADER_EDITS, cut=CUT,
       data=st.data())
def test_mutated_files_load_exactly_or_raise(files, tmp_path_factory, kind, edits, cut, data):
    import shutil

    work = tmp_path_factory.mktemp("mut")
    if kind == "save":
        target, original = work / "m.safetensors", files / "m.safetensors"
    elif kind == "masks":
        target, original = work / "masks.safetensors", files / "masks.safetensors"
    else:
        shutil.copytree(files / "small", work / "small")
        target = work / "small" / ("manifest.json" if kind == "manifest" else "model.safetensors")
        original = files / "small" / target.name
    target.write_bytes(_mutate(original.read_bytes(), edits, cut))
    try:
        if kind == "save":
            got = _state(pk.load(target, mlp()))
            want = _state(pk.load(original, mlp()))
        elif kind == "masks":
            got = {k: _bits(v) for k, v in pk.Masks.load(target).items()}
            want = {k: _bits(v) for k, v in pk.Masks.load(original).items()}
        else:
            got = _state(pk.load_compact(work / "small", convnet))
            want = _state(pk.load_compact(files / "small", convnet))
    except pk.PruneError as err:
        assert str(work) in str(err)
        return
    assert got == want
