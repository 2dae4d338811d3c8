"""pk.sparsify: run pruned layers with sparse kernels where, measured on this machine, that is faster.

Sparse kernels only pay at high sparsity, and where they start to pay depends on the layer's shape,
the batch size and the hardware. So each candidate layer is timed on the input it really receives
from ``example_inputs``, dense against sparse, and keeps whichever is faster; the choice, both
timings and the reason are recorded in the returned model's ``sparsify_plan``.
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from ..errors import PruneError
from ..inputs import check_forward
from ..masks import unprune
from ..metrics import time_interleaved
from ..structures import NM
from ..structures.tensors import extra_weights, is_attention
from .kernels import SparseLinear, is_pointwise, semi_structured, semi_structured_available, sparse_layer

RTOL = 1e-4


def tolerance(dtype: torch.dtype) -> float:
    """How far a sparse kernel's output may sit from the dense layer's, relative to the output's scale:
    1e-4, or four rounding units of a half-precision dtype, whose kernels (2:4 tensor cores, cuSPARSE)
    round their float32 sums in their own order and so differ from dense by an ulp or two."""
    return max(RTOL, 4 * torch.finfo(dtype).eps) if dtype.is_floating_point else RTOL


@dataclass
class LayerChoice:
    """What :func:`sparsify` decided for one layer, and the median timings (ms) it decided on."""

    name: str
    kind: str
    sparsity: float
    choice: str  # "dense", "csr" or "2:4"
    dense_ms: float | None = None
    sparse_ms: float | None = None
    reason: str = ""


class SparsifyPlan(list):
    """The per-layer choices of one :func:`sparsify` call, printable as a table.

    ``dense_ms`` / ``sparse_ms``: the whole model on ``example_inputs`` with the chosen layers dense
    and sparse (None when no layer was a candidate or the policy did not time).
    """

    dense_ms: float | None = None
    sparse_ms: float | None = None

    def __str__(self) -> str:
        rows = [f"{'layer':<28} {'kind':<12} {'sparsity':>8} {'dense ms':>9} {'sparse ms':>9}  choice"]
        for c in self:
            d = "" if c.dense_ms is None else f"{c.dense_ms:.3f}"
            s = "" if c.sparse_ms is None else f"{c.sparse_ms:.3f}"
            rows.append(f"{c.name[:28]:<28} {c.kind[:12]:<12} {c.sparsity:>8.2%} {d:>9} {s:>9}  {c.choice} {c.reason}")
        if self.dense_ms is not None:
            rows.append(f"whole model: dense {self.dense_ms:.3f} ms, with the sparse layers {self.sparse_ms:.3f} ms")
        return "\n".join(rows)


def _time(dense: Callable[[], Any], sparse: Callable[[], Any], repeats: int, device: torch.device
          ) -> tuple[float, float]:
    """Median milliseconds of the dense and the sparse variant, interleaved (see metrics.time_interleaved)."""
    t = time_interleaved({"dense": dense, "sparse": sparse}, repeats, warmup=2, device=device)
    return t.median["dense"] * 1e3, t.median["sparse"] * 1e3


def _is_2_4(module: nn.Module) -> bool:
    """Whether the layer's nonzeros follow the 2:4 pattern along its input axis."""
    nm = NM(2, 4)
    return module.weight.shape[nm.input_axis(module)] % 4 == 0 and nm.holds(module.weight != 0, module)


def _capture(model: nn.Module, modules: dict[str, nn.Module], args: tuple) -> dict[str, torch.Tensor]:
    """The first input each of ``modules`` receives when ``model`` runs on ``args``."""
    seen: dict[str, torch.Tensor] = {}

    def hook(name: str):
        def fn(module: nn.Module, inputs: tuple) -> None:
            if inputs and isinstance(inputs[0], torch.Tensor):
                seen.setdefault(name, inputs[0])

        return fn

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in modules.items()]
    try:
        model(*args)
    finally:
        for h in handles:
            h.remove()
    return seen


def _no_fused_path(module: nn.Module, inputs: tuple) -> None:
    """A no-op pre-hook: its presence turns off TransformerEncoderLayer's fused path, which reads .weight."""


def _candidate(module: nn.Module, min_sparsity: float) -> float | None:
    if not (isinstance(module, nn.Linear) or is_pointwise(module)) or module.weight.layout != torch.strided:
        return None
    zeros = 1.0 - int(torch.count_nonzero(module.weight)) / module.weight.numel()
    return zeros if zeros >= min_sparsity else None


def _no_kernel(model: nn.Module, min_sparsity: float) -> tuple[list[LayerChoice], set[str]]:
    """Sparse recurrent and attention layers, which stay dense (with the reason), and the layers they read."""
    plan, covered = [], set()
    for name, module in model.named_modules():
        weights = [getattr(module, n) for n in extra_weights(module)]
        if is_attention(module):
            covered.add(f"{name}.out_proj" if name else "out_proj")
            weights.append(module.out_proj.weight)
        total = sum(w.numel() for w in weights)
        zeros = total and 1.0 - sum(int(torch.count_nonzero(w)) for w in weights) / total
        if total and zeros >= min_sparsity:
            reads = "in_proj and out_proj weights" if is_attention(module) else "weights"
            plan.append(LayerChoice(name, type(module).__name__, zeros, "dense", reason=(
                f"(no sparse kernel: {type(module).__name__} runs dense kernels on its {reads})")))
    return plan, covered


