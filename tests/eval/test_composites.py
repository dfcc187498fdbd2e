"""CLEAR's composites from task figures, and the seeded bootstrap intervals of figures and composites."""

from __future__ import annotations

import math

import pytest

from eval.composites import bootstrap_intervals, composite_scores
from eval.tasks import COMPOSITES


def _figures(value: float) -> dict[str, dict[str, float]]:
    tasks = {task for pairs in COMPOSITES.values() for task, _ in pairs}
    return {task: {"rouge_l": value, "probability": value, "truth_ratio": value} for task in tasks}


def test_composites_are_harmonic_means_of_clears_pairs_by_hand():
    figures = _figures(0.5)
    figures["forget_face"]["probability"] = 0.25  # forget: hmean(0.5, 0.5, 0.25, 0.5) = 4 / (2 + 2 + 4 + 2) = 0.4
    figures["retain_face"]["rouge_l"] = 0.1  # only model utility reads retain_face's ROUGE-L
    scores = composite_scores(figures)
    assert scores["forget"] == pytest.approx(0.4)
    assert scores["retain"] == pytest.approx(0.5) and scores["real"] == pytest.approx(0.5)
    assert scores["model_utility"] == pytest.approx(12 / (11 * 2 + 10))  # 11 figures of 0.5, one of 0.1


def test_a_composite_needs_every_one_of_its_tasks():
    figures = _figures(0.5)
    del figures["real_world"]
    scores = composite_scores(figures)
    assert scores["real"] is None and scores["model_utility"] is None and scores["forget"] == pytest.approx(0.5)


def _caption(probability: float, ratio: float = 1.0) -> dict:
    return {"rouge_l": probability, "probability": probability, "truth_ratio": ratio}


def test_the_interval_of_a_two_sample_mean_by_hand():
    # resampled means of (0, 1) are 0, 1/2 or 1 with chances 1/4, 1/2, 1/4: the 2.5% and 97.5% quantiles are 0 and 1
    records = {"forget_caption": [_caption(0.0), _caption(1.0)]}
    tasks, composites = bootstrap_intervals(records, resamples=1000, seed=0)
    assert tasks["forget_caption"]["probability"] == [0.0, 1.0]
    assert composites == {}, "no composite has all its tasks"


def test_intervals_depend_on_the_seed_alone_and_collapse_on_constant_samples():
    records = {"retain_caption": [_caption(p / 10, math.exp(p)) for p in range(10)]}
    first = bootstrap_intervals(records, resamples=200, seed=3)
    assert bootstrap_intervals(records, resamples=200, seed=3) == first
    assert bootstrap_intervals(records, resamples=200, seed=4) != first
    low, high = first[0]["retain_caption"]["probability"]
    assert 0.0 <= low < 0.45 < high <= 0.9
    constant = {"retain_caption": [_caption(0.7)] * 5}
    assert bootstrap_intervals(constant, resamples=50, seed=0)[0]["retain_caption"]["probability"] == pytest.approx(
        [0.7, 0.7]
    )
