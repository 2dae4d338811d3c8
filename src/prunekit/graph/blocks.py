"""Residual blocks found by tracing, and their removal: ``y = x + f(x)`` becomes ``y = x``.

A module is *residual* when its output lies on a chain of additions that starts at its input (an
identity shortcut), or adds a parameter-free transform of its input (an option-A padded shortcut)
or a projection of it. A *block* is a residual module with no residual module inside it (a ResNet
basic block, an inverted residual, a pre-norm Transformer layer). A block can be removed when its
shortcut is the identity, its output has its input's shape, it runs once per forward pass, and
zeroing every one of its parameters turns it into the identity on the example inputs (checked,
so an op after the addition such as a post-norm keeps it). Others are reported and kept.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from ..errors import CompactionError
from ..masks import mask_of

ADDS = {"add", "__add__", "__radd__", "add_", "__iadd__"}
# parameter-free elementwise ops after the addition that keep a tensor on the residual stream
STREAM_OPS = {"relu", "relu_", "gelu", "silu", "dropout", "contiguous", "clone", "to", "float", "type_as"}


@dataclass(eq=False)
class Block:
    """One residual block: its name, module, shortcut kind, whether it may be removed (and why not)."""

    name: str
    module: nn.Module
    shortcut: str  # "identity", "padded" (parameter-free, shape-changing) or "projection"
    removable: bool = False
    reason: str = ""
    macs: int = 0  # dense Linear/Conv MACs inside the block on the example inputs


@dataclass(eq=False)
class _Frame:
    name: str
    module: nn.Module
    x: torch.Tensor
    derived: set[int] = field(default_factory=set)   # tensors computed from x
    free: set[int] = field(default_factory=set)      # ... with no parameter on the way
    stream: dict[int, frozenset[str]] = field(default_factory=dict)  # on a residual chain from x: shortcut kinds


@dataclass(eq=False)
class _Seen:
    module: nn.Module
    calls: int = 0
    args: Any = None
    kwargs: Any = None
    x: torch.Tensor | None = None
    out: torch.Tensor | None = None
    kind: str | None = None


def first_tensor(value: Any) -> torch.Tensor | None:
    if hasattr(value, "to_tuple"):
        value = value.to_tuple()
    for t in tree_flatten(value)[0]:
        if isinstance(t, torch.Tensor) and t.is_floating_point():
            return t
    return None


class _Finder(TorchFunctionMode):
    """Follows every module's input through the torch calls its forward makes."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.frames: list[_Frame] = []
        self.seen: dict[str, _Seen] = {}
        self.alive: list[torch.Tensor] = []  # keeps ids unique while tracing
        self.params = {id(p) for p in model.parameters()}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = getattr(func, "__name__", "")
        ins = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        if not outs:
            return out
        self.alive.extend(outs)
        with_param = any(id(t) in self.params for t in ins)
        for f in self.frames:
            hit = [t for t in ins if id(t) in f.derived]
            if not hit:
                continue
            free = not with_param and all(id(t) in f.free for t in hit)
            kinds = self._stream(f, name, args, hit)
            for t in outs:
                f.derived.add(id(t))
                if free:
                    f.free.add(id(t))
                if kinds is not None:
                    f.stream[id(t)] = kinds
        return out

    @staticmethod
    def _stream(f: _Frame, name: str, args: tuple, hit: list[torch.Tensor]) -> frozenset[str] | None:
        """The shortcut kinds if this op's output stays on ``f``'s residual stream, else None."""
        if name in STREAM_OPS:
            on = [f.stream[id(t)] for t in hit if id(t) in f.stream]
            return frozenset().union(*on) if on else None
        if name not in ADDS or len(args) < 2 or not all(isinstance(a, torch.Tensor) for a in args[:2]):
            return None
        ids = [id(args[0]), id(args[1])]
        if not all(i in f.derived for i in ids):
            return None
        on = [f.stream[i] for i in ids if i in f.stream]
        if on:
            return frozenset({"identity"}).union(*on)
        frees = [i in f.free for i in ids]
        if all(frees):
            return None
        return frozenset({"padded" if any(frees) else "projection"})

    def pre(self, name: str):
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            x = first_tensor((args, kwargs))
            seen = self.seen.setdefault(name, _Seen(module))
            seen.calls += 1
            if x is None:
                self.frames.append(_Frame(name, module, torch.empty(0)))
                return
            seen.args, seen.kwargs, seen.x = args, kwargs, x
            self.frames.append(_Frame(name, module, x, {id(x)}, {id(x)}, {id(x): frozenset()}))

        return hook

    def post(self, name: str):
        def hook(module: nn.Module, args: tuple, kwargs: dict, out: Any) -> None:
            f = self.frames.pop()
            y = first_tensor(out)
            seen = self.seen[name]
            seen.out = y
            kinds = f.stream.get(id(y)) if y is not None and f.x.numel() else None
            if kinds and any(True for _ in module.parameters()):
                seen.kind = "projection" if "projection" in kinds else "padded" if "padded" in kinds else "identity"
            if y is not None:  # outer frames see the module's output like any op's
                self.alive.append(y)
                for outer in self.frames:
                    if id(f.x) in outer.derived and id(y) not in outer.derived:
                        outer.derived.add(id(y))

        return hook


def _identity_when_zeroed(seen: _Seen) -> bool:
    """Whether the block, with every parameter set to zero, returns its input on the recorded call."""
    z = copy.deepcopy(seen.module)
    with torch.no_grad():
        for p in z.parameters():
            p.zero_()
        y = first_tensor(z(*seen.args, **seen.kwargs))
    if y is None or y.shape != seen.x.shape:
        return False
    scale = 1.0 + float(seen.x.abs().max()) if seen.x.numel() else 1.0
    return bool(((y - seen.x).abs().max() <= 1e-6 * scale).item()) if y.numel() else True


