"""Thread choice for chunked pruning: one thread when other work holds the cores, all of them when idle."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch
from torch import nn

import prunekit as pk
from prunekit import threads


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_one_thread_is_never_busy():
    assert torch.get_num_threads() == 1  # conftest
    assert threads.cores_busy() is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_spinning_processes_make_the_cores_busy(two_threads):
    import os

    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range(len(os.sched_getaffinity(0)))]
    try:
        time.sleep(0.5)  # started and spinning
        assert threads.cores_busy() is True
    finally:
        for p in spinners:
            p.kill()
            p.wait()


@pytest.mark.parametrize("busy", [True, False])
def test_masks_do_not_depend_on_the_thread_choice(two_threads, monkeypatch, busy):
    """Selection is exact on either path: the same masks, bit for bit, busy or idle."""
    monkeypatch.setattr("prunekit.engine.cores_busy", lambda: busy)
    monkeypatch.setattr("prunekit.masks.cores_busy", lambda: busy)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1024, 1024), nn.Linear(1024, 1024))  # above the sampling size
    reference = [m.weight.detach().clone() for m in model]
    masks = pk.prune(model, 0.9)
    torch.manual_seed(0)
    expected = nn.Sequential(nn.Linear(1024, 1024), nn.Linear(1024, 1024))
    with threads.one_thread():
        want = pk.prune(expected, 0.9)
    assert all(torch.equal(masks[k], want[k]) for k in want)
    assert sum(int((~masks[k]).sum()) for k in masks) == round(0.9 * 2 * 1024 * 1024)
    assert all(torch.equal(m.weight, r * masks[f"{i}.weight"]) for i, (m, r) in enumerate(zip(model, reference)))
