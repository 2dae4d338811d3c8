"""Attention heads as units: whole heads of traced attention layers (query, key, value rows and output columns)."""
from __future__ import annotations

from .base import register
from .channels import Channels


@register("heads")
class Heads(Channels):
    """Whole attention heads, coupled across q/k/v projections and the output projection by tracing.

    Takes the options of :class:`Channels`; a part is the heads of one attention layer.
    """

    kind = "heads"