def find_blocks(model: nn.Module, example_inputs: Any) -> list[Block]:
    """Every residual block of ``model`` on ``example_inputs``, in forward order, removable or not."""
    finder = _Finder(model)
    handles = []
    for name, module in model.named_modules():
        if name:
            handles.append(module.register_forward_pre_hook(finder.pre(name), with_kwargs=True))
            handles.append(module.register_forward_hook(finder.post(name), with_kwargs=True))
    args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), finder:
            model(*args)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    residual = [n for n, s in finder.seen.items() if s.kind is not None]
    macs = _macs(model, finder)
    blocks = []
    for name in residual:
        if any(o != name and o.startswith(name + ".") for o in residual):
            continue  # a stage or a whole model made of blocks: its blocks are the units
        seen = finder.seen[name]
        block = Block(name, seen.module, seen.kind, macs=macs.get(name, 0))
        if seen.kind != "identity":
            block.reason = f"its {seen.kind} shortcut changes the shape"
        elif seen.out.shape != seen.x.shape:
            block.reason = "its output shape differs from its input's"
        elif seen.calls > 1:
            block.reason = "it runs more than once per forward pass"
        elif not _identity_when_zeroed(seen):
            block.reason = "with its weights zeroed it is not the identity (an op follows the residual add)"
        else:
            block.removable = True
        blocks.append(block)
    return blocks


def _macs(model: nn.Module, finder: _Finder) -> dict[str, int]:
    """Dense Linear/Conv MACs of every module subtree, from the recorded calls (as ``metrics.summary`` counts)."""
    from ..metrics import layer_macs

    total: dict[str, int] = {}
    for name, seen in finder.seen.items():
        if seen.out is None or seen.x is None:
            continue
        n = layer_macs(seen.module, (seen.x,), seen.out)
        if n:
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                key = ".".join(parts[:i])
                total[key] = total.get(key, 0) + n
    return total


def is_removed(block: nn.Module) -> bool:
    """Whether every parameter of ``block`` is masked out entirely (how a removed block is marked)."""
    found = False
    for sub in block.modules():
        for pname, p in sub._parameters.items():
            if p is None:
                continue
            mask = mask_of(sub, pname)
            if mask is None or bool(mask.any()):
                return False
            found = True
    return found


class Skip(nn.Module):
    """What a removed block becomes when it is not an entry of a list: its input, unchanged."""

    def forward(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        return x


def drop_blocks(model: nn.Module, names: list[str]) -> nn.Module:
    """Remove the named blocks from ``model`` in place: list entries are deleted, others become :class:`Skip`.

    Layers left in a list are renumbered (``layer_idx``, used by key/value caches) and a config's
    ``num_hidden_layers`` (and ``layer_types``) follow the list that shrank.
    """
    by_parent: dict[str, list[str]] = {}
    for name in names:
        parent, _, leaf = name.rpartition(".")
        by_parent.setdefault(parent, []).append(leaf)
    for parent_name, leaves in by_parent.items():
        parent = model.get_submodule(parent_name) if parent_name else model
        if isinstance(parent, (nn.ModuleList, nn.Sequential)):
            old = len(parent)
            kept = [m for i, m in enumerate(parent) if str(i) not in leaves]
            dropped = sorted(int(i) for i in leaves)
            for i in reversed(dropped):
                del parent[i]
            if isinstance(parent, nn.ModuleList):
                _renumber(model, kept, old, dropped)
        else:
            for leaf in leaves:
                setattr(parent, leaf, Skip())
    return model


def _renumber(model: nn.Module, kept: list[nn.Module], old: int, dropped: list[int]) -> None:
    for i, layer in enumerate(kept):
        for sub in layer.modules():
            if isinstance(getattr(sub, "layer_idx", None), int):
                sub.layer_idx = i
    configs = {id(c): c for m in model.modules() if (c := getattr(m, "config", None)) is not None}
    for config in configs.values():
        for holder in [config, *(getattr(config, k) for k in ("text_config", "decoder") if hasattr(config, k))]:
            if getattr(holder, "num_hidden_layers", None) == old:
                holder.num_hidden_layers = old - len(dropped)
                types = getattr(holder, "layer_types", None)
                if isinstance(types, list) and len(types) == old:
                    holder.layer_types = [t for i, t in enumerate(types) if i not in dropped]


def removed_blocks(model: nn.Module, example_inputs: Any) -> list[str]:
    """Names of the removable blocks of ``model`` whose parameters are all masked out (cheap when none is)."""
    if not any(is_removed(m) for m in model.modules() if not isinstance(m, (nn.ModuleList, nn.Sequential))):
        return []
    return [b.name for b in find_blocks(model, example_inputs) if b.removable and is_removed(b.module)]


def without_removed(model: nn.Module, example_inputs: Any) -> tuple[nn.Module, list[str]]:
    """A copy of ``model`` without its removed blocks (other masks kept), and their names; ``model`` if none."""
    names = removed_blocks(model, example_inputs)
    if not names:
        return model, []
    small = drop_blocks(copy.deepcopy(model), names)
    try:
        args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
        with torch.no_grad():
            small.eval()(*args)
    except (RuntimeError, ValueError, IndexError, TypeError) as err:
        raise CompactionError(f"the model fails to run without blocks {', '.join(names)} ({err}); "
                              "its forward pass likely depends on the number of blocks") from err
    return small.train(model.training), names
