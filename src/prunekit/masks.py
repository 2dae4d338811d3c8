"""Masks: boolean buffers beside pruned parameters, held at zero through any training loop.

A mask for ``module.weight`` is the buffer ``module.weight_mask`` (True = kept), so ``state_dict()``
carries it. Pruned entries are zero in the parameter itself: no ``weight_orig`` copy and no
per-forward multiply. Three hooks keep them zero without the user calling anything:

* a gradient hook zeroes the pruned entries of the gradient (plain SGD, clipping by norm, Adam state);
* a process-wide ``torch.optim`` step post-hook re-zeroes masked parameters after every optimizer
  step (momentum or Adam state from before pruning, weight decay, any optimizer);
* a ``load_state_dict`` post-hook re-applies the mask after weights are loaded.

A ``copy.deepcopy`` of a masked model is masked and hooked too: the set of masked names a module
carries hooks the copy's new parameters as it is copied (:class:`_MaskedNames`).
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import _WeightNorm
from torch.optim.optimizer import register_optimizer_step_post_hook
from torch.utils.hooks import RemovableHandle
from torch.utils.weak import WeakIdKeyDictionary

from .errors import MaskMismatchError
from .threads import cores_busy, one_thread

MASK_SUFFIX = "_mask"
MASKS_FORMAT = "prunekit.masks/1"
_CHUNK = 1 << 18  # entries zeroed at once: a weight chunk and its mask stay in cache
_MASKED_ATTR = "_prunekit_masked"  # set of parameter names masked on a module (survives deepcopy)


@dataclass
class _Hooked:
    module: "weakref.ReferenceType[nn.Module]"
    name: str
    handles: tuple[RemovableHandle, ...]


_HOOKED: WeakIdKeyDictionary = WeakIdKeyDictionary()  # nn.Parameter -> _Hooked


def _mask_of(entry: _Hooked) -> torch.Tensor | None:
    module = entry.module()
    return None if module is None else mask_of(module, entry.name)


@torch.no_grad()
def _after_optimizer_step(optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
    for group in optimizer.param_groups:
        for p in group["params"]:
            entry = _HOOKED.get(p)
            if entry is not None:
                mask = _mask_of(entry)
                if mask is not None:
                    _zero_pruned(p, mask)


_STEP_HOOK = register_optimizer_step_post_hook(_after_optimizer_step)


def _grad_hook(entry_ref: list) -> "callable":
    def hook(grad: torch.Tensor) -> torch.Tensor:
        mask = _mask_of(entry_ref[0])
        return grad if mask is None else grad.masked_fill(mask.logical_not(), 0)

    return hook


def _load_hook(name: str) -> "callable":
    def hook(module: nn.Module, incompatible_keys: object) -> None:
        mask = mask_of(module, name)
        if mask is not None:
            _zero_pruned(getattr(module, name), mask)

    return hook


_SAME_WIDTH_INT = {torch.float32: torch.int32, torch.float16: torch.int16, torch.bfloat16: torch.int16,
                   torch.float64: torch.int64}


@torch.no_grad()
def _zero_pruned(param: torch.Tensor, mask: torch.Tensor) -> None:
    """Set ``param`` to exactly +0 where ``mask`` is False, in place (NaN and infinities included).

    On CPU this runs chunk by chunk (on one thread when the cores are busy), so each chunk stays in cache and no full-size
    temporary is allocated; a float's bits are ANDed with the mask widened to all-ones/all-zeros,
    since torch's bool-input kernels (``where``, ``masked_fill_``) run 4-6x slower (measured).
    """
    as_int = _SAME_WIDTH_INT.get(param.dtype)
    if param.device.type != "cpu" or as_int is None or not (param.is_contiguous() and mask.is_contiguous()):
        param.masked_fill_(mask.logical_not(), 0)
        return
    step = _CHUNK // 4  # the widened mask is as large as the chunk: a smaller step keeps it small
    bits = torch.empty(min(param.numel(), step), dtype=as_int)
    with one_thread(param.numel() > step and cores_busy()):
        for p, m in zip(param.view(-1).view(as_int).split(step), mask.view(-1).view(torch.uint8).split(step)):
            b = bits[: p.numel()].copy_(m).neg_()  # 1 -> all ones, 0 -> 0
            p.bitwise_and_(b)


class _PrunedWeightNorm(_WeightNorm):
    """``weight_norm`` that computes 0 for a slice whose direction ``v`` is entirely pruned (not 0/0 = NaN).

    Other slices run torch's own kernel, so they compute bit for bit what they did before pruning.
    """

    def forward(self, weight_g: torch.Tensor, weight_v: torch.Tensor) -> torch.Tensor:
        empty = torch.norm_except_dim(weight_v, 2, self.dim) == 0
        return torch._weight_norm(weight_v.masked_fill(empty, 1), weight_g, self.dim).masked_fill(empty, 0)


def _hold_through_parametrization(module: nn.Module, name: str) -> None:
    """Masking a ``weight_norm``'s direction ``v`` (``original1``) makes the norm safe for empty slices."""
    if isinstance(module, parametrize.ParametrizationList) and name == "original1" and type(module[0]) is _WeightNorm:
        module[0] = _PrunedWeightNorm(module[0].dim)


