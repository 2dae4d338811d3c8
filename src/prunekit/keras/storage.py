"""``save`` / ``load``: a pruned Keras model in one small safetensors file, read back without unsafe code.

Masked kernels are written with prunekit's compact encodings (:mod:`prunekit.sparse.storage`: kept
values plus a packed bitmask or CSR indices, whichever is smaller), every other variable dense. The
model's architecture is the Keras config JSON in the safetensors header; loading deserializes it with
``safe_mode=True`` (no lambdas, no pickles) and re-attaches the masks, so pruned weights stay zero
when training resumes. Optimizer state is not stored (recompile to train further).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import safefiles
from ..sparse.storage import decode, encode
from . import masks as kmasks
from .errors import StorageFormatError, require_keras
from .targets import check_built

FORMAT = "prunekit.keras/1"


def save(model: Any, path: str | Path, *, fp16: bool = False) -> dict[str, str]:
    """Write ``model`` (architecture, weights, masks) to ``path``; returns each masked variable's encoding.

    ``fp16=True`` stores float32 values as float16 (half the bytes, values rounded); loading casts back.
    """
    keras = require_keras()
    check_built(model)
    masks = kmasks.get(model)
    tensors: dict[str, torch.Tensor] = {}
    layout: list[list] = []
    for i, v in enumerate(model.weights):
        key = f"{i}:{v.path}"
        value = torch.from_numpy(np.ascontiguousarray(keras.ops.convert_to_numpy(v.value)))
        if v.path in masks and not masks[v.path][1].all():  # an all-kept mask costs bits and holds nothing
            encoded, info = encode(key, value, torch.from_numpy(masks[v.path][1]), fp16)
            tensors.update(encoded)
        else:
            info = {"encoding": "dense", "dtype": str(value.dtype).removeprefix("torch.")}
            tensors[key] = value.half() if fp16 and value.dtype == torch.float32 else value
        layout.append([key, info])
    config = keras.saving.serialize_keras_object(model)
    safefiles.write(path, tensors, {"format": FORMAT, "layout": json.dumps(layout), "config": json.dumps(config),
                                    "keras_version": keras.__version__})
    return {key.split(":", 1)[1]: info["encoding"] for key, info in layout if info["encoding"] != "dense"}


def load(path: str | Path, *, custom_objects: dict | None = None) -> Any:
    """The model written by :func:`save`, masks re-attached; its config is deserialized in safe mode."""
    keras = require_keras()
    tensors, meta = safefiles.read(path, StorageFormatError, "prunekit Keras file (prunekit.keras.save)")
    if meta.get("format") != FORMAT:
        raise StorageFormatError(f"{path} is not a prunekit Keras file (format {meta.get('format')!r}); "
                                 "write it with prunekit.keras.save (PyTorch files load with prunekit.load)")
    model = keras.saving.deserialize_keras_object(json.loads(meta["config"]), custom_objects=custom_objects,
                                                  safe_mode=True)
    layout = json.loads(meta["layout"])
    if len(layout) != len(model.weights):
        raise StorageFormatError(f"{path} holds {len(layout)} variables but its model config builds "
                                 f"{len(model.weights)}; the file is damaged or from another Keras version")
    for v, (key, info) in zip(model.weights, layout):
        if info["encoding"] == "dense":
            value, mask = tensors[key].to(getattr(torch, info["dtype"])), None
        else:
            value, mask = decode(Path(path), key, info, tensors)
        if tuple(value.shape) != tuple(v.shape):
            raise StorageFormatError(f"{path}: {key} is {tuple(value.shape)} in the file but {tuple(v.shape)} in the model")
        v.assign(value.numpy())
        if mask is not None:
            kmasks.attach(model, v, mask.numpy())
    return model
