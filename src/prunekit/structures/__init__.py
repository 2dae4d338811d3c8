"""Structures: what unit is removed — single weights, neurons/filters, N:M blocks, traced channels, heads.

One registry; every structure runs through the one engine (``prunekit.engine``).
"""
from ..scores import reduce_units
from .base import CHUNK, PRUNABLE_TYPES, TRANSPOSED, Context, Part, Structure, TensorStructure, prunable, register, registry
from .blocks import Blocks
from .channels import Channels
from .heads import Heads
from .mixed import Allocation, Mixed, allocation
from .neurons import Neurons
from .nm import NM, parse
from .weights import Weights

__all__ = ["Structure", "TensorStructure", "Part", "Context", "register", "registry", "prunable", "Weights",
           "Neurons", "NM", "parse", "Channels", "Heads", "Blocks", "Mixed", "Allocation", "allocation", "reduce_units", "CHUNK", "TRANSPOSED", "PRUNABLE_TYPES"]
