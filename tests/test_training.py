"""The training loop: determinism, masks held, evaluation, checkpoint/resume, best-on-validation."""
from __future__ import annotations

import pytest
import torch

import prunekit as pk
from prunekit.data import ArrayDataset, synthetic


def _data(seed=0):
    train, test = synthetic(256, 64, shape=(1, 4, 4), seed=seed)
    return train, test


def _model(seed=0):
    torch.manual_seed(seed)
    return pk.models.create("mlp", in_channels=1, input_size=4, hidden=(16,))


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_same_seed_same_weights():
    train, _ = _data()
    runs = []
    for _ in range(2):
        m = _model()
        pk.train(m, train, epochs=2, seed=3, batch_size=32, lr=0.05, progress=False)
        runs.append(_weights(m))
    _same(*runs)
    m = _model()
    pk.train(m, train, epochs=2, seed=4, batch_size=32, lr=0.05, progress=False)
    assert not torch.equal(m.state_dict()["1.weight"], runs[0]["1.weight"])


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_masks_stay_zero_and_model_learns(optimizer):
    train, test = _data()
    m = _model()
    before = pk.evaluate(m, test)["top1"]
    masks = pk.prune(m, sparsity=0.7)
    pk.train(m, train, epochs=3, batch_size=32, lr=0.05 if optimizer == "sgd" else 0.01,
             optimizer=optimizer, weight_decay=1e-3, progress=False)
    for name, mask in masks.items():
        assert (dict(m.named_parameters())[name][~mask] == 0).all()
    assert pk.sparsity(m) == pytest.approx(masks.sparsity) and masks.sparsity == pytest.approx(0.7, abs=1e-2)
    assert pk.evaluate(m, test)["top1"] > before + 0.15


def test_evaluate_counts_top1_top5_loss():
    x = torch.eye(6)[:, None, None, :]  # 6 examples, logits = identity rows after flatten
    y = torch.tensor([0, 1, 2, 0, 0, 0])
    model = torch.nn.Flatten()
    r = pk.evaluate(model, ArrayDataset(x, y), batch_size=4)
    assert r["top1"] == pytest.approx(3 / 6)
    # For rows 3..5 the true class 0 ties with the four other zeros; topk keeps lower indices first.
    assert r["top5"] == pytest.approx(1.0)
    expected = torch.nn.functional.cross_entropy(x.flatten(1), y).item()
    assert r["loss"] == pytest.approx(expected, rel=1e-6)
    with pytest.raises(pk.PruneError):
        pk.evaluate(model, ArrayDataset(x[:0], y[:0]))


def test_evaluate_accepts_dataloader():
    train, test = _data()
    m = _model()
    loader = torch.utils.data.DataLoader(test, batch_size=10)
    assert pk.evaluate(m, loader) == pytest.approx(pk.evaluate(m, test))


def test_resume_equals_uninterrupted(tmp_path):
    train, test = _data()
    val = test
    opts = dict(seed=1, batch_size=32, lr=0.05, lr_schedule="cosine", weight_decay=1e-4, progress=False)
    full = _model()
    pk.prune(full, sparsity=0.5)
    h_full = pk.train(full, train, val, epochs=4, checkpoint_dir=tmp_path / "a", **opts)

    part = _model()
    pk.prune(part, sparsity=0.5)
    pk.train(part, train, val, epochs=2, schedule_total=4 * 8, checkpoint_dir=tmp_path / "b", **opts)
    fresh = _model(seed=99)  # a different init and no masks: everything must come from the checkpoint
    h_res = pk.train(fresh, train, val, epochs=4, checkpoint_dir=tmp_path / "b", resume=True, **opts)
    _same(_weights(full), _weights(fresh))
    assert [r["val_top1"] for r in h_full] == [r["val_top1"] for r in h_res]
    assert pk.sparsity(fresh) == pytest.approx(pk.sparsity(full))


def test_restore_best_uses_validation(tmp_path):
    train, test = _data()
    m = _model()
    h = pk.train(m, train, test, epochs=4, batch_size=32, lr=0.05, restore_best=True, progress=False)
    best = h.best_epoch
    assert best == max(h, key=lambda r: (r["val_top1"], -r["epoch"]))["epoch"]
    assert pk.evaluate(m, test)["top1"] == pytest.approx(h[best - 1]["val_top1"])


def test_steps_and_lr_schedules():
    train, _ = _data()
    m = _model()
    seen = []

    class Spy(pk.Callback):
        def on_step_end(self, state):
            seen.append(state.optimizer.param_groups[0]["lr"])

    h = pk.train(m, train, steps=10, batch_size=32, lr=0.1, lr_schedule="step", milestones=[0.5],
                 gamma=0.1, callbacks=[Spy()], progress=False)
    assert len(seen) == 10 and h.last["step"] == 10 and len(h) == 2
    assert seen[:4] == [0.1] * 4 and seen[4:] == pytest.approx([0.01] * 6)
    assert pk.training.lr_factor("cosine", 0, 10) == 1.0
    assert pk.training.lr_factor("cosine", 5, 10) == pytest.approx(0.5)
    assert pk.training.lr_factor("constant", 3, 10, warmup=4) == 1.0
    assert pk.training.lr_factor("constant", 0, 10, warmup=4) == 0.25


def test_bad_arguments():
    train, _ = _data()
    m = _model()
    with pytest.raises(pk.PruneError):
        pk.train(m, train, progress=False)
    with pytest.raises(pk.PruneError):
        pk.train(m, train, epochs=1, optimizer="nope", progress=False)
    with pytest.raises(pk.PruneError):
        pk.train(m, train, epochs=1, lr_schedule="nope", progress=False)
    with pytest.raises(pk.PruneError, match="decay_norms_and_biases must be True or False"):
        pk.train(m, train, epochs=1, decay_norms_and_biases="no", progress=False)


