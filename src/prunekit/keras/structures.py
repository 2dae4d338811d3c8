"""What unit a Keras kernel loses: single weights, whole units (neurons / filters), or N:M blocks.

Keras kernels keep units on the last axis (``Dense`` ``(in, out)``, ``Conv2D`` ``(kh, kw, in, out)``;
``DepthwiseConv2D`` ``(kh, kw, in, multiplier)`` has a unit per input channel × multiplier) and the
input (reduction) axis just before it. N:M blocks run along that input axis, the layout sparse tensor
cores expect; the block-local selection is prunekit's own :class:`prunekit.structures.NM`, fed the
kernel in PyTorch's ``(out, in, *k)`` layout.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import UnsupportedLayerError
from ..scope import keep_per_block
from ..structures import NM, parse
from .targets import Target

STRUCTURES = ("weights", "units")  # plus "N:M" strings such as "2:4"


def parse_nm(structure: str) -> NM | None:
    """The :class:`NM` structure for an ``"N:M"`` string, None for "weights"/"units"."""
    return parse(structure) if isinstance(structure, str) and ":" in structure else None


def check(structure: str, target: Target, nm: NM | None) -> None:
    """Raise :class:`UnsupportedLayerError` when ``target`` cannot be cut by ``structure``."""
    if structure == "units" and target.kind == "rnn":
        raise UnsupportedLayerError(
            f"structure='units' cannot prune {target.name} ({type(target.layer).__name__}): an RNN unit is coupled "
            "across its gates and its recurrent kernel; use structure='weights' or exclude=[...] that layer"
        )
    if nm is not None:
        if target.kind == "depthwise":
            raise UnsupportedLayerError(
                f"structure={nm.name!r} needs an input axis to block; {target.name} is a depthwise conv "
                f"(no channel reduction): exclude it with exclude=[keras.layers.{type(target.layer).__name__}]"
            )
        size = target.shape[-2]
        if size % nm.m:
            raise UnsupportedLayerError(
                f"structure={nm.name!r} needs the input size of {target.name} to be a multiple of {nm.m} "
                f"(it is {size}); exclude that layer with exclude=[{target.name!r}]"
            )


def num_units(structure: str, target: Target) -> int:
    """How many units ``target`` has under ``structure``."""
    shape = target.shape
    return int(np.prod(shape[-target.unit_ndim:])) if structure == "units" else int(np.prod(shape))


def unit_keep_to_masks(keep: np.ndarray, target: Target) -> tuple[np.ndarray, np.ndarray | None]:
    """A flat per-unit ``keep`` vector as ``(kernel mask, bias mask)``; a pruned unit loses its bias too."""
    shape = target.shape
    unit_shape = shape[-target.unit_ndim:]
    kernel = np.broadcast_to(keep.reshape(unit_shape), shape).copy()
    bias = keep.copy() if target.bias is not None else None
    return kernel, bias


def kernel_units_pruned(mask: np.ndarray, target: Target) -> np.ndarray:
    """Flat per-unit bool: True where every kernel entry of the unit is masked."""
    lead = tuple(range(mask.ndim - target.unit_ndim))
    return (~mask).all(axis=lead).reshape(-1)


def nm_keep(scores: np.ndarray, nm: NM) -> np.ndarray:
    """Keep the N highest of every M consecutive input weights (ties: the lower index goes first)."""
    moved = np.moveaxis(scores, (-1, -2), (0, 1))          # Keras (…, in, out) -> torch (out, in, …)
    t = torch.from_numpy(np.ascontiguousarray(moved)).float()
    keep = nm.unblock(keep_per_block(nm.blocks(t, None), nm.n), None, t.shape).numpy()
    return np.moveaxis(keep, (0, 1), (-1, -2))