def _decide(name, module, x, zeros, policy, repeats, semi, margin) -> tuple[nn.Module | None, LayerChoice]:
    kind = type(module).__name__
    dense_out = module(x)
    builders = [("csr", sparse_layer)]
    if semi and isinstance(module, nn.Linear) and _is_2_4(module):
        builders.insert(0, ("2:4", semi_structured))
    failures = []
    for label, build in builders:
        try:
            fast = build(module)
            sparse_out = fast(x)
            break
        except (RuntimeError, ValueError, NotImplementedError) as err:
            failures.append(f"no {label} kernel: {err}")
    else:
        return None, LayerChoice(name, kind, zeros, "dense", reason=f"({'; '.join(failures)})")
    scale = float(dense_out.abs().max()) if dense_out.numel() else 0.0
    rtol = tolerance(dense_out.dtype)
    if not torch.allclose(sparse_out.float(), dense_out.float(), rtol=rtol, atol=rtol * max(scale, 1e-12)):
        return None, LayerChoice(name, kind, zeros, "dense", reason=f"({label} output differs beyond rtol {rtol:.0e})")
    dense_ms, sparse_ms = _time(lambda: module(x), lambda: fast(x), repeats, x.device)
    choice = LayerChoice(name, kind, zeros, "dense", dense_ms, sparse_ms)
    if policy == "sparse" or sparse_ms < (1 - margin) * dense_ms:
        choice.choice = label
        return fast, choice
    choice.reason = f"({label} slower)"
    return None, choice


def sparsify(
    model: nn.Module,
    example_inputs: Any,
    *,
    policy: str = "time",
    min_sparsity: float = 0.5,
    repeats: int = 15,
    margin: float = 0.05,
) -> nn.Module:
    """An inference copy of ``model`` whose sparse Linear / 1×1 conv layers use sparse kernels where faster.

    Each ``Linear`` or pointwise convolution with at least ``min_sparsity`` zeros is timed on the
    input it receives from ``example_inputs`` (a tensor or a tuple of positional inputs, with the
    batch size you will serve): torch's CSR matmul against the dense layer, median of ``repeats``
    interleaved runs. ``policy="time"`` takes the sparse kernel only where it is at least ``margin``
    faster, then times the whole model both ways and goes back to dense unless the mix is ``margin`` faster;
    ``policy="sparse"`` always takes the sparse kernel (for memory). On a CUDA GPU with compute
    capability >= 8.0, layers whose weights follow the 2:4 pattern are tried with PyTorch's
    semi-structured tensors first. LSTM / GRU / RNN and MultiheadAttention layers stay dense (torch
    runs them with fused dense kernels); the plan says so. Outputs match the dense model to ``rtol=1e-4``
    (float16 / bfloat16: four rounding units, see :func:`tolerance`). The copy carries masks no longer
    (it is for inference) and ``sparsify_plan`` lists every decision. The original model is not changed.
    """
    check_forward(model, example_inputs)
    if policy not in ("time", "sparse"):
        raise PruneError(f"policy must be 'time' or 'sparse' (got {policy!r})")
    fast = copy.deepcopy(model).eval()
    unprune(fast)
    args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    dense_only, covered = _no_kernel(fast, min_sparsity)
    zeros = {n: z for n, m in fast.named_modules() if n not in covered and (z := _candidate(m, min_sparsity)) is not None}
    modules = dict(fast.named_modules())
    plan, swaps = SparsifyPlan(dense_only), []
    with torch.no_grad():
        inputs = _capture(fast, {n: modules[n] for n in zeros}, args)
        device = next((x.device for x in inputs.values()), torch.device("cpu"))
        semi = semi_structured_available(device)
        if not semi and any(_is_2_4(modules[n]) and zeros[n] < 0.55 for n in inputs):
            warnings.warn(
                f"2:4 semi-structured kernels need a CUDA GPU with compute capability >= 8.0; this model runs "
                f"on {device.type}, so its 2:4 layers are timed with CSR and stay dense where that is faster",
                stacklevel=2,
            )
        for name in zeros:
            if name not in inputs:
                plan.append(LayerChoice(name, type(modules[name]).__name__, zeros[name], "dense",
                                        reason="(not called on example_inputs)"))
                continue
            replacement, choice = _decide(
                name, modules[name], inputs[name], zeros[name], policy, repeats, semi, margin
            )
            plan.append(choice)
            if replacement is not None:
                parent_name, _, attr = name.rpartition(".")
                parent = modules[parent_name]
                if isinstance(parent, nn.TransformerEncoderLayer):
                    replacement.register_forward_pre_hook(_no_fused_path)
                swaps.append((parent, attr, modules[name], replacement))
        def run(sparse: bool) -> Any:
            _use(swaps, sparse)
            return fast(*args)

        _use(swaps, sparse=True)
        if policy == "time" and swaps:
            plan.dense_ms, plan.sparse_ms = _time(lambda: run(False), lambda: run(True), repeats, device)
            keep = plan.sparse_ms < (1 - margin) * plan.dense_ms  # the same margin as per layer
            _use(swaps, sparse=keep)
            for c in plan if not keep else ():
                if c.choice != "dense":
                    c.choice, c.reason = "dense", f"(whole model not faster with {c.choice})"
    fast.sparsify_plan = plan
    return fast


def _use(swaps: list[tuple[nn.Module, str, nn.Module, nn.Module]], sparse: bool) -> None:
    """Put the sparse (or the original dense) layers of ``swaps`` into their parents."""
    for parent, attr, dense, fast in swaps:
        setattr(parent, attr, fast if sparse else dense)


def densify(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every CSR layer from :func:`sparsify` turned back into a dense layer."""
    memo = {id(m): m.to_dense() for m in model.modules() if isinstance(m, SparseLinear)}
    return copy.deepcopy(model, memo)
