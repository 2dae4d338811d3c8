"""Sparse layers for inference: a Linear or 1×1 convolution whose weight is a CSR tensor.

Both compute ``W @ x`` with torch's CSR matmul over the input features laid out as columns, so a
weight that is 90 % zeros does a tenth of the multiply-adds (and reads a tenth of the weight bytes).
"""
from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _csr32(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` as CSR with int32 indices where they fit: MKL's kernels take int32, so int64 would be
    converted on every call (measured 1.5-5x slower at batch 1-8 here). Built from a valid CSR, so the
    invariant check is declined explicitly (which also keeps torch's "SEGFAULT" warning off normal runs)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        csr = weight.to_sparse_csr()
    if csr.values().numel() >= 2**31 or weight.shape[1] >= 2**31:
        return csr
    return torch.sparse_csr_tensor(csr.crow_indices().int(), csr.col_indices().int(), csr.values(), csr.shape,
                                   device=csr.device, check_invariants=False)


class SparseLinear(nn.Module):
    """``y = x Wᵀ + b`` with ``W`` held as a CSR tensor (inference only: no gradients flow to ``W``)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.out_features, self.in_features = weight.shape[0], weight.shape[1]
        with warnings.catch_warnings():  # torch flags CSR as beta on every conversion; it is what we want
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            self.register_buffer("weight", _csr32(weight.detach()))
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    @classmethod
    def from_dense(cls, layer: nn.Linear) -> "SparseLinear":
        return cls(layer.weight, layer.bias)

    def columns(self, cols: torch.Tensor) -> torch.Tensor:
        """``W @ cols + b`` for inputs as columns ``(in_features, n)``; returns ``(out_features, n)``."""
        if cols.shape[1] == 1:  # one input: sparse matrix-vector product, several times faster than spmm
            v = cols[:, 0]
            y = torch.mv(self.weight, v) if self.bias is None else torch.addmv(self.bias, self.weight, v)
            return y.unsqueeze(1)
        if self.bias is None:
            return torch.sparse.mm(self.weight, cols)
        return torch.addmm(self.bias.unsqueeze(1), self.weight, cols)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        return self.columns(x.reshape(-1, self.in_features).t()).t().reshape(*lead, self.out_features)

    def __deepcopy__(self, memo: dict) -> "SparseLinear":
        # torch cannot deepcopy CSR tensors (no storage); clone the weight and copy the rest as usual
        weight = self._buffers["weight"]
        memo[id(weight)] = weight.clone()
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        new.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return new

    def to_dense(self) -> nn.Linear:
        """The equivalent ``nn.Linear`` (for export, or further training)."""
        dense = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None)
        dense = dense.to(device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            dense.weight.copy_(self.weight.to_dense())
            if self.bias is not None:
                dense.bias.copy_(self.bias)
        return dense

    def extra_repr(self) -> str:
        nnz = self.weight.values().numel()
        return f"in_features={self.in_features}, out_features={self.out_features}, nnz={nnz}"


def is_pointwise(layer: nn.Module) -> bool:
    """A 1×1 convolution with no stride, padding, dilation or groups: a Linear over channels."""
    return (
        isinstance(layer, _CONVS)
        and all(k == 1 for k in layer.kernel_size)
        and all(s == 1 for s in layer.stride)
        and all(d == 1 for d in layer.dilation)
        and layer.groups == 1
        and (layer.padding == "valid" or all(p == 0 for p in layer.padding))
    )


class SparsePointwiseConv(SparseLinear):
    """A 1×1 convolution (1-D, 2-D or 3-D) as a CSR matmul over the channel axis."""

    def __init__(self, layer: nn.Module):
        super().__init__(layer.weight.flatten(1), layer.bias)
        self.dims = layer.weight.dim() - 2

    @classmethod
    def from_dense(cls, layer: nn.Module) -> "SparsePointwiseConv":
        return cls(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batched = x.dim() == self.dims + 2
        x = x if batched else x.unsqueeze(0)
        cols = x.movedim(1, 0).reshape(self.in_features, -1)
        y = self.columns(cols).reshape(self.out_features, x.shape[0], *x.shape[2:]).movedim(0, 1)
        return y if batched else y.squeeze(0)

    def to_dense(self) -> nn.Module:
        conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[self.dims - 1]
        dense = conv(self.in_features, self.out_features, 1, bias=self.bias is not None)
        dense = dense.to(device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            dense.weight.copy_(self.weight.to_dense().reshape(dense.weight.shape))
            if self.bias is not None:
                dense.bias.copy_(self.bias)
        return dense


def sparse_layer(layer: nn.Module) -> SparseLinear | None:
    """The CSR form of a Linear or pointwise conv, or None for any other layer."""
    if isinstance(layer, nn.Linear):
        return SparseLinear.from_dense(layer)
    if is_pointwise(layer):
        return SparsePointwiseConv.from_dense(layer)
    return None


def semi_structured(layer: nn.Linear) -> nn.Linear:
    """A copy of ``layer`` whose weight is PyTorch's 2:4 semi-structured tensor (CUDA, cc >= 8.0)."""
    from torch.sparse import to_sparse_semi_structured

    fast = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    fast = fast.to(device=layer.weight.device, dtype=layer.weight.dtype)
    fast.weight = nn.Parameter(to_sparse_semi_structured(layer.weight.detach()), requires_grad=False)
    if layer.bias is not None:
        fast.bias = nn.Parameter(layer.bias.detach().clone(), requires_grad=False)
    return fast


def semi_structured_available(device: torch.device) -> bool:
    """Whether ``device`` is a CUDA GPU with compute capability >= 8.0 (sparse tensor cores)."""
    return device.type == "cuda" and torch.cuda.is_available() and torch.cuda.get_device_capability(device)[0] >= 8
