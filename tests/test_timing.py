"""The one latency timer (metrics.time_interleaved) and the runtimes list (prunekit.runtimes)."""
from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from prunekit import runtimes
from prunekit.errors import PruneError
from prunekit.metrics import time_interleaved


def test_timer_ranks_a_slower_function_behind_and_states_threads():
    t = time_interleaved({"fast": lambda: time.sleep(0.001), "slow": lambda: time.sleep(0.003)}, repeats=9, warmup=1)
    assert t.median["slow"] > t.median["fast"] + 0.001  # 2 ms more per call
    assert t.ratio("slow", "fast") > 1.5
    assert t.threads == torch.get_num_threads()
    assert (t.repeats, t.warmup) == (9, 1)
    assert all(t.min[n] <= t.median[n] and t.spread[n] >= 0 for n in ("fast", "slow"))


def test_timer_rotates_which_candidate_goes_first():
    calls = []
    time_interleaved({k: (lambda k=k: calls.append(k)) for k in "abc"}, repeats=3, warmup=1)
    rounds = [calls[i:i + 3] for i in range(0, len(calls), 3)]
    assert rounds == [list("abc"), list("abc"), list("bca"), list("cab")]  # warm-up, then rotated rounds


def test_timer_refuses_nothing_to_time():
    with pytest.raises(ValueError):
        time_interleaved({}, repeats=3)


def test_runtimes_run_the_same_model_and_are_timed_side_by_side():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).eval()
    x = torch.randn(3, 8)
    runners = {rt: runtimes.build(model, x, rt) for rt in runtimes.available()}
    assert {"eager", "torchscript"} <= set(runners)
    with torch.no_grad():
        ref = model(x)
        for run in runners.values():
            out = run(x)
            out = torch.as_tensor(out[0]) if isinstance(out, list) else out
            torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    t = runtimes.latencies(runners, x, repeats=3)
    assert set(t.median) == set(runners) and t.threads == torch.get_num_threads()


def test_unknown_runtime_is_named_in_the_error():
    with pytest.raises(PruneError, match="tensorrt"):
        runtimes.build(nn.Linear(2, 2), torch.randn(1, 2), "tensorrt")
