"""Sparse models that are small and fast for real: compact storage, sparse inference, ONNX, interop."""
from .inference import LayerChoice, SparsifyPlan, densify, sparsify
from .kernels import SparseLinear, SparsePointwiseConv
from .storage import load, save

__all__ = ["save", "load", "sparsify", "densify", "LayerChoice", "SparsifyPlan", "SparseLinear", "SparsePointwiseConv"]
