"""The Structure interface: how a model is cut into prunable units, and the one structure registry.

The engine (``prunekit.engine``) runs every structure the same way: ``parts`` cuts the model into
:class:`Part` s (units that a layer scope compares together: one parameter, or one coupled group of
channels), ``scores`` turns a registered score into one number per unit, a scope picks the units to
drop, and ``apply`` turns each part's ``keep`` vector into parameter masks.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..errors import NoPrunableLayersError, UnsupportedLayerError
from ..inputs import check_ties
from ..masks import attach, mask_of
from ..names import Matcher
from ..registry import Registry
from ..scores import Score, ScoreContext, Target
from .tensors import behind, extra_weights, warn_locked

if TYPE_CHECKING:
    from ..scope import Scope

CHUNK = 1 << 18  # entries scored at once: bounds the temporaries of pruning huge tensors
TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
PRUNABLE_TYPES: tuple[type, ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, *TRANSPOSED)


@dataclass
class Context:
    """What a structure may look at while cutting a model: the model, the name rules, inputs and score state."""

    model: nn.Module
    exclude: Matcher
    prune_outputs: Matcher | bool = False
    example_inputs: Any = None
    seed: int = 0
    state: Any = None  # the score's prepared state (gradients, for example), set by the engine
    _outputs: set[str] | None = None

    def outputs(self) -> set[str]:
        """Names of the model's output layers that stay whole (see :func:`prunekit.outputs.output_layers`)."""
        if self._outputs is None:
            from ..outputs import output_layers

            modules = dict(self.model.named_modules())
            layers = [n for n, m in modules.items() if isinstance(m, PRUNABLE_TYPES)]
            found = output_layers(self.model, layers, self.example_inputs)
            if self.prune_outputs is True:
                found = set()
            elif self.prune_outputs:
                found = {n for n in found if not self.prune_outputs(n, modules[n])}
            self._outputs = found
        return self._outputs


@dataclass(eq=False)
class Part:
    """Units that a layer scope compares together: one parameter's units, or one coupled channel group.

    ``name`` is what per-layer ratio keys and messages call it; ``modules`` lists the (module name,
    module, parameter name or None) it lives in, for name rules. ``cap`` bounds how many units may go
    (no layer emptied, ``max_ratio``, unrankable units); ``round_to`` keeps ``width`` minus the
    dropped units a multiple of it. ``data`` is the structure's own bookkeeping; the engine sets
    ``unit_scores`` to a function yielding the part's unit scores in chunks, for the scope.
    """

    name: str
    modules: list[tuple[str, nn.Module, str | None]]
    size: int
    targets: list[Target]
    index: int = 0
    cap: int | None = None
    round_to: int = 1
    width: int | None = None
    data: Any = None
    unit_scores: Callable[[], Iterator[torch.Tensor]] | None = None  # set by the engine: scores in chunks


