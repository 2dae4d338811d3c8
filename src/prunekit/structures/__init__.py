"""Structures: what unit is removed — single weights, neurons/filters, N:M blocks. One registry."""
from .base import CHUNK, TRANSPOSED, Structure, reduce_units, register, registry
from .neurons import Neurons
from .nm import NM, parse
from .weights import Weights

__all__ = ["Structure", "register", "registry", "Weights", "Neurons", "NM", "parse", "reduce_units", "CHUNK",
           "TRANSPOSED"]
