"""Width and depth together: a MAC or latency target met by removing blocks, then channels.

``structure=["blocks", "channels"]`` splits the target ``t`` in log space: blocks go until the model
is ``t ** depth_share`` times cheaper (or faster), then channels until the whole target is met
(dense MACs counted on the original model; latency measured against the depth-pruned model). Blocks
are ranked by ``block_score``; channels by the ``score=`` given to prune. :func:`allocation` reports
what was removed: which blocks, and the width left in every channel group.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ..errors import InvalidSparsityError, PruneError
from ..graph.blocks import find_blocks, is_removed
from ..masks import Masks
from ..names import Matcher
from .base import Context, Part, Structure, register
from .blocks import Blocks
from .channels import Channels


@dataclass
class Allocation:
    """Where a pruned model lost its MACs: removed blocks, and per channel group (kept, total) widths."""

    blocks_removed: list[str]
    blocks_total: int
    widths: dict[str, tuple[int, int]] = field(default_factory=dict)
    macs_reduction: float = 1.0

    def __str__(self) -> str:
        narrowed = {k: v for k, v in self.widths.items() if v[0] < v[1]}
        lines = [f"MACs {self.macs_reduction:.2f}x fewer; blocks removed {len(self.blocks_removed)}/{self.blocks_total}"
                 + (f": {', '.join(self.blocks_removed)}" if self.blocks_removed else "")]
        lines += [f"  {k}: {a}/{b} channels" for k, (a, b) in narrowed.items()]
        return "\n".join(lines)


class _Width(Channels):
    """Channels of what the removed blocks leave: groups wholly inside removed blocks are not parts."""

    dead: list[int]

    def parts(self, ctx: Context) -> list[Part]:
        parts = super().parts(ctx)
        traced = parts[0].data.traced
        live = [p for p in parts if not all(traced.units[i].root in traced.gone for i in p.data.members)]
        self.dead = [i for p in parts if p not in live for i in p.data.members]
        if not live:
            raise PruneError("no channel group is left outside the removed blocks")
        for i, p in enumerate(live):
            p.index = i
        return live

    def macs(self, parts: list[Part], keeps: list[torch.Tensor] | None = None) -> int:
        traced = parts[0].data.traced
        gone = torch.zeros(len(traced.units), dtype=torch.bool)
        gone[self.dead] = True
        for p, keep in zip(parts, keeps or []):
            gone[torch.tensor(p.data.members)[~keep]] = True
        return traced.macs(gone)


@register("blocks+channels")
class Mixed(Structure):
    """Blocks then channels toward one MAC (``macs_reduction=``) or latency (``latency_reduction=``) target.

    Named ``"blocks+channels"`` (for configs), or ``structure=["blocks", "channels"]`` in ``pk.prune``.

    ``depth_share`` (0..1): the part of the target, in log space, met by removing blocks (0.5: a 4x
    target is 2x by blocks, then 2x by channels). Other options go to the channel structure.
    """

    name = "blocks+channels"
    needs_example_inputs = True
    uses_example_inputs = True

    def __init__(self, depth_share: float = 0.5, block_score: Any = "block-influence", **channel_options: Any):
        if not isinstance(depth_share, (int, float)) or not 0 <= depth_share <= 1:
            raise InvalidSparsityError(f"depth_share must be in [0, 1] (got {depth_share!r})")
        self.depth_share, self.block_score = float(depth_share), block_score
        self.width = _Width(**channel_options)
        self.allocation: Allocation | None = None

    def combine(self, run: Callable, score: Any, scope: Any, ctx: Context, sparsity: float | None, *,
                macs_reduction: float | None, latency_reduction: float | None, **kw: Any) -> Masks:
        """Run the engine for blocks, then for channels, so that the two together meet the target."""
        from ..latency import speedup
        from ..graph.compact import compact
        from ..metrics import summary
        from ..scores import registry as scores

        target = macs_reduction if macs_reduction is not None else latency_reduction
        if target is None or sparsity is not None:
            raise PruneError("structure=['blocks', 'channels'] meets macs_reduction= or latency_reduction=, not sparsity=")
        if not target >= 1:
            raise InvalidSparsityError(f"the reduction target must be >= 1 (got {target})")
        x = ctx.example_inputs
        depth = target ** self.depth_share
        block_score = scores.get(self.block_score)
        dense = summary(ctx.model, x).macs
        reference = compact(ctx.model, x, check=False)
        if depth > 1 + 1e-9:
            key = "macs_reduction" if macs_reduction is not None else "latency_reduction"
            run(Blocks(), block_score, scope, ctx, None, **{key: depth}, **kw)
        now = compact(ctx.model, x, check=False)
        done = dense / summary(now, x).macs if macs_reduction is not None else speedup(reference, now, x)
        if target / done > 1 + 1e-9:  # channels for the rest, measured against the depth-pruned model
            key = "macs_reduction" if macs_reduction is not None else "latency_reduction"
            run(self.width, score, scope, ctx, None, **{key: target / done}, **kw)
        self.allocation = allocation(ctx.model, x)
        return Masks.from_model(ctx.model)

    def parts(self, ctx: Context) -> list[Part]:
        raise PruneError("structure=['blocks', 'channels'] has no parts of its own: pk.prune runs it by combine()")

    def scores(self, part: Part, score: Any, ctx: Context) -> Any:
        raise PruneError("structure=['blocks', 'channels'] scores through its blocks and channels")

    def apply(self, part: Part, keep: torch.Tensor) -> None:
        raise PruneError("structure=['blocks', 'channels'] applies through its blocks and channels")

    def pruned(self, part: Part) -> int:
        return 0


def allocation(model: torch.nn.Module, example_inputs: Any) -> Allocation:
    """What a block- and/or channel-pruned ``model`` removed, and its MAC reduction once compacted."""
    from ..graph.compact import compact, pruned_roots
    from ..metrics import summary

    blocks = [b for b in find_blocks(model, example_inputs) if b.removable]
    removed = [b.name for b in blocks if is_removed(b.module)]
    widths: dict[str, tuple[int, int]] = {}
    ctx = Context(model, Matcher(model, ()), False, example_inputs)
    try:
        parts = Channels().parts(ctx)
    except PruneError:
        parts = []
    if parts:
        traced = parts[0].data.traced
        gone = pruned_roots(traced.graph)
        for p in parts:  # prunable channels kept / prunable channels (groups inside removed blocks left out)
            kept = sum(traced.units[i].root not in gone for i in p.data.members)
            if kept:
                widths[p.name] = (kept, len(p.data.members))
    small = compact(model, example_inputs, check=False)
    return Allocation(removed, len(blocks), widths, summary(model, example_inputs).macs / summary(small, example_inputs).macs)


def from_list(spec: list | tuple, options: dict[str, Any]) -> Structure:
    """The structure for a list of names: ``["blocks", "channels"]`` (either order) is :class:`Mixed`."""
    names = sorted(str(s) for s in spec)
    if names != ["blocks", "channels"]:
        raise PruneError(f"structure={list(spec)!r}: a list combines 'blocks' and 'channels' only")
    return Mixed(**options)


__all__ = ["Mixed", "Allocation", "allocation", "from_list"]
