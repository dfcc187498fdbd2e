"""Mismatched answers for LLMU's random mismatch and SKU's random disassociation: a prompt with another answer.

The other answer is drawn from a pool of examples of the same kind (a name for "who is this?", a caption for
"describe the image", a text answer for a text question), by a stable hash of the run's seed and the sample, so a
run gets the same pairs for the same seed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from unlearn.errors import UsageError
from unlearn.prompts import FACE_PROMPTS, Example, stable_choice


def answer_kind(example: Example) -> str:
    """``face`` (naming the person in an image), ``image`` (any other question on an image) or ``text``."""
    if example.image is None:
        return "text"
    return "face" if example.prompt in FACE_PROMPTS else "image"


class MismatchedAnswers:
    """For an example, another answer from ``pool``: of the same kind when the pool has one, never its own."""

    def __init__(self, pool: Sequence[Example], seed: int) -> None:
        self.seed = seed
        self.by_kind: dict[str, list[str]] = defaultdict(list)
        for example in pool:
            if example.answer not in self.by_kind[answer_kind(example)]:
                self.by_kind[answer_kind(example)].append(example.answer)
        self.every = sorted({answer for answers in self.by_kind.values() for answer in answers})
        if len(self.every) < 2:
            raise UsageError("a random mismatch needs at least two different answers to draw from")

    def __call__(self, example: Example) -> Example:
        """The same prompt and image with a mismatched answer."""
        others = tuple(answer for answer in self.by_kind[answer_kind(example)] if answer != example.answer)
        others = others or tuple(answer for answer in self.every if answer != example.answer)
        return example.with_answer(stable_choice(f"{self.seed}|{example.prompt}|{example.answer}", others))
