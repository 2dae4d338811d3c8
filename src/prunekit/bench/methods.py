"""A benchmark method: what to prune (structure, score, scope), when (schedule) and how to retrain."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .. import scope, scores, structures
from ..api import METHODS
from ..training.rewind import VARIANTS
from .strict import Strict, choice


class GradualSettings(Strict):
    """Zhu & Gupta's cubic schedule: prune at fine-tuning steps ``start + k·every`` (k = 0…``n``) from
    sparsity ``initial`` up to the run's target (:class:`prunekit.training.schedules.Gradual`)."""

    start: int = Field(0, ge=0)
    every: int = Field(50, ge=1)
    n: int = Field(5, ge=1)
    initial: float = Field(0.0, ge=0, lt=1)


class RetrainSettings(Strict):
    """How a method retrains after pruning, one of :data:`prunekit.training.rewind.VARIANTS`.

    ``continue`` fine-tunes with the run's ``finetune`` settings. The others replay the base model's
    training (its ``train`` settings, T epochs) from step ``rewind_step`` = k: ``rewind`` resets the
    weights to those of step k (k = 0: the lottery ticket), ``lr-rewind`` keeps the weights,
    ``reinit`` draws fresh ones, ``random-mask`` rewinds under a random mask of the same sparsity.
    """

    variant: str = "continue"
    rewind_step: int = Field(0, ge=0)

    @field_validator("variant")
    @classmethod
    def _variant(cls, v: str) -> str:
        return choice(v, list(VARIANTS), "fine-tuning variant")

    @property
    def replays(self) -> bool:
        """Whether it replays the base training (every variant but ``continue``)."""
        return self.variant != "continue"

    @property
    def snapshot_step(self) -> int | None:
        """The base-training step whose weights this variant rewinds to, when it needs stored ones.

        Step 0 needs none: the seeded initialization is recreated from the base's seed.
        """
        if self.variant in ("rewind", "random-mask") and self.rewind_step > 0:
            return self.rewind_step
        return None


class MethodSpec(Strict):
    """A pruning method: structure × score × scope × schedule × retraining; ``name`` labels it in reports.

    ``iterative`` prunes in ``rounds`` geometric steps (the lottery-ticket convention), each followed
    by the retraining; ``oneshot`` prunes once and retrains once; ``gradual`` prunes during a first
    fine-tuning phase of ``gradual.start + gradual.n · gradual.every`` steps (Zhu & Gupta), then
    fine-tunes as usual.
    """

    name: str
    score: str = "magnitude"
    scope: str = "global"
    structure: str = "weights"
    schedule: Literal["oneshot", "iterative", "gradual"] = "oneshot"
    rounds: int = Field(3, ge=1)
    gradual: GradualSettings | None = None
    finetune: RetrainSettings = RetrainSettings()
    score_batches: int = Field(1, ge=1)

    @field_validator("score")
    @classmethod
    def _score(cls, v: str) -> str:
        return choice(v, scores.registry.names(), "score")

    @field_validator("scope")
    @classmethod
    def _scope(cls, v: str) -> str:
        return choice(v, scope.registry.names(), "scope")

    @field_validator("structure")
    @classmethod
    def _structure(cls, v: str) -> str:
        return choice(v, structures.registry.names(), "structure")

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        """A bare baseline name such as ``global-magnitude`` expands to its score and scope."""
        if isinstance(data, str):
            if data not in METHODS:
                raise ValueError(
                    f"unknown method {data!r}; allowed values: {', '.join(sorted(METHODS))} "
                    "(or a mapping with name, score, scope, structure)"
                )
            score_name, scope_name = METHODS[data]
            return {"name": data, "score": score_name, "scope": scope_name}
        return data

    @model_validator(mode="after")
    def _schedule_settings(self) -> "MethodSpec":
        if self.gradual is not None and self.schedule != "gradual":
            raise ValueError(f"gradual: settings given but schedule is {self.schedule!r}; "
                             "set schedule: gradual or remove them")
        if self.schedule == "gradual" and self.finetune.replays:
            raise ValueError(f"finetune.variant: {self.finetune.variant!r} cannot follow a gradual schedule, "
                             "which prunes while fine-tuning; allowed values: continue")
        return self
