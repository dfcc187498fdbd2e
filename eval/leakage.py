"""The cross-modal leakage probe: how much an adapter unlearned on one modality forgot in the other.

CLEAR's finding is that forgetting in one modality leaks through the other. Adapters unlearned with
``--forget-modality visual`` (the forget persons' images), ``text`` (their text answers) or ``both`` are each
evaluated on the forget tasks of both modalities, beside the vanilla model (in the adapters' precision) and the gold
model (in its evaluation's precision), on the same samples. Each modality probed has a headline figure
(:data:`HEADLINE`), and each cell of the matrix (rows: modality unlearned; columns: modality probed) is the
forgotten share of that figure, ``(f_vanilla - f_adapter) / (f_vanilla - f_gold)``: 1 forgot as much as gold never
knew, 0 as much as vanilla (nothing); None when vanilla and gold agree (nothing to forget: ``|f_vanilla -
f_gold| < MIN_GAP``).
"""

from __future__ import annotations

from typing import Any

from eval.membership import MIN_GAP

LEAKAGE_TASKS = ("forget_caption", "forget_face", "forget_text")
FIGURES = ("forget_face/probability", "forget_caption/rouge_l", "forget_text/rouge_l")
HEADLINE = {"visual": "forget_face/probability", "text": "forget_text/rouge_l"}  # per modality probed


def forgotten_share(adapter: float, vanilla: float, gold: float) -> float | None:
    """``(vanilla - adapter) / (vanilla - gold)``: the share of the vanilla-to-gold gap the adapter closed; None
    (undefined, not a number) when vanilla and gold agree (``|vanilla - gold| < MIN_GAP``)."""
    gap = vanilla - gold
    return None if abs(gap) < MIN_GAP else (vanilla - adapter) / gap


def leakage_figures(summary: dict[str, Any]) -> dict[str, float]:
    """The ``FIGURES`` of an evaluation summary (``task/figure`` keys)."""
    return {key: summary[key.split("/")[0]][key.split("/")[1]] for key in FIGURES}


def leakage_row(adapter: str, figures: dict[str, float], vanilla: dict[str, float], gold: dict[str, float]) -> dict:
    """One row of the matrix: the adapter, its figures and the forgotten share per modality probed."""
    forgotten = {modality: forgotten_share(figures[key], vanilla[key], gold[key]) for modality, key in HEADLINE.items()}
    return {"adapter": adapter, "figures": figures, "forgotten": forgotten}
