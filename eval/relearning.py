"""The relearning probe's data and figures: what an attacker relearns, what is probed, and the recovery.

Two splits of the forget persons' data (the training itself is :func:`unlearn.training.relearn.relearn`):

- ``image``: for each forget person, the 1st, 3rd, 5th... of their images are relearned (caption, and face naming
  when the adapter was unlearned with it), the 2nd, 4th... are probed: does learning some images of a person bring
  back the others?
- ``text``: the forget persons' text answers are relearned, all their images probed: does the text bring the
  faces and captions back?

Probed at each step: the forget-face probability ``mean_i exp(-l_i0) / sum_j exp(-l_ij)`` and the forget-caption
ROUGE-L recall of a greedy caption (:mod:`eval.tasks`). The recovery of a figure after ``k`` steps is
``(f_k - f_0) / (f_vanilla - f_0)`` (:func:`eval.membership.recovery`; None when ``f_vanilla == f_0``): the share
of what unlearning removed that relearning brought back. Gold relearning the same data for the same steps (its
own recovery, from its own ``f_0``) is what learning the persons from scratch gives: the floor of the attack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from peft import PeftModel
from transformers import PreTrainedModel, ProcessorMixin

from eval.evaluator import GENERATION_MARGIN, run_task
from eval.membership import recovery
from eval.scoring import reference_length
from eval.tasks import TASKS, Sample
from unlearn.data import lazy_rows, load_clear, text_examples
from unlearn.prompts import Example, caption_example, face_example

RELEARN_STEPS = (1, 5, 20)
SPLITS = ("image", "text")
FACE, CAPTION = "forget_face", "forget_caption"
# figure name -> (task, task figure)
FIGURES = {"face_probability": (FACE, "probability"), "caption_rouge_l": (CAPTION, "rouge_l")}


@dataclass(frozen=True)
class RelearnSplit:
    """What relearning trains on (``examples``, described by ``relearned_on``) and the samples it probes."""

    name: str
    relearned_on: str
    examples: list[Example]
    samples: dict[str, list[Sample]]


def image_halves(names: list[str]) -> tuple[list[int], list[int]]:
    """Row indices: of each person's rows (in order) the 1st, 3rd, 5th... to relearn, the 2nd, 4th... to probe."""
    relearned: list[int] = []
    probed: list[int] = []
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        (relearned if seen.get(name, 0) % 2 == 0 else probed).append(index)
        seen[name] = seen.get(name, 0) + 1
    return relearned, probed


def relearning_splits(data: str, forget: str, face_naming: bool) -> dict[str, RelearnSplit]:
    """The ``image`` and ``text`` splits of ``forget``'s persons (see the module docstring)."""
    rows = load_clear(TASKS[FACE].config(forget), data)
    every = {task: list(TASKS[task].samples(rows)) for task in (FACE, CAPTION)}
    relearned, probed = image_halves(list(rows["name"]))
    relearned_rows = list(lazy_rows(rows.select(relearned)))
    image_examples = [caption_example(row) for row in relearned_rows]
    image_examples += [face_example(row) for row in relearned_rows] if face_naming else []
    kept = set(probed)
    naming = " and face naming" if face_naming else ""
    return {
        "image": RelearnSplit(
            "image",
            f"captions{naming} of half of each forget person's images (the other half probed)",
            image_examples,
            {task: [s for s in samples if s.id in kept] for task, samples in every.items()},
        ),
        "text": RelearnSplit(
            "text", "the forget persons' text answers (all their images probed)", text_examples(data, forget), every
        ),
    }


def generation_lengths(processor: ProcessorMixin, samples: dict[str, list[Sample]]) -> dict[str, int]:
    """New tokens per task: its longest probed reference plus the evaluation's margin."""
    return {
        task: reference_length(processor, [s.example.answer for s in task_samples]) + GENERATION_MARGIN
        for task, task_samples in samples.items()
    }


def probe_figures(
    model: PreTrainedModel | PeftModel,
    processor: ProcessorMixin,
    samples: dict[str, list[Sample]],
    lengths: dict[str, int],
    batch_size: int = 8,
) -> tuple[dict[str, float], dict[str, list[dict[str, Any]]]]:
    """The ``FIGURES`` of ``model`` on ``samples`` and the per-sample records they come from."""
    records = {
        task: run_task(model, processor, TASKS[task], task_samples, batch_size, lengths[task], progress=False)
        for task, task_samples in samples.items()
    }
    figures = {name: TASKS[task].figures(records[task])[figure] for name, (task, figure) in FIGURES.items()}
    return figures, records


def with_recovery(points: list[dict[str, Any]], vanilla: dict[str, float]) -> list[dict[str, Any]]:
    """Each point (``steps`` and the ``FIGURES``, step 0 first) with the recovery of each figure from step 0."""
    start = points[0]
    return [
        {**point, "recovery": {name: recovery(point[name], start[name], vanilla[name]) for name in FIGURES}}
        for point in points
    ]