class Structure(ABC):
    """What unit is removed. A new structure is a subclass plus ``@pk.structures.register("name")``.

    The minimal interface: ``parts(ctx)`` (the units, grouped), ``scores(part, score, ctx)`` (one
    score per unit, in chunks; already-pruned units score −inf, units that must stay +inf),
    ``apply(part, keep)`` (masks from a boolean keep vector) and ``pruned(part)`` (units already
    gone). A structure whose units live in one parameter each subclasses :class:`TensorStructure`
    instead and defines only ``num_units``, ``to_units``, ``unit_mask`` and ``masks``.

    Class attributes the engine, harness and CLI read: ``removes_outputs`` (units are a layer's
    outputs, so output layers stay whole unless named in ``prune_outputs``), ``needs_example_inputs``
    / ``uses_example_inputs``, ``sparsity`` (fixed by the structure, as for N:M) and ``scope`` (a
    scope the structure requires).
    """

    name = "structure"
    removes_outputs = False
    needs_example_inputs = False
    uses_example_inputs = False
    sparsity: float | None = None
    scope: "Scope | None" = None

    @abstractmethod
    def parts(self, ctx: Context) -> list[Part]:
        ...

    @abstractmethod
    def scores(self, part: Part, score: Score, ctx: Context) -> Iterator[torch.Tensor]:
        ...

    @abstractmethod
    def apply(self, part: Part, keep: torch.Tensor) -> None:
        ...

    @abstractmethod
    def pruned(self, part: Part) -> int:
        ...

    def prepare(self, parts: list[Part], score: Score, ctx: Context) -> None:
        """Runs once after the score is prepared, before any selection (to score all units at once)."""

    def sampler(self, part: Part, score: Score, ctx: Context) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """A function scoring only the units at given indices, exactly as ``scores`` would; None if unsupported.

        Exact selection brackets its threshold from a sample: with a sampler it skips a full scoring pass.
        """
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def prunable(model: nn.Module, exclude: Any = (), *, layers_only: bool = False) -> list[Target]:
    """The weights prunekit prunes by default, minus ``exclude``: Linear and (transposed) Conv weights,
    and (unless ``layers_only``) LSTM / GRU / RNN and MultiheadAttention projection weights.

    ``exclude`` holds rules of :mod:`prunekit.names` (module names covering their submodules,
    parameter names, globs, types). A weight shared by several modules is counted once. A weight
    behind ``spectral_norm`` or ``weight_norm`` is pruned through the parametrization's input; other
    parametrized weights are left dense with a warning (see :mod:`prunekit.structures.tensors`).
    """
    skip = exclude if isinstance(exclude, Matcher) else Matcher(model, exclude)
    check_ties(model, lambda name, module: skip(name, module, "weight"), PRUNABLE_TYPES)
    warn_locked(model, PRUNABLE_TYPES, skip, layers_only)
    found, seen, any_prunable = [], set(), False
    for name, module, holder, pname, rule in _weights(model, layers_only):
        any_prunable = True
        param = getattr(holder, pname)
        if skip(name, module, rule) or id(param) in seen:
            continue
        seen.add(id(param))
        qname = f"{name}.{pname}" if holder is module else f"{name}.parametrizations.weight.{pname}"
        found.append(Target(qname.lstrip("."), holder, pname))
    if not any_prunable:
        kinds = "Linear, Conv1d/2d/3d or ConvTranspose" + ("" if layers_only else ", LSTM/GRU/RNN or MultiheadAttention")
        raise NoPrunableLayersError(f"{type(model).__name__} has no prunable layer ({kinds})")
    if not found:
        raise NoPrunableLayersError(f"exclude={list(skip.rules)!r} excludes every prunable layer")
    return found


def _weights(model: nn.Module, layers_only: bool) -> Iterator[tuple[str, nn.Module, nn.Module, str, str]]:
    """(layer name, layer, holder, tensor name, name for exclude rules) of every maskable weight."""
    for name, module in model.named_modules():
        if isinstance(module, PRUNABLE_TYPES):
            if parametrize.is_parametrized(module, "weight"):
                found = behind(module, "weight")
                if not isinstance(found, str) and not layers_only:
                    yield name, module, *found, "weight"
            elif isinstance(module.weight, nn.Parameter):
                yield name, module, module, "weight", "weight"
        elif not layers_only:
            for pname in extra_weights(module):
                yield name, module, module, pname, pname


