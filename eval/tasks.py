"""The CLEAR evaluation tasks: which config each reads, what it scores, and its per-sample and summary figures.

Every task turns rows into :class:`Sample` objects (a prompt with its image, the answers to score, the true one
first), turns a sample's losses and generation into one JSON-ready record, and computes its figures from the records
alone, so ``summary.json`` can always be recomputed from the ``<task>.jsonl`` files. A record keeps ``log_truth_ratio``
beside ``truth_ratio``: ``R`` can overflow to ``inf`` (written as null with ``truth_ratio_nonfinite: "inf"``,
:mod:`eval.logs`) where ``log R`` stays finite, so the truth-ratio figure is computed from ``log R``
(:func:`eval.metrics.truth_ratio_score_of_logs`), the same on records in memory and read back. A sample's image is a
reference to its row (:func:`unlearn.data.lazy_rows`), decoded only when its batch is built: listing samples costs no
pixels.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import datasets
import numpy as np

from eval.logs import log_truth_ratio_of
from eval.metrics import (
    log_truth_ratio,
    option_accuracy,
    option_probability,
    probability,
    rouge_l_recall,
    truth_ratio,
    truth_ratio_score_of_logs,
)
from unlearn.data import RETAIN_OF, lazy_rows
from unlearn.prompts import (
    Example,
    answer_options,
    caption_example,
    face_example,
    multiple_choice,
    question_example,
)


@dataclass(frozen=True)
class Sample:
    """One evaluated row: its id (row index in the config), prompt and image, and the answers scored on it."""

    id: int
    example: Example
    answers: tuple[str, ...]

    def scored(self) -> list[Example]:
        """The example once per answer (same prompt and image), the true answer first."""
        return [self.example.with_answer(answer) for answer in self.answers]


@dataclass(frozen=True)
class Task(ABC):
    """A task's name, its group (forget, retain or real) and the config it reads (``{forget}``/``{retain}`` filled)."""

    name: str
    group: str
    config_pattern: str
    generates: bool = False

    def config(self, forget: str) -> str:
        """The CLEAR config this task reads for the forget split ``forget``."""
        return self.config_pattern.format(forget=forget, retain=RETAIN_OF[forget])

    @abstractmethod
    def samples(self, rows: datasets.Dataset) -> Iterator[Sample]:
        """The samples of the config's rows, in row order (ids are row indices); images are decoded lazily."""

    def references(self, rows: datasets.Dataset) -> list[str]:
        """Every reference text the task generates towards (none for tasks that do not generate)."""
        return []

    @abstractmethod
    def record(self, sample: Sample, losses: list[float], generation: str | None) -> dict[str, Any]:
        """One JSON line: the sample, its losses (in ``sample.answers`` order), generation and per-sample metrics."""

    @abstractmethod
    def figures(self, records: list[dict[str, Any]]) -> dict[str, float]:
        """The task's figures, computed from its records alone."""


def _generated(sample: Sample, generation: str | None) -> dict[str, Any]:
    if generation is None:
        raise ValueError(f"sample {sample.id} needs a generation")
    return {"generation": generation, "rouge_l": rouge_l_recall(generation, sample.example.answer)}


def _mean(records: list[dict[str, Any]], key: str) -> float:
    return float(np.mean([record[key] for record in records]))


def _truth_ratio_figure(records: list[dict[str, Any]], forget: bool) -> float:
    """:func:`eval.metrics.truth_ratio_score` of the records' ratios, computed from their ``log R``
    (:func:`eval.logs.log_truth_ratio_of`): ``mean_i exp(-|log R_i|)`` on forget tasks, ``mean_i max(0,
    -expm1(-log R_i))`` elsewhere, exact where ``R_i`` overflowed (and where a record holds it as null)."""
    return truth_ratio_score_of_logs(np.array([log_truth_ratio_of(r) for r in records], dtype=np.float64), forget)


