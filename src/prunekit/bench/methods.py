"""A benchmark method: what to prune (structure, score, scope), when (schedule) and how to retrain."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from .. import choices
from ..api import METHODS
from ..errors import UnknownNameError
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

    Every name is read from the registries when the config is validated (``pk.structures``, plus any
    ``"N:M"``; ``pk.scores`` for that structure; ``pk.scope`` or a per-layer mapping of ratios), so a
    score or structure registered in user code is usable here. ``iterative`` prunes in ``rounds``
    geometric steps (the lottery-ticket convention), each followed by the retraining; ``oneshot``
    prunes once and retrains once; ``gradual`` prunes inside the one fine-tuning run at steps
    ``gradual.start + k · gradual.every`` (Zhu & Gupta), the rest of that run recovering (see
    :mod:`prunekit.training.driver`). N:M fixes its own sparsity: it runs once per base model, one-shot,
    at its nominal compression M/N. ``exclude`` (names, or a mapping model → names for names only one model has), ``round_to``,
    ``reduce`` and ``max_ratio`` go to
    ``pk.prune`` (the last three for traced structures: channels, heads); ``target: macs_reduction``
    reads the grid's ratios as MAC reductions instead of compressions (traced structures, one-shot);
    ``target: prunable_compression`` reads them as compressions of the prunable weights alone (ratio c
    prunes 1 − 1/c of them, embeddings and excluded layers aside), the convention of LM pruning papers.
    A run whose pruning would empty a whole layer is recorded as failed with a ``LayerCollapseError``
    naming the layers, and the sweep goes on; ``allow_collapse: true`` prunes and measures it anyway.
    """

    name: str
    structure: str = "weights"
    score: str = "magnitude"
    scope: str | dict[str, float] = "global"
    schedule: Literal["oneshot", "iterative", "gradual"] = "oneshot"
    rounds: int = Field(3, ge=1)
    gradual: GradualSettings | None = None
    finetune: RetrainSettings = RetrainSettings()
    score_batches: int = Field(1, ge=1)
    exclude: tuple[str, ...] | dict[str, tuple[str, ...]] = ()  # names, or per model: {model: names}
    round_to: int | None = Field(None, ge=1)
    reduce: Literal["sum", "mean", "max"] | None = None
    max_ratio: float | None = Field(None, gt=0, le=1)
    target: Literal["compression", "macs_reduction", "prunable_compression"] = "compression"
    allow_collapse: bool = False  # a run whose pruning empties a layer fails (LayerCollapseError) unless set

    @field_validator("structure")
    @classmethod
    def _structure(cls, v: str) -> str:
        try:
            return choices.check_structure(v)
        except UnknownNameError:
            raise ValueError(f"unknown structure {v!r}; allowed values: {', '.join(choices.structure_names())}, "
                             f"or {choices.NM_HINT}") from None

    @field_validator("score")
    @classmethod
    def _score(cls, v: str, info: ValidationInfo) -> str:
        structure = info.data.get("structure", "weights")
        if v not in choices.score_names(structure):
            where = f" for structure {structure!r}" if structure != "weights" else ""
            raise ValueError(f"unknown score {v!r}{where}; allowed values: {', '.join(choices.score_names(structure))}")
        return v

    @field_validator("scope")
    @classmethod
    def _scope(cls, v: str | dict[str, float]) -> str | dict[str, float]:
        if isinstance(v, dict):
            bad = {k: r for k, r in v.items() if not 0 <= r < 1}
            if bad:
                raise ValueError(f"per-layer ratio {next(iter(bad.values()))} for {next(iter(bad))!r} is outside "
                                 "[0, 1); allowed values: fractions of each layer pruned")
            return v
        return choice(v, choices.scope_names(), "scope")

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
        traced = choices.is_traced(self.structure)
        given = [k for k in ("round_to", "reduce", "max_ratio") if getattr(self, k) is not None]
        if given and self.structure not in choices.taking(given[0]):
            raise ValueError(f"{given[0]}: applies to structures {', '.join(choices.taking(given[0]))}; "
                             f"structure is {self.structure!r}")
        if self.target == "macs_reduction" and not (traced and self.schedule == "oneshot"):
            raise ValueError("target: macs_reduction needs a traced structure "
                             f"({', '.join(choices.traced_names())}) and schedule: oneshot")
        if self.nominal_compression is not None and self.schedule != "oneshot":
            raise ValueError(f"schedule: structure {self.structure!r} fixes its sparsity; allowed values: oneshot")
        return self

    @property
    def nominal_compression(self) -> float | None:
        """M/N for an N:M structure, which fixes its own sparsity; None for every other structure."""
        fixed = choices.needs(self.structure).fixed_sparsity
        return None if fixed is None else 1 / (1 - fixed)

    def prune_options(self, seed: int, model: str) -> dict[str, Any]:
        """The ``pk.prune`` keywords of this method on ``model`` (besides the target and the data)."""
        options = {"structure": self.structure, "score": self.score, "scope": self.scope, "seed": seed}
        exclude = self.exclude.get(model, ()) if isinstance(self.exclude, dict) else self.exclude
        if exclude:
            options["exclude"] = list(exclude)
        options.update({k: getattr(self, k) for k in ("round_to", "reduce", "max_ratio")
                        if getattr(self, k) is not None})
        if self.allow_collapse:
            options["allow_collapse"] = True
        return options
