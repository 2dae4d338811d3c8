"""Sparse models that are small and fast for real: compact storage, sparse inference, ONNX, interop."""
from .export import check_onnx, export_onnx
from .inference import LayerChoice, SparsifyPlan, densify, sparsify
from .interop import from_torch_prune, to_torch_prune
from .kernels import SparseLinear, SparsePointwiseConv
from .storage import load, read, save

__all__ = [
    "save", "load", "read", "sparsify", "densify", "export_onnx", "check_onnx",
    "from_torch_prune", "to_torch_prune", "LayerChoice", "SparsifyPlan", "SparseLinear", "SparsePointwiseConv",
]
