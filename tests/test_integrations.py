"""Lightning and Hugging Face Trainer callbacks, with the real libraries on tiny data: pruning happens at the
schedule's steps, pruned weights stay exactly zero through every later optimizer step, and the final
sparsity is exactly the target."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import prunekit as pk

TARGET, STEPS = 0.8, 24


def _data(n: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 20, generator=g)
    return x, (x[:, :10].argmax(1))


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def _exact(model: nn.Module, sparsity: float) -> None:
    targets = pk.prunable(model)
    total = sum(t.param.numel() for t in targets)
    zeros = sum(int((t.param == 0).sum()) for t in targets)
    assert zeros == round(sparsity * total), (zeros, total)


class Watch:
    """Checks after every optimizer step that each masked weight is exactly zero; records sparsity per step."""

    def __init__(self, model: nn.Module):
        self.model, self.trace = model, []

    def check(self, step: int) -> None:
        from prunekit.masks import mask_of, masked_parameters

        for _, module, name in masked_parameters(self.model):
            assert not getattr(module, name)[~mask_of(module, name)].any(), f"pruned weight moved at step {step}"
        self.trace.append((step, pk.sparsity(self.model)))


SCHEDULES = {
    "oneshot": (lambda: pk.schedules.oneshot(TARGET), dict(at=5), [5]),
    "iterative": (lambda: pk.schedules.iterative(TARGET, rounds=3), dict(at=2, every=6), [2, 8, 14]),
    "gradual": (lambda: pk.schedules.gradual(TARGET, start=0, every=4, n=4), {}, [0, 4, 8, 12, 16]),
}


@pytest.mark.parametrize("kind", SCHEDULES)
def test_lightning_callback(kind, tmp_path):
    L = pytest.importorskip("lightning.pytorch")
    from prunekit.integrations.lightning import PruningCallback

    make, where, steps = SCHEDULES[kind]

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = _net()

        def training_step(self, batch, _):
            x, y = batch
            return nn.functional.cross_entropy(self.net(x), y)

        def configure_optimizers(self):  # momentum and weight decay would move pruned weights without masks
            return torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)

    module = Module()
    watch = Watch(module)

    class Check(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, *args):
            watch.check(trainer.global_step)

    cb = PruningCallback(make(), **where)
    assert cb.pruner.steps == steps
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*_data()), batch_size=32, shuffle=True)
    trainer = L.Trainer(max_steps=STEPS, callbacks=[cb, Check()], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
                        default_root_dir=tmp_path)
    trainer.fit(module, loader)
    _exact(module, TARGET)
    sparsities = [s for _, s in watch.trace]
    assert sparsities == sorted(sparsities) and sparsities[-1] == pytest.approx(TARGET, abs=1e-3)
    if kind != "gradual":  # nothing pruned before the first pruning step
        assert watch.trace[0][1] < 0.05 or steps[0] <= 1


class HFNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = _net()

    def forward(self, x, labels=None):
        logits = self.net(x)
        return {"loss": nn.functional.cross_entropy(logits, labels), "logits": logits}


@pytest.mark.parametrize("kind", SCHEDULES)
def test_hugging_face_trainer_callback(kind, tmp_path):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from prunekit.integrations.trainer import PruningCallback

    make, where, steps = SCHEDULES[kind]
    model = HFNet()
    watch = Watch(model)

    class Check(transformers.TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            watch.check(state.global_step)

    x, y = _data()
    train = [{"x": a, "labels": b} for a, b in zip(x, y)]
    args = transformers.TrainingArguments(output_dir=str(tmp_path), max_steps=STEPS, per_device_train_batch_size=32,
                                          learning_rate=1e-2, weight_decay=0.01, report_to=[], save_strategy="no",
                                          logging_strategy="no", use_cpu=True, disable_tqdm=True,
                                          remove_unused_columns=False, seed=0)
    cb = PruningCallback(make(), **where)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=train, callbacks=[cb, Check()])
    trainer.train()
    _exact(model, TARGET)
    assert [s for _, s in watch.trace][-1] == pytest.approx(TARGET, abs=1e-3)
    assert len(watch.trace) == STEPS


def test_training_that_ends_before_the_last_pruning_step_is_an_error():
    from prunekit.integrations.steps import StepPruner

    pruner = StepPruner(pk.schedules.iterative(0.5, rounds=3), at=0, every=10)
    pruner.begin(_net())
    pruner.step(1)
    with pytest.raises(pk.PruneError, match="before the schedule's last pruning step 20"):
        pruner.end(15)
