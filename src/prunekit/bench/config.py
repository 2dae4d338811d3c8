"""Experiment configs: a validated YAML grid that expands into runs with stable identities.

A config is datasets × models × methods × compressions × seeds with shared training, fine-tuning
and measurement settings. Every key is checked: an unknown key or a bad value raises
:class:`ConfigError` naming the key and the allowed values. A run's identity is a hash of its
settings with code defaults left out, so adding a new setting with a default keeps old identities.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from ..errors import PruneError
from .methods import MethodSpec
from .strict import Strict, choice
from .zoo import dataset_names, model_names


class ConfigError(PruneError):
    """A benchmark config with an unknown key, a bad value or a file that cannot be read."""


class TrainSettings(Strict):
    """One training phase (the dense base model, or fine-tuning after pruning).

    ``steps`` (optimizer steps), when set, replaces ``epochs``: a budget finer than an epoch.
    ``decay_norms_and_biases: false`` keeps weight decay off norm gains, shifts and biases (GPT-2's recipe).
    """

    epochs: int = Field(10, ge=0)
    steps: int | None = Field(None, ge=1)
    lr: float = Field(0.1, gt=0)
    batch_size: int = Field(128, ge=1)
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0)
    decay_norms_and_biases: bool = True
    lr_schedule: Literal["constant", "cosine"] = "cosine"


class MeasureSettings(Strict):
    """How latency is measured: median over ``repeats`` timings at each batch size, of the model in
    the ``deploy`` form (``auto``: sparse kernels for weights, compaction for neurons, where available)."""

    batch_sizes: tuple[Annotated[int, Field(ge=1)], ...] = Field((1, 64), min_length=1)
    repeats: int = Field(20, ge=1)
    warmup: int = Field(3, ge=0)
    deploy: Literal["auto", "dense", "sparse", "compact"] = "auto"


class BaseSpec(Strict):
    """What defines a dense base model: trained once and shared by every method and ratio.

    ``rewind_steps`` are the training steps whose weights are kept for methods that rewind to them.
    """

    dataset: str
    model: str
    seed: int
    val_fraction: float = 0.1
    train: TrainSettings = TrainSettings()
    weights: str | None = None
    rewind_steps: tuple[int, ...] = ()

    @property
    def id(self) -> str:
        return identity(self)


class RunSpec(Strict):
    """One run: prune a base model with a method to a compression, fine-tune, measure."""

    base: BaseSpec
    method: MethodSpec
    compression: float
    finetune: TrainSettings = TrainSettings(epochs=3, lr=0.01)
    measure: MeasureSettings = MeasureSettings()

    @property
    def id(self) -> str:
        return identity(self)


def identity(spec: BaseModel) -> str:
    """16 hex digits of sha256 over the settings that differ from the code defaults (sorted JSON)."""
    text = json.dumps(spec.model_dump(mode="json", exclude_defaults=True), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class ExperimentConfig(Strict):
    """A whole sweep, as written in a YAML file."""

    name: str
    datasets: list[str] = Field(min_length=1)
    models: list[str] = Field(min_length=1)
    methods: list[MethodSpec] = Field(min_length=1)
    compressions: list[float] = Field(min_length=1)
    seeds: list[int] = Field([0], min_length=1)
    val_fraction: float = Field(0.1, gt=0, lt=1)
    train: TrainSettings = TrainSettings()
    finetune: TrainSettings = TrainSettings(epochs=3, lr=0.01)
    measure: MeasureSettings = MeasureSettings()
    model_train: dict[str, TrainSettings] = {}  # a model's own base training, in place of ``train``
    weights: dict[str, str] = {}
    data_dir: str | None = None

    @field_validator("datasets")
    @classmethod
    def _datasets(cls, v: list[str]) -> list[str]:
        from ..data.custom import is_custom

        return [d if is_custom(d) else choice(d, dataset_names(), "dataset") for d in v]

    @field_validator("models")
    @classmethod
    def _models(cls, v: list[str]) -> list[str]:
        from ..userdefs import is_reference

        return [m if is_reference(m) else choice(m, model_names(), "model") for m in v]

    @field_validator("compressions")
    @classmethod
    def _compressions(cls, v: list[float]) -> list[float]:
        bad = [c for c in v if not c > 1]
        if bad:
            raise ValueError(f"compression {bad[0]} is not > 1; allowed values: numbers > 1 (all / nonzero params)")
        return v

    @model_validator(mode="after")
    def _unique(self) -> "ExperimentConfig":
        names = [m.name for m in self.methods]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"methods: name {sorted(dup)[0]!r} is used twice; give each method its own name")
        for key in ("weights", "model_train"):
            stray = sorted(set(getattr(self, key)) - set(self.models))
            if stray:
                raise ValueError(f"{key}: model {stray[0]!r} is not in models; allowed keys: {', '.join(self.models)}")
        replaying = [m for m in self.methods if m.finetune.replays]
        if replaying and self.weights:
            raise ValueError(f"methods: {replaying[0].name!r} replays the base training "
                             f"(finetune.variant {replaying[0].finetune.variant!r}), but {sorted(self.weights)[0]!r} "
                             "has pretrained weights; use finetune.variant: continue or train the base")
        if replaying and any(t.steps is not None for t in (self.train, *self.model_train.values())):
            raise ValueError(f"train.steps: {replaying[0].name!r} replays the base training, which must be "
                             "given in train.epochs; remove train.steps")
        return self

    def size(self) -> int:
        """How many runs the grid holds, counted without building them."""
        return (len(self.datasets) * len(self.models) * len(self.seeds) * len(self.methods)
                * len(self.compressions))

    def _rewind_steps(self) -> tuple[int, ...]:
        return tuple(sorted({m.finetune.snapshot_step for m in self.methods} - {None}))

    def bases(self) -> list[BaseSpec]:
        """Every dense base model of the grid, in grid order."""
        return [
            BaseSpec(dataset=d, model=m, seed=s, val_fraction=self.val_fraction,
                     train=self.model_train.get(m, self.train),
                     weights=self.weights.get(m), rewind_steps=self._rewind_steps())
            for d in self.datasets for m in self.models for s in self.seeds
        ]

    def runs(self) -> list[RunSpec]:
        """Every run of the grid, grouped by base model so one base serves consecutive runs.

        A method whose structure fixes its sparsity (N:M) runs once per base, at its nominal compression.
        """
        return [
            RunSpec(base=b, method=m, compression=c, finetune=self.finetune, measure=self.measure)
            for b in self.bases() for m in self.methods
            for c in ([m.nominal_compression] if m.nominal_compression is not None else self.compressions)
        ]


def _format(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "config"
        msg = e["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)


def parse(data: Any, source: str = "config") -> ExperimentConfig:
    """Validate a mapping (the YAML's content) into an :class:`ExperimentConfig`."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys, got {type(data).__name__}")
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{source}: {_format(err)}") from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key given twice in one mapping (YAML would keep the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                continue  # an unhashable key is refused by the base loader
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConfigError(f"{self.name}: key {key!r} is given twice (lines {seen[key]} and {line}); "
                                  "YAML would silently keep the last — remove one")
            seen[key] = line
        return super().construct_mapping(node, deep)


def load(path: str | Path) -> ExperimentConfig:
    """Read and validate a YAML config file (UTF-8, no duplicate keys); every problem names its key."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read config {path}: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path} is not UTF-8 text (byte {err.start} is 0x{err.object[err.start]:02x}); "
                          "save it as UTF-8") from None
    loader = _UniqueKeyLoader(text)
    loader.name = str(path)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {' '.join(str(err).split())}") from None
    except RecursionError:
        raise ConfigError(f"{path} nests too deeply to be a config") from None
    finally:
        loader.dispose()
    return parse(data, str(path))
