"""Residual blocks and Transformer layers as units: removing one makes ``y = x + f(x)`` the identity.

Blocks are found by tracing (:mod:`prunekit.graph.blocks`). A removed block has every parameter
masked to zero, which on its own turns it into the identity (checked when blocks are found);
``pk.compact`` then deletes it from the model (a layer list shrinks, a config's layer count follows).
Blocks whose shortcut changes the shape (option-A padding, projections) are never chosen.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch

from ..errors import NoPrunableLayersError, PruneError
from ..graph.blocks import Block, find_blocks, is_removed
from ..masks import attach
from ..scores import Score, Target
from .base import Context, Part, Structure, register


@dataclass(eq=False)
class Found:
    """The part's bookkeeping: its blocks, the model's dense MACs and the blocks' scores."""

    blocks: list[Block]
    total_macs: int
    scores: torch.Tensor | None = None


def block_targets(block: Block) -> list[Target]:
    """Every parameter of a block (weights, biases, norms), each once."""
    seen, found = set(), []
    for mname, sub in block.module.named_modules():
        for pname, p in sub._parameters.items():
            if p is not None and id(p) not in seen:
                seen.add(id(p))
                prefix = f"{block.name}.{mname}" if mname else block.name
                found.append(Target(f"{prefix}.{pname}", sub, pname))
    return found


@register("blocks")
class Blocks(Structure):
    """Whole residual blocks (ResNet blocks, inverted residuals, pre-norm Transformer layers).

    Score with a block score (``block-influence``, ``skip-loss``, ``branch-norm``) or ``random``.
    ``sparsity`` is the fraction of removable blocks removed; ``macs_reduction=`` and
    ``latency_reduction=`` remove the fewest lowest-scored blocks that reach the target. At least
    one block stays. ``exclude=`` names blocks (or modules inside them) that stay.
    """

    needs_example_inputs = True
    uses_example_inputs = True

    def parts(self, ctx: Context) -> list[Part]:
        if ctx.example_inputs is None:
            raise PruneError("structure='blocks' traces the model: pass example_inputs= (a batch of inputs)")
        from ..metrics import summary

        found = find_blocks(ctx.model, ctx.example_inputs)
        blocks = [b for b in found if b.removable and not ctx.exclude(b.name, b.module)
                  and not any(ctx.exclude(f"{b.name}.{n}", m) for n, m in b.module.named_modules() if n)]
        if not blocks:
            kept = "; ".join(f"{b.name}: {b.reason or 'excluded'}" for b in found)
            raise NoPrunableLayersError(
                f"{type(ctx.model).__name__} has no removable residual block"
                + (f" ({kept})" if kept else " (no module adds its input to its output)")
            )
        total = summary(ctx.model, ctx.example_inputs).macs
        targets = [t for b in blocks for t in block_targets(b)]
        return [Part("blocks", [(b.name, b.module, None) for b in blocks], len(blocks), targets, 0,
                     len(blocks) - 1, data=Found(blocks, total))]

    def prepare(self, parts: list[Part], score: Score, ctx: Context) -> None:
        from ..scores.blocks import BlockScore

        found: Found = parts[0].data
        modules = [(b.name, b.module) for b in found.blocks]
        if isinstance(score, BlockScore):
            s = score.blocks(ctx.model, modules, ctx.example_inputs, ctx.state).float()
        else:
            s = score.units(len(modules), ctx.seed)
            if s is None:
                raise PruneError(f"score {getattr(score, 'name', score)!r} cannot rank blocks; use "
                                 "'block-influence', 'skip-loss', 'branch-norm' or 'random'")
            s = s.float().clone()
        s[s.isnan()] = float("inf")
        for i, b in enumerate(found.blocks):
            if is_removed(b.module):
                s[i] = -float("inf")  # masks are monotone: removed blocks stay removed
        found.scores = s

    def scores(self, part: Part, score: Score, ctx: Context) -> Iterator[torch.Tensor]:
        yield part.data.scores

    def apply(self, part: Part, keep: torch.Tensor) -> None:
        for b, k in zip(part.data.blocks, keep.tolist()):
            if not k:
                for t in block_targets(b):
                    attach(t.module, t.pname, torch.zeros(t.param.shape, dtype=torch.bool, device=t.param.device),
                           copy=False)

    def pruned(self, part: Part) -> int:
        return sum(is_removed(b.module) for b in part.data.blocks)

    def macs(self, parts: list[Part], keeps: list[torch.Tensor] | None = None) -> int:
        """Dense MACs of the model once the blocks not kept in ``keeps`` are removed (None: all kept)."""
        found: Found = parts[0].data
        keep = keeps[0].tolist() if keeps else [True] * len(found.blocks)
        return found.total_macs - sum(b.macs for b, k in zip(found.blocks, keep) if not k)