class _MaskedNames(set):
    """The names of a module's masked parameters. Deep-copied with its module, it hooks the copy's new
    parameters (they are copied through the same ``memo``), so the copy's masks are held without
    calling anything; pickled, it is a plain set."""

    def __init__(self, names: Iterator[str] = (), owner: nn.Module | None = None):
        super().__init__(names)
        self.owner = weakref.ref(owner) if owner is not None else None

    def __deepcopy__(self, memo: dict) -> "_MaskedNames | set":
        import copy

        owner = self.owner() if self.owner is not None else None
        new_owner = memo.get(id(owner)) if owner is not None else None
        if new_owner is None:  # copied on its own, not as part of its module
            return set(self)
        out = _MaskedNames(self, new_owner)
        for name in self:
            param = owner._parameters.get(name)
            if param is not None:
                _hook(new_owner, name, copy.deepcopy(param, memo))
        return out

    def __reduce__(self):
        return (set, (list(self),))


def mask_of(module: nn.Module, name: str) -> torch.Tensor | None:
    """The mask of ``module.<name>`` (True = kept), or None when that parameter is not masked."""
    return module._buffers.get(name + MASK_SUFFIX)


def state_key(qname: str) -> str:
    """The ``state_dict`` key under which the mask of parameter ``qname`` is stored."""
    return qname + MASK_SUFFIX


