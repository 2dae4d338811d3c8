"""Run many small tensor operations on one intra-op thread unless the cores torch would use are idle.

Pruning scores huge tensors in ~256 K-entry chunks and Monte Carlo gap estimates run thousands of
tiny forwards. On a busy machine every parallel region can stall on a descheduled worker: measured
here 10-40x slower with 2 threads than with 1 for tiny ops, 1.2-2x for 256 K chunks. On idle cores
the same chunked pass is 1.3-1.4x faster on 2 threads, so :func:`cores_busy` looks before choosing.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
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


def _running_here() -> int:
    """Threads of this process that are running or runnable (an OpenMP worker spins for a while)."""
    running = 0
    for task in os.scandir("/proc/self/task"):
        try:
            stat = Path(task.path, "stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        running += stat[stat.rindex(")") + 2] == "R"
    return running


def cores_busy() -> bool:
    """Whether other processes occupy cores that torch's intra-op threads would need, right now.

    Reads the kernel's count of runnable threads (``/proc/loadavg``) less this process's own, the
    least of three looks (a snapshot is noisy). Where that is unavailable (not Linux) it answers
    True, the safe side: one thread is never much slower, and never stalls.
    """
    threads = torch.get_num_threads()
    if threads == 1:
        return False
    try:
        cores = len(os.sched_getaffinity(0))
        others = min(int(Path("/proc/loadavg").read_text().split()[3].split("/")[0]) - _running_here()
                     for _ in range(3))
    except (OSError, ValueError, IndexError, AttributeError):
        return True
    return others + threads > cores
