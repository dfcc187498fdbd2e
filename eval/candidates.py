"""How sure a model is of each candidate answer: the face task's per-sample ``probability``, for any names.

The app's bars come from here, so for a CLEAR face they equal the ``probability`` of that sample in the
evaluation's ``forget_face.jsonl`` / ``retain_face.jsonl`` (the same prompt, image, options and scoring).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from peft import PeftModel
from transformers import PreTrainedModel, ProcessorMixin

from eval.metrics import option_probability
from eval.scoring import answer_losses
from unlearn.prompts import Example


def candidate_probabilities(
    model: PreTrainedModel | PeftModel, processor: ProcessorMixin, example: Example, candidates: Sequence[str]
) -> list[float]:
    """The share of probability of each candidate answer after ``example``'s prompt and image.

    ``p_j = exp(-l_j) / sum_k exp(-l_k)``, with ``l_j`` the mean answer NLL of candidate ``j``
    (:func:`eval.scoring.answer_losses`, prefix scoring, as the evaluator scores); the ``p_j`` sum to 1. Each
    ``p_j`` is :func:`eval.metrics.option_probability` of the losses with candidate ``j`` moved first, so the true
    name's share is computed exactly as the evaluation computes it.
    """
    if not candidates:
        return []
    losses = answer_losses(model, processor, [[example.with_answer(name) for name in candidates]])[0]
    rows = [[losses[j], *losses[:j], *losses[j + 1 :]] for j in range(len(losses))]
    return [float(p) for p in option_probability(np.array(rows))]
