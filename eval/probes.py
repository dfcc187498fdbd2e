"""Robustness probes that need no training (issue 15; so far membership inference).

Membership inference asks whether the forget persons' training examples still look like training data. Its sets are
the forget split's examples (captions and text answers) and as many of the retain split's, spread evenly over it;
each attack's AUC is ``P(score(retain) > score(forget))`` (:func:`eval.membership.attack_aucs`, retain as members).
The gold model never saw the forget persons, so its AUC is what forgetting should reach: a model below it still
treats the forget examples as data (under-unlearning), one above it finds them stranger than data never seen
(over-unlearning). ``gap = (AUC_model - AUC_gold) / AUC_gold`` per attack.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from peft import PeftModel
from transformers import PreTrainedModel, ProcessorMixin

from eval.membership import ATTACKS, attack_aucs, relative_gap
from eval.token_scores import answer_attack_scores
from unlearn.data import RETAIN_OF, split_examples
from unlearn.prompts import Example


def spread(examples: list[Example], count: int) -> list[Example]:
    """``count`` examples at evenly spaced indices (all of them when there are no more)."""
    if count >= len(examples):
        return list(examples)
    return [examples[int(i)] for i in np.linspace(0, len(examples) - 1, count).round()]


def membership_sets(data: str, forget: str, max_samples: int | None = None) -> tuple[list[Example], list[Example]]:
    """The forget split's examples (at most ``max_samples``, evenly spread) and as many of its retain split's."""
    forget_examples = split_examples(data, forget)
    forget_examples = spread(forget_examples, max_samples or len(forget_examples))
    return forget_examples, spread(split_examples(data, RETAIN_OF[forget]), len(forget_examples))


def membership_probe(
    model: PreTrainedModel | PeftModel,
    processor: ProcessorMixin,
    sets: tuple[list[Example], list[Example]],
    k: float = 0.2,
    batch_size: int = 8,
) -> dict[str, Any]:
    """Each attack's AUC of telling retain (members) from forget examples, with the sample counts and ``k``."""
    forget_examples, retain_examples = sets
    was_training = model.training
    model.eval()
    try:
        forget_scores = answer_attack_scores(model, processor, forget_examples, k, batch_size)
        retain_scores = answer_attack_scores(model, processor, retain_examples, k, batch_size)
    finally:
        model.train(was_training)
    return {
        "auc": attack_aucs(retain_scores, forget_scores),
        "samples": {"forget": len(forget_examples), "retain": len(retain_examples)},
        "k": k,
    }


def membership_gap(model: dict[str, Any], gold: dict[str, Any]) -> dict[str, float | None]:
    """``(AUC_model - AUC_gold) / AUC_gold`` per attack (None where gold's AUC is 0)."""
    return {attack: relative_gap(model["auc"][attack], gold["auc"][attack]) for attack in ATTACKS}