class CaptionTask(Task):
    """Captions: ROUGE-L recall of a greedy caption (made with the image), probability of the true caption, truth
    ratio of the paraphrased caption against the perturbed ones.

    Answers: the caption, the paraphrased caption, then the perturbed captions. Per sample ``probability`` is
    ``exp(-loss)``, ``log_truth_ratio`` is ``log R_i = mean perturbed loss - paraphrased loss``
    (:func:`eval.metrics.log_truth_ratio`) and ``truth_ratio`` is ``R_i = exp(log R_i)``
    (:func:`eval.metrics.truth_ratio`, ``inf`` when it overflows); the task's ``truth_ratio`` is
    :func:`eval.metrics.truth_ratio_score`, computed from ``log R`` (:func:`_truth_ratio_figure`).
    """

    def samples(self, rows: datasets.Dataset) -> Iterator[Sample]:
        for i, row in enumerate(lazy_rows(rows)):
            answers = (row["caption"], row["paraphrased_caption"], *row["perturbed_captions"])
            yield Sample(i, caption_example(row), answers)

    def references(self, rows: datasets.Dataset) -> list[str]:
        return list(rows["caption"])

    def record(self, sample: Sample, losses: list[float], generation: str | None) -> dict[str, Any]:
        para, pert = np.array([losses[1]]), np.array([losses[2:]])
        with np.errstate(over="ignore"):  # an overflowing R is inf; log R keeps its value
            ratio = truth_ratio(para, pert)[0]
        return {
            "id": sample.id,
            "prompt": sample.example.prompt,
            "reference": sample.example.answer,
            **_generated(sample, generation),
            "paraphrased": sample.answers[1],
            "perturbed": list(sample.answers[2:]),
            "loss": losses[0],
            "paraphrased_loss": losses[1],
            "perturbed_losses": losses[2:],
            "probability": float(probability(losses[0])),
            "truth_ratio": float(ratio),
            "log_truth_ratio": float(log_truth_ratio(para, pert)[0]),
        }

    def figures(self, records: list[dict[str, Any]]) -> dict[str, float]:
        return {
            "rouge_l": _mean(records, "rouge_l"),
            "probability": _mean(records, "probability"),
            "truth_ratio": _truth_ratio_figure(records, self.group == "forget"),
        }


def _prediction(answers: tuple[str, ...], losses: list[float]) -> str | None:
    """The answer with the lowest loss; None on a tie for the lowest (which ``option_accuracy`` counts as wrong)."""
    best = min(losses)
    return answers[losses.index(best)] if losses.count(best) == 1 else None


class OptionsTask(Task):
    """Options: the true answer and wrong ones, each scored after the same bare prompt and image.

    Face tasks use CLEAR's fixed face prompt, the row's name and its ``perturbed_names``; ``real_faces`` the face
    prompt and ``real_world`` the question, with the row's ``options`` (wrong answers; the true answer is added).
    Per sample: ``probability`` ``exp(-l_0) / sum_j exp(-l_j)`` (the true option's share), ``truth_ratio``
    ``R = exp(mean_{j>0} l_j - l_0)`` (the true answer is its own "paraphrase"; ``inf`` when it overflows) with
    ``log_truth_ratio`` ``log R = mean_{j>0} l_j - l_0``, ROUGE-L recall of a greedy answer against the true one,
    and ``correct`` (the true option has the lowest loss) for the extra ``accuracy`` figure.
    """

    def samples(self, rows: datasets.Dataset) -> Iterator[Sample]:
        for i, row in enumerate(lazy_rows(rows)):
            if "perturbed_names" in row:
                example, options = face_example(row), answer_options(row["name"], list(row["perturbed_names"]))
            else:
                example, options = multiple_choice(row)
            yield Sample(i, example, tuple(options))

    def references(self, rows: datasets.Dataset) -> list[str]:
        return list(rows["name"] if "name" in rows.column_names else rows["answer"])

    def record(self, sample: Sample, losses: list[float], generation: str | None) -> dict[str, Any]:
        row = np.array([losses])
        with np.errstate(over="ignore"):  # an overflowing R is inf; log R keeps its value
            ratio = truth_ratio(row[:, 0], row[:, 1:])[0]
        return {
            "id": sample.id,
            "prompt": sample.example.prompt,
            "reference": sample.example.answer,
            **_generated(sample, generation),
            "options": list(sample.answers),
            "option_losses": losses,
            "prediction": _prediction(sample.answers, losses),
            "correct": bool(option_accuracy(row)),
            "probability": float(option_probability(row)[0]),
            "truth_ratio": float(ratio),
            "log_truth_ratio": float(log_truth_ratio(row[:, 0], row[:, 1:])[0]),
        }

    def figures(self, records: list[dict[str, Any]]) -> dict[str, float]:
        return {
            "rouge_l": _mean(records, "rouge_l"),
            "probability": _mean(records, "probability"),
            "truth_ratio": _truth_ratio_figure(records, self.group == "forget"),
            "accuracy": _mean(records, "correct"),
        }


