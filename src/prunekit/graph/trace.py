"""Tracing: run the model once under a TorchFunctionMode and propagate channel labels op by op.

Every tensor that carries channels gets a label tensor (element ids, broadcastable to its shape).
Each torch function call is handed to a rule (see ``rules/``) that couples, locks or passes labels.
Real tensors flow, so Python control flow, lambdas and library models trace as they run.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from ..errors import PruneError, UnsupportedOperationError
from .core import Graph, aligned
from .sizes import install, measured, uninstall
from .rules import LEAVES, RULES

IGNORED = {"__get__", "dim", "size", "numel", "__len__", "is_floating_point", "is_complex", "data_ptr",
           "__format__", "__repr__", "__bool__", "item", "tolist", "stride", "is_contiguous", "get_device",
           "__hash__", "__iter__", "storage_offset", "element_size", "nelement", "ndimension",
           "__setstate__", "requires_grad_", "_has_compatible_shallow_copy_type"}


class Tracer(TorchFunctionMode):
    """Records couplings into a :class:`Graph` while the model runs on example inputs."""

    def __init__(self, model: nn.Module, leaves: dict[type, Callable]):
        super().__init__()
        self.model = model
        self.graph = Graph(dict(model.named_modules()))
        self.labels: dict[int, torch.Tensor] = {}
        self.alive: list[torch.Tensor] = []
        self.stack: list[str] = [""]
        self.leaf_depth = 0
        self.leaves = leaves
        self.owner: dict[int, tuple[str, str]] = {}
        for mname, module in model.named_modules():
            for pname, t in list(module._parameters.items()) + list(module._buffers.items()):
                if t is not None:
                    self.owner.setdefault(id(t), (mname, pname))

    # label bookkeeping -------------------------------------------------------------------------
    def get(self, t: Any) -> torch.Tensor | None:
        return self.labels.get(id(t)) if isinstance(t, torch.Tensor) else None

    def set(self, t: torch.Tensor, labels: torch.Tensor | None) -> None:
        if labels is None:
            self.labels.pop(id(t), None)
            return
        self.alive.append(t)
        self.labels[id(t)] = self.graph.canonical(labels)

    def full(self, t: torch.Tensor) -> torch.Tensor:
        """Labels of ``t`` expanded to its full shape."""
        return self.get(t).expand(t.shape)

    def here(self) -> str:
        return self.stack[-1] or type(self.model).__name__

    def fail(self, op: str, why: str) -> None:
        raise UnsupportedOperationError(
            f"cannot resolve channel coupling through {op!r} in layer {self.here()!r}: {why}. "
            "Channel/head pruning needs every op between prunable layers to be understood: express it with "
            "supported torch ops, or prune this model with structure='weights' or 'neurons'"
        )

    def param(self, t: Any) -> tuple[str, str] | None:
        return self.owner.get(id(t)) if isinstance(t, torch.Tensor) else None

    # the mode ----------------------------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.leaf_depth:
            return out
        name = getattr(func, "__name__", str(func))
        if name in ("size", "numel", "nelement") or (
                name == "__get__" and getattr(getattr(func, "__self__", None), "__name__", "") == "shape"):
            return self._measured(args, kwargs, out)
        if name in IGNORED:
            return out
        flat, _ = tree_flatten((args, kwargs))
        tracked = [t for t in flat if self.get(t) is not None]
        fn = RULES.get(name)
        if not tracked and name not in _PRODUCERS:
            return out
        if fn is None:
            self.fail(name, "prunekit has no channel rule for this operation")
        self.graph.context = f"{name!r} in layer {self.here()!r}"
        try:
            fn(self, func, args, kwargs, out)
        except PruneError:
            raise
        except Exception as err:  # a rule that cannot follow this call: refused, never a raw error
            self.fail(name, f"its channel rule cannot follow this call ({type(err).__name__}: {err})")
        return out

    def _measured(self, args: tuple, kwargs: dict, out: Any) -> Any:
        """Sizes read from a tensor, remembering which channels they count (see :mod:`.sizes`)."""
        x = args[0]
        labels = self.get(x)
        if labels is not None:
            labels = aligned(labels, x.dim())
        dim = args[1] if len(args) > 1 else kwargs.get("dim")
        return measured(out, labels, None if dim is None else dim % max(x.dim(), 1))

    # module hooks: names for messages, atomic rules for leaf modules ----------------------------
    def _pre(self, name: str) -> Callable:
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            self.stack.append(name)
            if type(module) in self.leaves and not self.leaf_depth:
                self._leaf_inputs = (args, kwargs)
            if type(module) in self.leaves:
                self.leaf_depth += 1

        return hook

    def _post(self, name: str) -> Callable:
        def hook(module: nn.Module, args: tuple, kwargs: dict, out: Any) -> None:
            if type(module) in self.leaves:
                self.leaf_depth -= 1
                if not self.leaf_depth:
                    a, k = self._leaf_inputs
                    self.leaves[type(module)](self, name, module, a, k, out)
            self.stack.pop()

        return hook

    def run(self, example_inputs: Any) -> Any:
        handles = []
        for name, module in self.model.named_modules():
            handles.append(module.register_forward_pre_hook(self._pre(name), with_kwargs=True))
            handles.append(module.register_forward_hook(self._post(name), with_kwargs=True))
        args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
        was_training = self.model.training
        self.model.eval()
        self.graph.values = install(self.model)
        try:
            with torch.enable_grad(), self:  # grad mode keeps torch's fused fast paths off
                out = self.model(*args)
        finally:
            uninstall(self.model)
            self.model.train(was_training)
            for h in handles:
                h.remove()
        for t in tree_flatten(_plain(out))[0]:
            labels = self.get(t)
            if labels is not None:  # the model's outputs (classifier units) are kept
                self.graph.outputs.update(int(v) for v in labels.reshape(-1).unique().tolist())
        return out


_PRODUCERS = {"conv1d", "conv2d", "conv3d", "linear", "embedding", "addmm", "__getitem__", "zeros", "ones", "full"}


def _plain(out: Any) -> Any:
    """Model outputs as plain containers (dict-like outputs of library models included)."""
    if hasattr(out, "to_tuple"):
        return out.to_tuple()
    return out


def trace(model: nn.Module, example_inputs: Any) -> Graph:
    """Trace ``model`` on ``example_inputs`` and return its coupling graph."""
    tracer = Tracer(model, LEAVES)
    tracer.run(example_inputs)
    return tracer.graph