def split_state(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A state dict's own tensors, and the masks it carries keyed by parameter name."""
    own = {k: v for k, v in state.items() if not k.endswith(MASK_SUFFIX)}
    masks = {k[: -len(MASK_SUFFIX)]: v for k, v in state.items() if k.endswith(MASK_SUFFIX)}
    return own, masks


def attach(module: nn.Module, name: str, mask: torch.Tensor, *, copy: bool = True) -> None:
    """Mask ``module.<name>`` with ``mask`` (True = kept), monotonically, and hook it so it stays zero.

    With ``copy=False`` the module takes ownership of ``mask`` (no copy: for freshly computed masks).
    """
    param = getattr(module, name)
    if tuple(mask.shape) != tuple(param.shape):
        raise MaskMismatchError(
            f"mask for {name!r} has shape {tuple(mask.shape)}, but the parameter is {tuple(param.shape)}"
        )
    mask = mask.to(device=param.device, dtype=torch.bool)
    _hold_through_parametrization(module, name)
    old = mask_of(module, name)
    if old is not None:
        old.logical_and_(mask)  # in place: masks only ever remove more
        mask = old
    else:
        module.register_buffer(name + MASK_SUFFIX, mask.clone() if copy else mask)
        mask = module._buffers[name + MASK_SUFFIX]
    _zero_pruned(param, mask)
    masked = getattr(module, _MASKED_ATTR, None)
    if not isinstance(masked, _MaskedNames):  # none yet, or a plain set from an unpickled module
        masked = _MaskedNames(masked or (), module)
        setattr(module, _MASKED_ATTR, masked)
    masked.add(name)
    if param not in _HOOKED:
        _hook(module, name, param, module.register_load_state_dict_post_hook(_load_hook(name)))


def _hook(module: nn.Module, name: str, param: torch.Tensor, *handles: RemovableHandle) -> None:
    """Hook ``param`` (``module.<name>``): zero pruned gradients and re-zero after optimizer steps."""
    ref: list = []
    handles = (param.register_hook(_grad_hook(ref)), *handles)
    ref.append(_Hooked(weakref.ref(module), name, handles))
    _HOOKED[param] = ref[0]


def detach(module: nn.Module, name: str) -> None:
    """Remove the mask of ``module.<name>`` and its hooks; the parameter keeps its values."""
    param = getattr(module, name)
    entry = _HOOKED.pop(param, None)
    if entry is not None:
        for h in entry.handles:
            h.remove()
    module._buffers.pop(name + MASK_SUFFIX, None)
    masked = getattr(module, _MASKED_ATTR, set())
    masked.discard(name)
    if not masked and hasattr(module, _MASKED_ATTR):
        delattr(module, _MASKED_ATTR)


def masked_parameters(model: nn.Module) -> Iterator[tuple[str, nn.Module, str]]:
    """``(qualified parameter name, module, parameter name)`` for every masked parameter."""
    for mname, module in model.named_modules():
        for name in sorted(getattr(module, _MASKED_ATTR, ())):
            yield (f"{mname}.{name}" if mname else name), module, name


def unprune(model: nn.Module) -> None:
    """Drop every mask and hook from ``model``; pruned weights stay zero until trained."""
    for _, module, name in list(masked_parameters(model)):
        detach(module, name)


class Masks(Mapping[str, torch.Tensor]):
    """What is pruned: qualified parameter name → boolean mask (True = kept).

    Masks know nothing about how they were chosen. They can be saved to a safetensors file (no
    pickle), loaded, and applied to a fresh copy of the same architecture.
    """

    def __init__(self, masks: Mapping[str, torch.Tensor]):
        self._masks = {k: v.detach().to(torch.bool) for k, v in masks.items()}

    def __getitem__(self, key: str) -> torch.Tensor:
        return self._masks[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._masks)

    def __len__(self) -> int:
        return len(self._masks)

    def __repr__(self) -> str:
        return f"Masks({len(self)} tensors, sparsity={self.sparsity:.4f})"

    @property
    def sparsity(self) -> float:
        """Fraction of masked-out entries over all tensors the masks cover."""
        total = sum(m.numel() for m in self._masks.values())
        kept = sum(int(m.sum()) for m in self._masks.values())
        return 0.0 if total == 0 else 1.0 - kept / total

    @classmethod
    def from_model(cls, model: nn.Module) -> "Masks":
        """The masks currently attached to ``model``."""
        return cls({q: mask_of(module, n) for q, module, n in masked_parameters(model)})

    def apply(self, model: nn.Module) -> "Masks":
        """Attach these masks to ``model`` (same architecture), zeroing and hooking the parameters.

        Idempotent, so it also re-hooks a model copied with ``copy.deepcopy`` or loaded whole.
        """
        params = dict(model.named_parameters())
        missing = [k for k in self._masks if k not in params]
        if missing:
            raise MaskMismatchError(
                f"masks name parameters the model does not have: {', '.join(missing[:5])}"
            )
        modules = dict(model.named_modules())
        for qname, mask in self._masks.items():
            mname, _, pname = qname.rpartition(".")
            attach(modules[mname], pname, mask)
        return Masks.from_model(model)

    def save(self, path: str | Path) -> None:
        """Write the masks to a safetensors file (with a digest, so damage is detected on load)."""
        from . import safefiles

        safefiles.write(path, self._masks, {"format": MASKS_FORMAT})

    @classmethod
    def load(cls, path: str | Path) -> "Masks":
        """Read masks written by :meth:`save` (plain tensors, nothing unpickled).

        A damaged file, or one that is not a masks file (weights, for instance), raises
        :class:`MaskMismatchError` naming it.
        """
        from . import safefiles

        tensors, meta = safefiles.read(path, MaskMismatchError, "masks file (Masks.save)")
        if meta.get("format") != MASKS_FORMAT:
            raise MaskMismatchError(f"{path} is not a masks file (format {meta.get('format')!r}); "
                                    "write masks with Masks.save")
        wrong = [k for k, v in tensors.items() if v.dtype != torch.bool]
        if wrong:
            raise MaskMismatchError(f"{path}: {wrong[0]!r} is {tensors[wrong[0]].dtype}, not a boolean mask; "
                                    "is this a weights file?")
        return cls(tensors)
