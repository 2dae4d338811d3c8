"""Benchmark configs: validation errors name the key and the allowed values; identities are stable."""
from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field

from prunekit.bench import DEMO_CONFIG, ConfigError, RunSpec, identity, load, parse
from prunekit.bench.config import BaseSpec, MethodSpec, TrainSettings

CONFIGS = Path(__file__).parents[1] / "configs"


def minimal(**over):
    cfg = {"name": "t", "datasets": ["synthetic"], "models": ["mlp"], "methods": ["global-magnitude"],
           "compressions": [2]}
    cfg.update(over)
    return cfg


@pytest.mark.parametrize(
    "over, key, allowed",
    [
        ({"epochs": 3}, "unknown key 'epochs'", "allowed keys: compressions, data_dir, datasets"),
        ({"train": {"epoch": 3}}, "train: unknown key 'epoch'", "allowed keys: batch_size, decay_norms_and_biases, epochs, lr"),
        ({"train": {"optimizer": "rmsprop"}}, "train.optimizer", "'sgd', 'adam' or 'adamw'"),
        ({"methods": ["magnitude"]}, "methods.0: unknown method 'magnitude'", "allowed values: global-gradient"),
        ({"methods": [{"name": "x", "score": "nonexistent"}]}, "methods.0.score: unknown score 'nonexistent'", "l1, l2, magnitude"),
        ({"methods": [{"name": "x", "scope": "local"}]}, "methods.0.scope", "allowed values: global, layer"),
        ({"datasets": ["imagenet"]}, "datasets: unknown dataset 'imagenet'", "allowed values:"),
        ({"models": ["resnet18"]}, "models: unknown model 'resnet18'", "lenet300"),
        ({"compressions": [0.5]}, "compressions: compression 0.5 is not > 1", "numbers > 1"),
        ({"measure": {"deploy": "gpu"}}, "measure.deploy", "'auto', 'dense', 'sparse' or 'compact'"),
        ({"seeds": []}, "seeds", "at least 1"),
        ({"methods": [{"name": "x", "schedule": "cubic"}]}, "methods.0.schedule", "'oneshot', 'iterative' or 'gradual'"),
        ({"methods": [{"name": "x", "schedule": "gradual", "gradual": {"every": 0}}]}, "methods.0.gradual.every",
         "greater than or equal to 1"),
        ({"methods": [{"name": "x", "schedule": "gradual", "gradual": {"steps": 3}}]},
         "methods.0.gradual: unknown key 'steps'", "allowed keys: every, initial, n, start"),
        ({"methods": [{"name": "x", "gradual": {"n": 3}}]}, "gradual: settings given but schedule is 'oneshot'",
         "set schedule: gradual"),
        ({"methods": [{"name": "x", "finetune": {"variant": "retrain"}}]},
         "methods.0.finetune.variant: unknown fine-tuning variant 'retrain'",
         "allowed values: continue, rewind, lr-rewind, reinit, random-mask"),
        ({"methods": [{"name": "x", "finetune": {"variant": "rewind", "rewind_step": -1}}]},
         "methods.0.finetune.rewind_step", "greater than or equal to 0"),
        ({"methods": [{"name": "x", "schedule": "gradual", "finetune": {"variant": "rewind"}}]},
         "finetune.variant: 'rewind' cannot follow a gradual schedule", "allowed values: continue"),
        ({"methods": [{"name": "x", "finetune": {"variant": "reinit"}}], "weights": {"mlp": "m.pt"}},
         "'x' replays the base training", "use finetune.variant: continue"),
        ({"methods": [{"name": "x", "finetune": {"variant": "lr-rewind"}}], "train": {"steps": 50}},
         "train.steps: 'x' replays the base training", "train.epochs"),
    ],
)
def test_errors_name_the_key_and_the_allowed_values(over, key, allowed):
    with pytest.raises(ConfigError) as err:
        parse(minimal(**over))
    assert key in str(err.value) and allowed in str(err.value)


def test_duplicate_method_names_and_stray_weights_are_refused():
    with pytest.raises(ConfigError, match="name 'random' is used twice"):
        parse(minimal(methods=["random", {"name": "random", "score": "magnitude"}]))
    with pytest.raises(ConfigError, match="weights: model 'lenet5' is not in models"):
        parse(minimal(weights={"lenet5": "x.pt"}))


def test_model_train_replaces_train_for_that_model_only():
    cfg = parse(minimal(models=["mlp", "cnn"], train={"epochs": 2}, model_train={"cnn": {"epochs": 7, "lr": 0.05}}))
    by_model = {b.model: b.train for b in cfg.bases()}
    assert by_model["mlp"].epochs == 2 and (by_model["cnn"].epochs, by_model["cnn"].lr) == (7, 0.05)
    assert cfg.runs()[0].base.id == parse(minimal(train={"epochs": 2})).runs()[0].base.id  # mlp untouched
    with pytest.raises(ConfigError, match="model_train: model 'lenet5' is not in models"):
        parse(minimal(model_train={"lenet5": {"epochs": 1}}))
    with pytest.raises(ConfigError, match="train.steps: 'x' replays the base training"):
        parse(minimal(methods=[{"name": "x", "finetune": {"variant": "reinit"}}], model_train={"mlp": {"steps": 5}}))


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load(tmp_path / "list.yaml")


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_bundled_configs_validate(path):
    cfg = load(path)
    per_base = sum(1 if m.nominal_compression is not None else len(cfg.compressions) for m in cfg.methods)
    assert len(cfg.runs()) == len(cfg.datasets) * len(cfg.models) * per_base * len(cfg.seeds)
    assert len({r.id for r in cfg.runs()}) == len(cfg.runs())