class TextTask(Task):
    """Text questions (the ``+tofu`` rows without an image): Prob. of the answer and ROUGE-L recall of a greedy one.

    Extra figures: CLEAR's composites are built from the caption and face tasks only.
    """

    @staticmethod
    def _question_rows(rows: datasets.Dataset) -> list[int]:
        return [i for i, question in enumerate(rows["question"]) if question]

    def samples(self, rows: datasets.Dataset) -> Iterator[Sample]:
        for i, row in enumerate(lazy_rows(rows)):
            if row["question"] and row["image"] is None:
                yield Sample(i, question_example(row), (row["answer"],))

    def references(self, rows: datasets.Dataset) -> list[str]:
        answers = rows["answer"]
        return [answers[i] for i in self._question_rows(rows)]

    def record(self, sample: Sample, losses: list[float], generation: str | None) -> dict[str, Any]:
        return {
            "id": sample.id,
            "prompt": sample.example.prompt,
            "reference": sample.example.answer,
            **_generated(sample, generation),
            "loss": losses[0],
            "probability": float(probability(losses[0])),
        }

    def figures(self, records: list[dict[str, Any]]) -> dict[str, float]:
        return {"rouge_l": _mean(records, "rouge_l"), "probability": _mean(records, "probability")}


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        CaptionTask("forget_caption", "forget", "{forget}_perturbed", generates=True),
        CaptionTask("retain_caption", "retain", "retain_perturbed", generates=True),
        OptionsTask("forget_face", "forget", "{forget}_perturbed", generates=True),
        OptionsTask("retain_face", "retain", "retain_perturbed", generates=True),
        OptionsTask("real_faces", "real", "real_faces", generates=True),
        OptionsTask("real_world", "real", "real_world", generates=True),
        TextTask("forget_text", "forget", "{forget}+tofu", generates=True),
        TextTask("retain_text", "retain", "{retain}+tofu", generates=True),
    )
}
# CLEAR's composites (the paper's mm/build_vllm_table.py and calculate_metrics.py): each is the harmonic mean of these
# (task, figure) pairs. Face accuracy and the +tofu text tasks are extra figures, outside every composite.
COMPOSITES: dict[str, tuple[tuple[str, str], ...]] = {
    "forget": tuple((task, f) for task in ("forget_caption", "forget_face") for f in ("probability", "truth_ratio")),
    "retain": tuple((task, f) for task in ("retain_caption", "retain_face") for f in ("probability", "truth_ratio")),
    "real": tuple((task, f) for task in ("real_faces", "real_world") for f in ("probability", "truth_ratio")),
    "model_utility": tuple(
        (task, f)
        for task in ("real_faces", "real_world", "retain_caption", "retain_face")
        for f in ("rouge_l", "probability", "truth_ratio")
    ),
}