class TensorStructure(Structure):
    """Units that live in one parameter each (weights, neurons, N:M blocks): one part per parameter."""

    units_are_entries = False  # one unit per entry of the parameter, in flattened order (weights)

    def check(self, module: nn.Module, pname: str) -> None:
        """Raise :class:`UnsupportedLayerError` when the parameter cannot be cut this way."""

    def parts(self, ctx: Context) -> list[Part]:
        targets = prunable(ctx.model, ctx.exclude, layers_only=self.removes_outputs)
        names = {id(m): n for n, m in ctx.model.named_modules()}
        if self.removes_outputs:
            kept = ctx.outputs()
            targets = [t for t in targets if names[id(t.module)] not in kept]
            if not targets:
                raise NoPrunableLayersError(
                    f"every prunable layer of {type(ctx.model).__name__} is an output layer ({', '.join(sorted(kept))}), "
                    f"kept whole by structure {self.name!r}; name it in prune_outputs=[...] to prune its outputs"
                )
        for t in targets:
            try:
                self.check(t.module, t.pname)
            except UnsupportedLayerError as err:  # name the tensor: the layer type alone may be ambiguous
                raise type(err)(f"{t.qname}: {err}") from None
        return [Part(t.qname, [(names[id(t.module)], t.module, t.pname)], self.num_units(t.module, t.pname), [t], i)
                for i, t in enumerate(targets)]

    def scores(self, part: Part, score: Score, ctx: Context) -> Iterator[torch.Tensor]:
        t = part.targets[0]
        old = mask_of(t.module, t.pname)
        for rows in self.row_chunks(t.module, t.pname, score.elementwise):
            with torch.no_grad():
                s = self.score_units(score, t.param[rows], t.module, ScoreContext(t, part.index, ctx.seed, ctx.state, rows))
                if old is not None:  # already pruned units go first: masks are monotone
                    s = s.masked_fill(self.unit_mask(old[rows], t.module).logical_not(), -float("inf"))
            yield s

    def sampler(self, part: Part, score: Score, ctx: Context) -> Callable[[torch.Tensor], torch.Tensor] | None:
        if not (self.units_are_entries and score.pointwise):
            return None
        t = part.targets[0]
        context = ScoreContext(t, part.index, ctx.seed, ctx.state)

        def sample(index: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                index = index.to(t.param.device)
                s = score(t.param.detach().reshape(-1)[index], context)
                old = mask_of(t.module, t.pname)
                if old is not None:  # already pruned entries score -inf, as in the full pass
                    s = s.masked_fill(old.reshape(-1)[index].logical_not(), -float("inf"))
            return s

        return sample

    def score_units(self, score: Score, weight: torch.Tensor, module: nn.Module, context: ScoreContext) -> torch.Tensor:
        """One score per unit of a block of rows of the parameter (elementwise scores, reduced)."""
        return self.to_units(score(weight, context), module, score.reduce)

    def apply(self, part: Part, keep: torch.Tensor) -> None:
        t = part.targets[0]
        for pname, mask in self.masks(keep.to(t.param.device), t.module, t.pname).items():
            attach(t.module, pname, mask, copy=False)

    def pruned(self, part: Part) -> int:
        t = part.targets[0]
        old = mask_of(t.module, t.pname)
        return 0 if old is None else int((~self.unit_mask(old, t.module)).sum())

    def row_chunks(self, module: nn.Module, pname: str, chunked: bool = True) -> list[slice]:
        """Blocks of rows (dim 0) whose unit scores are consecutive in unit order, ~256 K entries each."""
        param = getattr(module, pname)
        if not chunked or param.dim() == 0 or not self.rows_are_units_in_order(module):
            return [slice(None)]
        step = max(1, CHUNK // max(1, param[0].numel()))
        return [slice(i, i + step) for i in range(0, param.shape[0], step)]

    def rows_are_units_in_order(self, module: nn.Module) -> bool:
        """Whether a block of rows holds a consecutive run of units (True for row-major units)."""
        return True

    @abstractmethod
    def num_units(self, module: nn.Module, pname: str) -> int:
        ...

    @abstractmethod
    def to_units(self, scores: torch.Tensor, module: nn.Module, reduce: str) -> torch.Tensor:
        """Reduce elementwise scores (shaped like the parameter, or a block of its rows) to one score per unit."""
        ...

    @abstractmethod
    def unit_mask(self, mask: torch.Tensor, module: nn.Module) -> torch.Tensor:
        """Which units an existing elementwise mask still keeps (a unit is kept if any entry is)."""
        ...

    @abstractmethod
    def masks(self, keep: torch.Tensor, module: nn.Module, pname: str) -> dict[str, torch.Tensor]:
        """Elementwise masks for ``pname`` (and any companion parameter) from per-unit ``keep``."""
        ...


registry: Registry[Structure] = Registry("structure", Structure)
register = registry.register