def test_demo_config_meets_the_main_job():
    cfg = load(DEMO_CONFIG)
    assert cfg.datasets == ["digits"] and set(cfg.models) == {"mlp", "cnn"}
    assert {m.name for m in cfg.methods} == {"global-magnitude", "layer-magnitude", "global-gradient",
                                             "layer-gradient", "random"}
    assert len(cfg.compressions) >= 4 and len(cfg.seeds) >= 2


def test_identity_is_stable_and_pinned():
    spec = parse(minimal()).runs()[0]
    # Pinned: a change here silently orphans every stored result, so it must be deliberate.
    assert spec.id == identity(spec) == "706dfc0cda01178d"
    assert parse(minimal(train={"epochs": 10})).runs()[0].id == spec.id  # 10 is the code default
    assert parse(minimal(train={"epochs": 11})).runs()[0].id != spec.id
    assert parse(minimal(data_dir="/elsewhere")).runs()[0].id == spec.id  # location is not identity


def test_weight_decay_recipe_reaches_training_and_identity():
    from prunekit.bench.runner import _options

    pinned = parse(minimal()).runs()[0]
    assert parse(minimal(train={"decay_norms_and_biases": True})).runs()[0].id == pinned.id
    gpt2 = parse(minimal(train={"decay_norms_and_biases": False})).runs()[0]
    assert gpt2.base.id != pinned.base.id and _options(gpt2.base.train)["decay_norms_and_biases"] is False


def test_schedule_and_retraining_defaults_keep_identities_and_rewind_steps_reach_the_base():
    pinned = parse(minimal()).runs()[0]
    spelled = {"name": "global-magnitude", "score": "magnitude", "scope": "global", "schedule": "oneshot",
               "finetune": {"variant": "continue", "rewind_step": 0}}
    assert parse(minimal(methods=[spelled])).runs()[0].id == pinned.id
    ticket = {"name": "ticket", "finetune": {"variant": "rewind"}}  # k = 0: the seeded init, nothing kept
    late = {"name": "late", "finetune": {"variant": "random-mask", "rewind_step": 7}}
    lr = {"name": "lr", "finetune": {"variant": "lr-rewind", "rewind_step": 9}}  # keeps its own weights
    assert parse(minimal(methods=[ticket, lr])).bases()[0].id == pinned.base.id
    cfg = parse(minimal(methods=["global-magnitude", ticket, late, lr]))
    assert [b.rewind_steps for b in cfg.bases()] == [(7,)]
    assert cfg.runs()[0].base.id != pinned.base.id  # the base now also keeps step 7
    gradual = parse(minimal(methods=[{"name": "g", "schedule": "gradual"}])).runs()[0]
    assert gradual.id != pinned.id and gradual.method.gradual is None  # defaults: GradualSettings()


def test_adding_a_setting_with_a_default_keeps_old_identities():
    class NewTrain(TrainSettings):
        label_smoothing: float = 0.0

    class NewMethod(MethodSpec):
        temperature: float = Field(1.0, gt=0)

    class NewBase(BaseSpec):
        train: NewTrain = NewTrain()

    class NewRun(RunSpec):
        base: NewBase
        method: NewMethod
        finetune: NewTrain = NewTrain(epochs=3, lr=0.01)
        augment: bool = False

    for old in parse(minimal(methods=["random", {"name": "m", "score": "gradient"}], seeds=[0, 3])).runs():
        new = NewRun.model_validate(old.model_dump())
        assert new.id == old.id
        changed = NewRun.model_validate({**old.model_dump(), "augment": True})
        assert changed.id != old.id


def test_identity_separates_every_grid_axis():
    cfg = parse(minimal(models=["mlp", "cnn"], methods=["random", "layer-magnitude"], compressions=[2, 4],
                        seeds=[0, 1]))
    runs = cfg.runs()
    assert len({r.id for r in runs}) == len(runs) == 16
    assert len({r.base.id for r in runs}) == 4  # one base per model × seed, shared by methods and ratios


def test_exclude_per_model_reaches_only_that_model():
    m = MethodSpec(name="nm", structure="2:4", exclude={"lenet5": ["conv1"]})
    assert m.prune_options(0, "lenet5")["exclude"] == ["conv1"]
    assert "exclude" not in m.prune_options(0, "lenet300")
    assert MethodSpec(name="w", exclude=["0"]).prune_options(0, "mlp")["exclude"] == ["0"]
