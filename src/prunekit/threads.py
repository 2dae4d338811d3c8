"""Run many small tensor operations on one intra-op thread.

Pruning scores huge tensors in ~256 K-entry chunks and Monte Carlo gap estimates run thousands of
tiny forwards. Each such op is too small for OpenMP to pay off, and on a busy machine every parallel
region can stall on a descheduled worker: measured here 10-40x slower with 2 threads than with 1.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def one_thread(enabled: bool = True) -> Iterator[None]:
    """Set torch's intra-op threads to 1 for the block (when ``enabled``), then restore them."""
    before = torch.get_num_threads()
    if enabled and before != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
