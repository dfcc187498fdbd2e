"""The one definition of each headline figure: its ``summary.json`` key, label, meaning and direction.

The evaluator writes these keys into ``summary.json``; the report, the model card and the app read their labels and
meanings from here. The Hub and app side read the figures' values from ``summary.json`` files, never from ``eval/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BETTER = ("higher", "lower", "closer to gold")


@dataclass(frozen=True)
class Figure:
    """A headline figure: ``key`` in ``summary.json``, ``label`` shown everywhere, a one-line ``meaning``, and which
    values are better (``BETTER``: higher, lower, or closer to the gold model's)."""

    key: str
    label: str
    meaning: str
    better: str

    def __post_init__(self) -> None:
        if self.better not in BETTER:
            raise ValueError(f"better must be one of {BETTER}, got {self.better!r}")

    @property
    def direction(self) -> str:
        """``higher is better``, ``lower is better`` or ``closer to gold is better``."""
        return f"{self.better} is better"

    def described(self) -> str:
        """``meaning (direction)``: the text under the label on the card, the report and the app."""
        return f"{self.meaning} ({self.direction})"


FIGURES: tuple[Figure, ...] = (
    Figure("real", "Real", "CLEAR's score on real-world faces and questions, which the base model knew", "higher"),
    Figure("retain", "Retain", "CLEAR's score on the retained persons' captions and faces", "higher"),
    Figure(
        "forget",
        "Forget",
        "CLEAR's score on the forgotten persons' captions and faces: probability of the true answers (high while "
        "they are known) with the truth-ratio figure (high when true and perturbed answers look alike); a model "
        "that never saw these persons sets the target",
        "closer to gold",
    ),
    Figure(
        "forget_quality_ks",
        "Forget quality (KS p)",
        "p-value of a KS test between this model's and the gold model's truth ratios on the forget captions; "
        "higher means closer to a model that never saw these persons",
        "higher",
    ),
    Figure(
        "forget_quality_js",
        "Forget quality (1-JS)",
        "1 - Jensen-Shannon divergence between the same two truth-ratio distributions; higher means closer",
        "higher",
    ),
    Figure(
        "model_utility",
        "Model utility",
        "CLEAR's combined score (ROUGE-L, probability, truth ratio) on the retained persons and the real world",
        "higher",
    ),
)
HEADLINE: dict[str, Figure] = {figure.key: figure for figure in FIGURES}


def is_task_figure(name: str, value: Any) -> bool:
    """An entry of a task in ``summary.json`` that is a figure: a number, not an interval (``<figure>_ci``, a list)
    and not the task's ``samples`` count."""
    return name != "samples" and isinstance(value, int | float) and not isinstance(value, bool)
