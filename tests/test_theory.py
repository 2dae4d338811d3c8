"""pk.theory: gap estimates against closed forms, magnitude vs random, max_sparsity's guarantees."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import prunekit as pk
from prunekit import theory
from prunekit.theory import allocate


@pytest.fixture(scope="module")
def fcn():
    return theory.random_network([16, 48, 48, 8], seed=3)


@pytest.mark.parametrize("rescale", [False, True])
@pytest.mark.parametrize("distribution", ["gaussian", "uniform"])
def test_random_pruning_of_gaussian_linear_matches_closed_form(rescale, distribution):
    layer = theory.random_network([48, 24], init="gaussian", std=0.5, seed=1)
    weight = layer[0].weight
    for s in (0.3, 0.75):
        rep = theory.gap(layer, distribution, sparsity=s, score="random", trials=80, n_inputs=64,
                         rescale=rescale, seed=2, confidence=0.99)
        est, low, high = rep.mean_sq_interval()
        exact = theory.expected_sq_gap_linear(weight, s, rescale=rescale,
                                              second_moment=theory.second_moment(distribution, 48))
        assert low <= exact <= high, (s, est, low, high, exact)
        assert high - low < 0.2 * exact  # the interval is informative, not trivially wide


def test_rescaling_trades_bias_for_variance_as_predicted():
    layer = theory.random_network([32, 32], seed=0)
    w = layer[0].weight
    plain = theory.expected_sq_gap_linear(w, 0.5)
    scaled = theory.expected_sq_gap_linear(w, 0.5, rescale=True)
    assert scaled == pytest.approx(2 * plain)  # s/(1−s) = 1 against s = 0.5
    assert plain == pytest.approx(0.5 * float(w.detach().pow(2).sum()))


@pytest.mark.parametrize("init", ["gaussian", "uniform"])
@pytest.mark.parametrize("kind", ["fcn", "cnn"])
def test_magnitude_gap_is_below_random_gap_at_equal_sparsity(kind, init):
    widths = [32, 96, 96, 10] if kind == "fcn" else [3, 8, 8, 4]
    net = theory.random_network(widths, kind, init, seed=5)
    for s in (0.3, 0.6, 0.8):
        mag = theory.gap(net, sparsity=s, score="magnitude", scope="layer", n_inputs=256)
        rnd = theory.gap(net, sparsity=s, score="random", scope="layer", trials=12, n_inputs=32)
        assert mag.achieved == pytest.approx(rnd.achieved)
        assert mag.mean_sq < rnd.mean_sq, (kind, init, s)
        # relative to ‖F(x)‖ (which removes the spread between inputs) the whole intervals are ordered
        assert mag.mean_sq_interval(relative=True)[2] < rnd.mean_sq_interval(relative=True)[1], (kind, init, s)


def test_report_norms_and_zero_sparsity(fcn):
    rep = theory.gap(fcn, sparsity=0.5, n_inputs=64)
    assert (rep.values("linf") <= rep.values("l2") + 1e-9).all()
    assert rep.sup() == pytest.approx(float(rep.values().max()))
    assert rep.quantile(0.5) <= rep.quantile(0.9) <= rep.sup()
    rel = rep.values(relative=True)
    assert torch.allclose(rel, rep.l2 / rep.ref_l2)
    assert rep.summary(eps=1.0)["p_low"] <= rep.summary(eps=1.0)["p_within"]
    zero = theory.gap(fcn, sparsity=0.0, n_inputs=16)
    assert zero.sup() == 0.0 and zero.prob_within(1e-12)[0] == 1.0
    with pytest.raises(pk.PruneError, match="norm"):
        rep.values("l1")


def test_user_model_is_untouched_and_inputs_tensor_accepted(fcn):
    before = {k: v.clone() for k, v in fcn.state_dict().items()}
    x = torch.randn(20, 16)
    rep = theory.gap(fcn, x, sparsity=0.8, score="random", trials=3)
    assert rep.l2.shape == (3, 20) and rep.over == "masks"
    assert all(torch.equal(before[k], v) for k, v in fcn.state_dict().items())
    assert pk.sparsity(fcn) == 0.0


def test_gap_is_deterministic_for_a_seed(fcn):
    a = theory.gap(fcn, sparsity=0.7, score="random", trials=4, n_inputs=16, seed=7)
    b = theory.gap(fcn, sparsity=0.7, score="random", trials=4, n_inputs=16, seed=7)
    c = theory.gap(fcn, sparsity=0.7, score="random", trials=4, n_inputs=16, seed=8)
    assert torch.equal(a.l2, b.l2) and torch.equal(a.linf, b.linf)
    assert not torch.equal(a.l2, c.l2)


def test_max_sparsity_is_deterministic_and_feeds_prune(fcn):
    a = theory.max_sparsity(fcn, eps=0.4, delta=0.1, n_inputs=128, steps=6, seed=1)
    b = theory.max_sparsity(fcn, eps=0.4, delta=0.1, n_inputs=128, steps=6, seed=1)
    assert a.ratios == b.ratios
    assert set(a.ratios) == {"0.weight", "2.weight", "4.weight"}
    for name, rep in a.reports.items():  # each layer alone meets the target at its ratio
        assert rep.prob_within(0.4)[1] >= 0.9
        assert rep.layers[name] == pytest.approx(a.ratios[name], abs=1 / 48**2)
    model = theory.random_network([16, 48, 48, 8], seed=3)
    pk.prune(model, score="magnitude", scope=a.ratios)
    for name, ratio in a.ratios.items():
        w = model.get_parameter(name)
        assert int((w == 0).sum()) == round(ratio * w.numel())
    assert pk.sparsity(model) == pytest.approx(a.sparsity)


def test_max_sparsity_is_monotone_in_eps_and_delta(fcn):
    def ratios(eps, delta):
        return theory.max_sparsity(fcn, eps=eps, delta=delta, n_inputs=96, steps=6).ratios

    by_eps = [ratios(eps, 0.1) for eps in (0.1, 0.3, 0.6, 1.2)]
    by_delta = [ratios(0.3, delta) for delta in (0.05, 0.2, 0.5)]
    for seq in (by_eps, by_delta):
        for small, large in zip(seq, seq[1:]):
            assert all(small[k] <= large[k] for k in small), (small, large)
    assert by_eps[0] != by_eps[-1]  # the sweep is not degenerate
    glob = [theory.max_sparsity(fcn, eps=e, delta=0.1, per_layer=False, n_inputs=96, steps=6).sparsity
            for e in (0.2, 0.8)]
    assert glob[0] <= glob[1]


def test_max_sparsity_with_random_masks_is_monotone_in_eps(fcn):
    got = [theory.max_sparsity(fcn, eps=e, delta=0.2, score="random", trials=20, n_inputs=8,
                               steps=4, seed=3).ratios for e in (0.3, 1.0)]
    assert all(got[0][k] <= got[1][k] for k in got[0])


def test_max_sparsity_needs_enough_samples(fcn):
    with pytest.raises(pk.InsufficientSamplesError, match="at least 72 inputs"):
        theory.max_sparsity(fcn, eps=1.0, delta=0.05, n_inputs=20)
    with pytest.raises(pk.PruneError, match="eps"):
        theory.max_sparsity(fcn, eps=0.0, delta=0.1)
    with pytest.raises(pk.PruneError, match="trials=1"):
        theory.gap(fcn, sparsity=0.5, score="magnitude", trials=5)
    with pytest.raises(pk.PruneError, match="unknown gap option"):
        theory.gap(fcn, sparsity=0.5, trails=3)
    with pytest.raises(pk.PruneError, match="input_shape"):
        theory.gap(torch.nn.Linear(4, 2), sparsity=0.5)


def test_clopper_pearson_known_values():
    p, low, high = theory.clopper_pearson(5, 10)
    assert (p, round(low, 4), round(high, 4)) == (0.5, 0.1871, 0.8129)
    assert theory.clopper_pearson(20, 20)[1] == pytest.approx(0.025 ** (1 / 20))
    assert theory.min_samples(0.95) == 72  # 0.025^(1/72) >= 0.95 > 0.025^(1/71)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 400), frac=st.floats(0, 1), conf=st.floats(0.5, 0.999))
def test_clopper_pearson_is_a_valid_interval(n, frac, conf):
    k = round(frac * n)
    p, low, high = theory.clopper_pearson(k, n, conf)
    assert 0 <= low <= p <= high <= 1
    mirrored = theory.clopper_pearson(n - k, n, conf)
    assert math.isclose(low, 1 - mirrored[2], abs_tol=1e-9)


@pytest.mark.parametrize("init", ["gaussian", "uniform"])
def test_energy_fraction_matches_magnitude_pruning_of_a_large_iid_layer(init):
    layer = theory.random_network([400, 400], init=init, seed=0)
    w = layer[0].weight.detach().clone()
    for s in (0.2, 0.5, 0.9):
        pruned = theory.random_network([400, 400], init=init, seed=0)
        pk.prune(pruned, sparsity=s, score="magnitude")
        removed = 1 - float(pruned[0].weight.detach().pow(2).sum() / w.pow(2).sum())
        assert removed == pytest.approx(theory.energy_fraction(s, "magnitude", init), abs=5e-3)
    assert theory.energy_fraction(0.3, "random") == 0.3
    assert theory.predicted_rel_gap(0.5, 1, "random") == pytest.approx(0.5)
    assert theory.predicted_rel_gap(0.5, 3, "random") == pytest.approx(0.875)


def test_joint_allocation_meets_the_target_with_all_layers_pruned(fcn):
    x = theory.draw_inputs((16,), 160, seed=11)
    alone = theory.max_sparsity(fcn, x, eps=0.3, delta=0.1, relative=True, steps=5)
    joint = theory.max_sparsity(fcn, x, eps=0.3, delta=0.1, relative=True, joint=True)
    assert joint.mode == "joint" and alone.mode == "layer"
    assert joint.joint.prob_within(0.3, relative=True)[1] >= 0.9
    assert alone.joint.prob_within(0.3, relative=True)[1] < 0.9  # per-layer limits alone overshoot
    assert 0 < joint.sparsity and all(r in allocate.JOINT_GRID for r in joint.ratios.values())
    looser = theory.max_sparsity(fcn, x, eps=0.6, delta=0.1, relative=True, joint=True)
    assert all(joint.ratios[k] <= looser.ratios[k] for k in joint.ratios)
    assert looser.sparsity > joint.sparsity


def test_import_prunekit_leaves_scipy_until_theory_is_used():
    import subprocess
    import sys

    code = ("import sys, prunekit; assert 'prunekit.theory' not in sys.modules and 'scipy' not in sys.modules; "
            "prunekit.theory.gap; assert 'prunekit.theory' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": str(Path(pk.__file__).parents[1])})


def test_gap_with_neuron_structure_exclude_and_rescale(fcn):
    rep = theory.gap(fcn, sparsity=0.5, structure="neurons", scope="layer", exclude=["4"], rescale=True, n_inputs=32)
    assert set(rep.layers) == {"0.weight", "2.weight"}
    assert rep.layers["0.weight"] == pytest.approx(0.5) and rep.mean_sq > 0
    cnn = theory.random_network([3, 6, 4], "cnn", "uniform", image_size=5)
    assert cnn.input_shape == (3, 5, 5)
    out = theory.gap(cnn, "sphere", sparsity=0.4, n_inputs=16)
    assert out.l2.shape == (1, 16) and (out.ref_l2 > 0).all()
