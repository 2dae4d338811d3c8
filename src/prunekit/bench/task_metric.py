"""What a dataset/model pair is judged by: top-1 accuracy for classifiers, perplexity for language models.

The one place that decides a pair's metric (from its data, when the runner measures it), its name and
unit in tables and plots, and its direction (perplexity: lower is better). Runs and bases record the
metric's key as ``task_metric``; reports, plots and the terminal summary read it back with :func:`of`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

RECORD = "task_metric"  # the key under which a run or base records its metric's key


@dataclass(frozen=True)
class TaskMetric:
    """A quality metric: its key in ``evaluate``'s results and the run metrics, how to show and rank it."""

    key: str  # finetuned_val_<key> chooses, finetuned_test_<key> is reported
    name: str  # in tables: "test top-1", "val perplexity"
    unit: str  # appended to a shown value or a title (" %" or "")
    scale: float  # a stored value is shown as value × scale
    noun: str  # what "chosen on validation …" names
    axis: str  # a plot's y-axis label
    decimals: int  # in the terminal's compact cells (reports show 2)
    lower_is_better: bool
    compute: Callable[[dict[str, float]], float]  # the value from evaluate's top1 / top5 / loss

    @property
    def select_on(self) -> str:
        """The validation key that picks the best method (never a test key)."""
        return f"finetuned_val_{self.key}"

    @property
    def reported(self) -> str:
        """The test key that tables and plots show after fine-tuning."""
        return f"finetuned_test_{self.key}"

    @property
    def direction(self) -> str:
        """What a reader must be told next to the metric's name: `` (lower is better)`` or nothing."""
        return " (lower is better)" if self.lower_is_better else ""

    @property
    def title(self) -> str:
        """``test top-1 %`` or ``test perplexity (lower is better)``: a column or table title."""
        return f"test {self.name}{self.unit}{self.direction}"

    def shown(self, value: float) -> float:
        """A stored value as tables and plots show it (top-1 in percent)."""
        return self.scale * value

    def best_first(self, values: list[tuple[str, float]]) -> list[tuple[str, float]]:
        """``(name, value)`` pairs, best first; a stable sort, so ties keep the given order."""
        return sorted(values, key=lambda t: t[1] if self.lower_is_better else -t[1])


def _perplexity(evaluated: dict[str, float]) -> float:
    from ..data.text import perplexity

    return perplexity(evaluated["loss"])


TOP1 = TaskMetric(key="top1", name="top-1", unit=" %", scale=100.0, noun="accuracy", axis="test top-1 accuracy (%)",
                  decimals=1, lower_is_better=False, compute=lambda e: e["top1"])
PERPLEXITY = TaskMetric(key="perplexity", name="perplexity", unit="", scale=1.0, noun="perplexity",
                        axis="test perplexity per token (lower is better)", decimals=2, lower_is_better=True,
                        compute=_perplexity)
BY_KEY = {m.key: m for m in (TOP1, PERPLEXITY)}


def for_data(data: Any) -> TaskMetric:
    """The metric a dataset's runs are judged by: perplexity per token for text windows, else top-1."""
    from ..data.text import TextWindows

    return PERPLEXITY if isinstance(data, TextWindows) else TOP1


def of(metrics: dict[str, Any]) -> TaskMetric:
    """The metric a run or base recorded (top-1 for results that record none)."""
    return BY_KEY[metrics.get(RECORD, TOP1.key)]


def of_pair(methods: dict[str, dict[float, list[dict]]]) -> TaskMetric:
    """The metric a pair's runs recorded, from their grouping method → compression → run metrics."""
    return of(next(r for by_ratio in methods.values() for runs in by_ratio.values() for r in runs))
