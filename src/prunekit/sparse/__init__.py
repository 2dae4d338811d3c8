"""Sparse models that are small and fast for real: compact storage, sparse inference, ONNX, interop."""
from .storage import load, save

__all__ = ["save", "load"]
