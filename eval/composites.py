"""CLEAR's composite scores and the bootstrap intervals of every task figure and composite.

A composite (``forget``, ``retain``, ``real``, ``model_utility``) is the harmonic mean of the (task, figure) pairs
that ``eval.tasks.COMPOSITES`` lists; it is None unless every one of its tasks was evaluated.

Intervals are percentile bootstraps over samples: in each of ``resamples`` rounds every task's records are drawn
with replacement (as many as it has, independently per task, from one seeded generator), the task figures are
recomputed from the drawn records and the composites from those figures. The interval of a figure is the 2.5% and
97.5% quantiles of its values over the rounds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from eval.metrics import harmonic_mean
from eval.tasks import COMPOSITES, TASKS

RESAMPLES = 1000
LEVEL = 0.95


def composite_scores(figures: dict[str, dict[str, float]]) -> dict[str, float | None]:
    """Each composite of ``figures`` (task -> figure -> value): ``hmean`` of its pairs, None when a task is missing."""
    scores: dict[str, float | None] = {}
    for name, pairs in COMPOSITES.items():
        present = all(task in figures for task, _ in pairs)
        scores[name] = harmonic_mean([figures[task][figure] for task, figure in pairs]) if present else None
    return scores


def _interval(values: list[float], level: float) -> list[float]:
    low, high = np.quantile(np.asarray(values, dtype=np.float64), [(1 - level) / 2, (1 + level) / 2])
    return [float(low), float(high)]


def bootstrap_intervals(
    records: dict[str, list[dict[str, Any]]], resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL
) -> tuple[dict[str, dict[str, list[float]]], dict[str, list[float]]]:
    """The intervals of every task figure (task -> figure -> ``[low, high]``) and of every computable composite."""
    rng = np.random.default_rng(seed)
    rounds: dict[str, dict[str, list[float]]] = {task: {} for task in records}
    composites: dict[str, list[float]] = {}
    for _ in range(resamples):
        figures = {}
        for task, task_records in records.items():  # a fixed task order, so the draws depend on the seed alone
            drawn = rng.integers(0, len(task_records), size=len(task_records))
            figures[task] = TASKS[task].figures([task_records[i] for i in drawn])
            for figure, value in figures[task].items():
                rounds[task].setdefault(figure, []).append(value)
        for name, value in composite_scores(figures).items():
            if value is not None:
                composites.setdefault(name, []).append(value)
    tasks = {task: {figure: _interval(values, level) for figure, values in rounds[task].items()} for task in rounds}
    return tasks, {name: _interval(values, level) for name, values in composites.items()}
