"""Exact selection in selection.keep_lowest_dropped: the sampled two-pass path and its tie fallback agree
with a plain stable sort (drop the k lowest; at equal score the earlier tensor and index go first)."""
from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from prunekit import selection


def _reference(tensors: list[torch.Tensor], k: int) -> list[torch.Tensor]:
    flat = torch.cat(tensors)
    order = torch.sort(flat, stable=True).indices
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    keep[order[:k]] = False
    return list(keep.split([t.numel() for t in tensors]))


def _select(tensors: list[torch.Tensor], k: int, chunk: int = 1000) -> list[torch.Tensor]:
    fns = [lambda t=t: iter(t.split(chunk)) for t in tensors]
    return selection.keep_lowest_dropped(fns, [t.numel() for t in tensors], k)


def _check(tensors, k, chunk=1000):
    got = _select(tensors, k, chunk)
    assert sum(int((~g).sum()) for g in got) == k
    for g, r in zip(got, _reference(tensors, k)):
        assert torch.equal(g, r)


def test_sampled_path_is_exact_on_a_large_model():
    gen = torch.Generator().manual_seed(1)
    tensors = [torch.randn(n, generator=gen) * s for n, s in ((700_000, 1.0), (500_000, 0.1), (300_000, 3.0))]
    for frac in (0.1, 0.5, 0.9, 0.999):
        _check(tensors, round(frac * 1_500_000), chunk=1 << 16)


def test_heavy_ties_at_the_threshold_fall_back_and_stay_exact():
    """Half the scores are exactly 0 (weights zeroed earlier): the k-th value sits in a huge tie."""
    gen = torch.Generator().manual_seed(2)
    a = torch.randn(800_000, generator=gen).abs()
    a[::2] = 0
    b = torch.zeros(400_000)
    for k in (500_000, 800_000, 800_001, 1_000_000):
        _check([a, b], k, chunk=1 << 16)


def test_already_pruned_units_go_first():
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(1_200_000, generator=gen)
    a[: 900_000] = -math.inf
    for k in (900_000, 950_000):
        _check([a], k, chunk=1 << 16)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(-5, 5), min_size=0, max_size=200), min_size=1, max_size=4),
       st.floats(0, 1), st.integers(1, 50))
def test_small_sample_matches_a_stable_sort(parts, frac, chunk):
    """With a tiny sample size every path (bracket hit, miss, tie fallback) runs on small inputs."""
    old = selection._SAMPLE
    selection._SAMPLE = 16
    try:
        tensors = [torch.tensor(p, dtype=torch.float32) for p in parts]
        total = sum(t.numel() for t in tensors)
        _check(tensors, round(frac * total), chunk)
    finally:
        selection._SAMPLE = old


class _Sampled:
    """A score function that can score sampled units directly (selection.SampledScoreFn)."""

    def __init__(self, t: torch.Tensor):
        self.t, self.sampled = t, 0

    def __call__(self):
        return iter(self.t.split(1 << 16))

    def sample(self, index: torch.Tensor) -> torch.Tensor:
        self.sampled += index.numel()
        return self.t[index]


def test_sampling_score_functions_skip_the_sample_pass_and_stay_exact():
    gen = torch.Generator().manual_seed(4)
    tensors = [torch.randn(n, generator=gen) for n in (900_000, 600_000)]
    fns = [_Sampled(t) for t in tensors]
    k = 1_200_000
    got = selection.keep_lowest_dropped(fns, [t.numel() for t in tensors], k)
    assert all(f.sampled > 0 for f in fns)
    for g, r in zip(got, _reference(tensors, k)):
        assert torch.equal(g, r)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(-5, 5), min_size=0, max_size=200), min_size=1, max_size=4),
       st.floats(0, 1))
def test_small_stratified_samples_match_a_stable_sort(parts, frac):
    """Score functions that sample (one draw per stride) stay exact on tiny inputs and heavy ties."""
    old = selection._SAMPLE
    selection._SAMPLE = 16
    try:
        tensors = [torch.tensor(p, dtype=torch.float32) for p in parts]
        k = round(frac * sum(t.numel() for t in tensors))
        got = selection.keep_lowest_dropped([_Sampled(t) for t in tensors], [t.numel() for t in tensors], k)
        for g, r in zip(got, _reference(tensors, k)):
            assert torch.equal(g, r)
    finally:
        selection._SAMPLE = old


def test_global_magnitude_on_a_large_model_drops_exactly_the_lowest_and_stays_monotone():
    """pk.prune's sampled bracket (no full scoring pass) against a stable sort of |w|, twice in a row."""
    import prunekit as pk
    from torch import nn

    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(1000, 900), nn.Linear(900, 700), nn.Linear(700, 10))
    for sparsity in (0.5, 0.93):
        weights = [m.weight.detach().abs().reshape(-1).clone() for m in model]
        before = [w == 0 for w in weights]
        scores = [torch.where(b, torch.full_like(w, -math.inf), w) for w, b in zip(weights, before)]
        pk.prune(model, sparsity)
        k = round(sparsity * sum(w.numel() for w in weights))
        for m, r in zip(model, _reference(scores, k)):
            assert torch.equal(m.weight.detach().reshape(-1) != 0, r)


def test_candidates_in_one_huge_tie_are_ranked_without_recursing_forever():
    """The k-th of the collected candidates when most of them are equal (sub-bracket cannot shrink)."""
    values = torch.zeros(300_000)
    values[::7] = 1.0
    for r in (1, 150_000, 257_142, 257_143, 300_000):
        assert selection._kth_value(values, r) == values.kthvalue(r).values


def test_exact_selection_through_a_large_block_of_tied_scores():
    """Scores with ~10^5 equal values (SparseGPT's pruned weights, Wanda on always-zero inputs) once recursed forever."""
    from prunekit.selection import keep_lowest_dropped

    s = torch.cat([torch.full((200_000,), -1.0), torch.rand(200_000, generator=torch.Generator().manual_seed(0))])
    for k in (200_000, 150_000, 250_000):
        keep = keep_lowest_dropped([lambda: [s]], [s.numel()], k)[0]
        assert int((~keep).sum()) == k
        assert bool((s[~keep] <= s[keep].min()).all())
        if k <= 200_000:  # ties go in index order
            assert bool((~keep[:k]).all())
