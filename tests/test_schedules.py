"""Pruning schedules: each sparsity sequence against its formula, and the prune → fine-tune driver."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import prunekit as pk
from prunekit.data import synthetic
from prunekit.training.schedules import compression_of

OPTS = dict(batch_size=32, lr=0.05, progress=False)


def _setup(seed=0):
    train, test = synthetic(128, 64, shape=(1, 4, 4), seed=seed)
    torch.manual_seed(seed)
    return pk.models.create("mlp", in_channels=1, input_size=4, hidden=(24,)), train, test


@given(s=st.floats(0.0, 0.999), rounds=st.integers(1, 12))
@settings(max_examples=60, deadline=None)
def test_iterative_sequences_follow_their_formulas(s, rounds):
    geo = pk.schedules.iterative(s, rounds=rounds).sparsities()
    lin = pk.schedules.iterative(s, rounds=rounds, mode="linear").sparsities()
    assert len(geo) == len(lin) == rounds
    assert geo[-1] == pytest.approx(s) and lin[-1] == pytest.approx(s)
    remain = [1.0] + [1 - v for v in geo]
    p = 1 - (1 - s) ** (1 / rounds)  # the fraction of what remains removed in every round
    for before, after in zip(remain, remain[1:]):
        assert after == pytest.approx(before * (1 - p), abs=1e-12)
    assert lin == pytest.approx([s * r / rounds for r in range(1, rounds + 1)])
    assert pk.schedules.oneshot(s).sparsities() == [s]


@given(sf=st.floats(0.05, 0.99), si=st.floats(0.0, 0.04), t0=st.integers(0, 50), dt=st.integers(1, 20),
       n=st.integers(1, 15))
@settings(max_examples=60, deadline=None)
def test_gradual_follows_zhu_gupta(sf, si, t0, dt, n):
    g = pk.schedules.gradual(sf, start=t0, every=dt, n=n, initial=si)
    assert g.steps == [t0 + k * dt for k in range(n + 1)]
    for t in range(0, t0 + (n + 2) * dt):
        expected = 0.0 if t < t0 else sf + (si - sf) * (1 - min((t - t0) // dt * dt, n * dt) / (n * dt)) ** 3
        assert g.sparsity_at(t) == pytest.approx(expected, abs=1e-12)
    seq = g.sparsities()
    assert seq[0] == pytest.approx(si) and seq[-1] == pytest.approx(sf)
    assert all(a <= b + 1e-12 for a, b in zip(seq, seq[1:]))


def test_bad_schedules():
    with pytest.raises(pk.InvalidSparsityError):
        pk.schedules.oneshot()
    with pytest.raises(pk.InvalidSparsityError):
        pk.schedules.oneshot(1.2)
    with pytest.raises(pk.PruneError):
        pk.schedules.iterative(0.5, rounds=0)
    with pytest.raises(pk.PruneError):
        pk.schedules.iterative(0.5, rounds=2, mode="cubic")
    with pytest.raises(pk.PruneError):
        pk.schedules.gradual(0.5, start=0, every=0, n=3)


def test_run_iterative_reaches_each_round_exactly():
    model, train, val = _setup()
    sched = pk.schedules.iterative(0.8, rounds=3)
    seen = []
    recs = pk.schedules.run(model, sched, train, val, epochs=1, finetune_epochs=1,
                            on_round=lambda r, m: seen.append(r["round"]), **OPTS)
    n = sum(t.param.numel() for t in pk.prunable(model))
    assert [r["round"] for r in recs] == seen == [0, 1, 2, 3]
    for rec, target in zip(recs[1:], sched.sparsities()):
        assert rec["sparsity"] == pytest.approx(round(target * n) / n)
        assert "val_top1" in rec and rec["compression"] > 1
    assert recs[-1]["compression"] == pytest.approx(compression_of(model))


def test_run_with_compression_and_any_method():
    model, train, val = _setup()
    sched = pk.schedules.oneshot(compression=3, score="gradient", scope="layer")
    recs = pk.schedules.run(model, sched, train, val, epochs=1, **OPTS)
    assert recs[-1]["compression"] == pytest.approx(3, rel=0.02)
    model, train, val = _setup()
    sched = pk.schedules.iterative(0.5, rounds=2, mode="linear", structure="neurons", exclude=["3"])
    recs = pk.schedules.run(model, sched, train, val, epochs=1, finetune_variant="rewind", **OPTS)
    assert int((model[1].weight.abs().sum(1) == 0).sum()) == 12  # half of the 24 hidden neurons


def test_gradual_prunes_inside_training():
    model, train, _ = _setup()
    sched = pk.schedules.gradual(0.75, start=2, every=3, n=3)
    log = {}

    class Spy(pk.Callback):
        def on_step_end(self, state):
            log[state.step] = pk.sparsity(state.model)

    pk.train(model, train, steps=14, callbacks=[sched.callback(), Spy()], **OPTS)
    n = sum(t.param.numel() for t in pk.prunable(model))
    for step, value in log.items():
        assert value == pytest.approx(round(sched.sparsity_at(step) * n) / n, abs=1e-9), step
    model, train, val = _setup()
    with pytest.raises(pk.PruneError, match="finetune_variant"):
        pk.schedules.run(model, sched, train, val, epochs=3, finetune_variant="rewind", **OPTS)
    with pytest.raises(pk.PruneError, match="step 11"):
        pk.schedules.run(model, sched, train, val, epochs=2, **OPTS)  # 2 epochs = 8 steps
    recs = pk.schedules.run(model, sched, train, val, epochs=3, **OPTS)
    assert recs[-1]["sparsity"] == pytest.approx(0.75, abs=0.01)


def test_gradual_never_restores_a_checkpoint_from_before_its_last_pruning():
    """restore_best picks among epochs that end after the last pruning step, never a denser model."""
    from prunekit.training.driver import Retraining, prune_and_finetune

    model, train, val = _setup()
    pk.train(model, train, val, epochs=3, **OPTS)
    per_epoch = pk.data.num_batches(train, OPTS["batch_size"])
    sched = pk.schedules.gradual(0.97, start=3 * per_epoch - 1, every=1, n=1)  # prunes in the last epoch only
    retraining = Retraining(options={"epochs": 3, "restore_best": True, **OPTS})
    pruned_at = []
    result = prune_and_finetune(model, sched, train, val, retraining=retraining,
                                on_pruned=lambda r, last, m: pruned_at.append((r, last)))
    n = sum(t.param.numel() for t in pk.prunable(model))
    assert pruned_at == [(1, False), (2, True)] and result.history.since == 2
    assert result.history.best_epoch == 3 and pk.sparsity(model) == pytest.approx(round(0.97 * n) / n)
    assert [r["round"] for r in result.rounds] == [1] and len(result.epochs) == 3


def test_one_driver_for_every_schedule_needs_inputs_up_front():
    """Traced structures get example inputs and data-driven scores get data, or fail before training."""
    from prunekit.training.driver import Retraining, prune_and_finetune

    model, train, val = _setup()
    sched = pk.schedules.oneshot(0.5, structure="neurons", score="gradient", exclude=["3"])
    with pytest.raises(pk.MissingDataError, match="needs data"):
        prune_and_finetune(model, sched, train, val)
    x, y = next(iter(pk.data.batches(train, 32)))
    model, train, val = _setup()
    cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(8 * 16, 10))
    sched = pk.schedules.iterative(0.5, rounds=2, structure="channels", score="l1")
    with pytest.raises(pk.MissingDataError, match="example inputs"):
        prune_and_finetune(cnn, sched, train, val)
    result = prune_and_finetune(cnn, sched, train, val, example_inputs=x, retraining=Retraining(options={"epochs": 1, **OPTS}))
    assert [r["round"] for r in result.rounds] == [1, 2] and int((cnn[0].weight.flatten(1).abs().sum(1) == 0).sum()) == 4
