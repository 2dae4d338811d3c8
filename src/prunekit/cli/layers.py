"""The per-layer report of ``prunekit prune``: what each layer lost (weights, units, MACs), as text and JSON."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..metrics import Summary


def _shape(model: nn.Module, name: str) -> list[int] | None:
    module = dict(model.named_modules()).get(name)
    weight = getattr(module, "weight", None)
    return list(weight.shape) if isinstance(weight, torch.Tensor) else None


def rows(dense: nn.Module, before: Summary, pruned: nn.Module, after: Summary) -> list[dict[str, Any]]:
    """One record per counted layer: parameters before, nonzero after, removed, MACs before → after,
    and the weight's shape before → after (they differ where compaction removed units)."""
    later = {layer.name: layer for layer in after.layers}
    out = []
    for layer in before.layers:
        a = later.get(layer.name)
        kept = a.nonzero_params if a else 0
        out.append({"layer": layer.name, "type": layer.kind, "params": layer.params, "nonzero_after": kept,
                    "removed": layer.params - kept, "removed_fraction": 1 - kept / max(1, layer.params),
                    "macs": layer.macs, "macs_after": a.nonzero_macs if a else 0,
                    "shape": _shape(dense, layer.name), "shape_after": _shape(pruned, layer.name)})
    return out


def text_rows(records: list[dict[str, Any]]) -> list[list[str]]:
    """The records as table cells: layer, removed %, kept / params, MACs after / before, shape change."""
    def shape(r: dict) -> str:
        s, t = r["shape"], r["shape_after"]
        return "×".join(map(str, s)) + ("" if s == t or t is None else " → " + "×".join(map(str, t)))

    return [[r["layer"], f"{100 * r['removed_fraction']:.1f}%", f"{r['nonzero_after']:,}/{r['params']:,}",
             f"{r['macs_after']:,}/{r['macs']:,}", shape(r)] for r in records]


COLUMNS = ["layer", "removed", "weights kept", "MACs kept", "weight shape"]


def write_json(path: Path, records: list[dict[str, Any]], totals: dict[str, Any]) -> None:
    """The report as JSON: ``{"layers": [...], "totals": {...}}``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"layers": records, "totals": totals}, indent=1) + "\n")
