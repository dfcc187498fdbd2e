"""The one definition of each headline figure: its ``summary.json`` key, label, meaning and direction.

The evaluator writes these keys into ``summary.json``; the report, the model card and the app read their labels and
meanings from here. The Hub and app side read the figures' values from ``summary.json`` files, never from ``eval/``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    """A headline figure: ``key`` in ``summary.json``, ``label`` shown everywhere, a one-line ``meaning``."""

    key: str
    label: str
    meaning: str
    higher_is_better: bool

    @property
    def direction(self) -> str:
        """``higher is better`` or ``lower is better``."""
        return "higher is better" if self.higher_is_better else "lower is better"

    def described(self) -> str:
        """``meaning (direction)``: the text under the label on the card, the report and the app."""
        return f"{self.meaning} ({self.direction})"


FIGURES: tuple[Figure, ...] = (
    Figure("real", "Real", "score on real-world faces and questions", True),
    Figure("retain", "Retain", "score on the retained persons", True),
    Figure("forget", "Forget", "score on the forgotten persons; lower means more forgotten", False),
    Figure(
        "forget_quality_ks",
        "Forget quality (KS p)",
        "p-value of a KS test between this model's and the gold model's truth ratios on the forget captions; "
        "higher means closer to a model that never saw these persons",
        True,
    ),
    Figure(
        "forget_quality_js",
        "Forget quality (1-JS)",
        "1 - Jensen-Shannon divergence between the same two truth-ratio distributions; higher means closer",
        True,
    ),
    Figure("model_utility", "Model utility", "combined score on the retained persons and the real world", True),
)
HEADLINE: dict[str, Figure] = {figure.key: figure for figure in FIGURES}