# ---- fine-tuning variants: rewinding and the lottery-ticket controls ---------------------------

from prunekit.training.rewind import Snapshot, random_masks_like, reinitialize, rewind, snapshot  # noqa: E402


@pytest.mark.parametrize("k", [0, 5])
def test_rewind_restores_iteration_k_with_mask(k):
    train, _ = _data()
    m = _model()
    snap = Snapshot(k)
    pk.train(m, train, epochs=2, batch_size=32, lr=0.05, callbacks=[snap], progress=False)
    ref = _model()
    pk.train(ref, train, steps=k, batch_size=32, lr=0.05, progress=False) if k else None
    _same(snap.state, snapshot(ref))  # the snapshot is exactly the weights after k steps
    masks = pk.prune(m, sparsity=0.6)
    rewind(m, snap.state)
    for name, value in snap.state.items():
        param = m.state_dict()[name]
        mask = masks.get(name)
        assert torch.equal(param, value if mask is None else value * mask), name


def test_random_masks_keep_per_layer_counts():
    m = _model()
    masks = pk.prune(m, sparsity=0.7, scope="global")
    rnd = random_masks_like(masks, seed=1)
    for name in masks:
        assert int(rnd[name].sum()) == int(masks[name].sum()) and not torch.equal(rnd[name], masks[name])
    assert torch.equal(random_masks_like(masks, seed=1)["1.weight"], rnd["1.weight"])


def test_reinitialize_keeps_mask_and_changes_weights():
    m = _model()
    masks = pk.prune(m, sparsity=0.5)
    before = snapshot(m)
    reinitialize(m, seed=7)
    w = m[1].weight
    assert (w[~masks["1.weight"]] == 0).all() and not torch.equal(w, before["1.weight"])
    again = _model()
    pk.prune(again, sparsity=0.5)
    reinitialize(again, seed=7)
    _same(snapshot(m), snapshot(again))


@pytest.mark.parametrize("variant", ["continue", "rewind", "lr-rewind", "reinit", "random-mask"])
def test_finetune_variants_keep_sparsity_and_replay_lr(variant):
    train, val = _data()
    m = _model()
    snap = Snapshot(3)
    pk.train(m, train, epochs=2, batch_size=32, lr=0.1, lr_schedule="cosine", callbacks=[snap], progress=False)
    masks = pk.prune(m, sparsity=0.8)
    lrs = []

    class Spy(pk.Callback):
        def on_step_end(self, state):
            lrs.append(state.optimizer.param_groups[0]["lr"])

    pk.finetune(m, variant, train, val, epochs=2, rewind_state=snap.state, rewind_step=3, batch_size=32,
                lr=0.1, lr_schedule="cosine", callbacks=[Spy()], progress=False)
    assert pk.sparsity(m) == pytest.approx(masks.sparsity)
    total = 2 * 8
    start = {"continue": 0, "reinit": 0}.get(variant, 3)
    assert len(lrs) == total - start
    assert lrs[0] == pytest.approx(pk.training.lr_factor("cosine", start, total) * 0.1)
    now = pk.Masks.from_model(m)
    assert torch.equal(now["1.weight"], masks["1.weight"]) == (variant != "random-mask")


def test_finetune_needs_rewind_state():
    train, _ = _data()
    m = _model()
    pk.prune(m, sparsity=0.5)
    with pytest.raises(pk.PruneError, match="rewind_state"):
        pk.finetune(m, "rewind", train, epochs=1, progress=False)
    with pytest.raises(pk.PruneError, match="valid"):
        pk.finetune(m, "nope", train, epochs=1, progress=False)


def test_callbacks_evaluate_log_and_checkpoint_each_epoch(tmp_path):
    import json

    train, test = _data()
    m = _model()
    cb = [pk.callbacks.Evaluate(test, name="test"), pk.callbacks.JSONLog(tmp_path / "log.jsonl")]
    h = pk.train(m, train, test, epochs=2, batch_size=32, lr=0.05, callbacks=cb, checkpoint_dir=tmp_path / "ck",
                 progress=False)
    lines = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2] and lines[-1]["test_top1"] == h.last["test_top1"]
    assert h.last["test_top1"] == pytest.approx(pk.evaluate(m, test)["top1"])
    ckpt = torch.load(tmp_path / "ck" / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 2 and ckpt["step"] == 16 and (tmp_path / "ck" / "best.pt").exists()
    (tmp_path / "ck" / "last.pt").write_bytes(b"garbage")
    with pytest.raises(pk.CheckpointError, match="resume=False"):
        pk.train(m, train, epochs=3, checkpoint_dir=tmp_path / "ck", resume=True, progress=False)


@pytest.mark.parametrize("decay_vectors", [True, False])
def test_weight_decay_can_spare_norms_and_biases(decay_vectors):
    """With no loss gradient only weight decay moves the weights: SGD shrinks each decayed one by (1 - lr·wd)
    a step; decay_norms_and_biases=False leaves LayerNorm gains, shifts and biases exactly as they were."""
    train, _ = _data()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 2))
    before = _weights(model)
    pk.train(model, train, steps=3, lr=0.1, momentum=0.0, weight_decay=0.5, decay_norms_and_biases=decay_vectors,
             loss_fn=lambda out, y: out.sum() * 0, progress=False)
    for name, value in model.state_dict().items():
        shrunk = before[name] * 0.95 ** 3
        if value.dim() >= 2 or decay_vectors:
            torch.testing.assert_close(value, shrunk, msg=name)
        else:
            assert torch.equal(value, before[name]), name
