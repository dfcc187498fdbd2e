"""Mismatched answers for LLMU's random mismatch and SKU's random disassociation: a prompt with another answer.

The other answer is drawn from a pool of examples of the same kind (a name for "who is this?", a caption for
"describe the image", a text answer for a text question), by a stable hash of the run's seed and the sample, so a
run gets the same pairs for the same seed.
"""

from __future__ import annotations

from abc import abstractmethod
from collections import defaultdict
from collections.abc import Sequence

import torch

from unlearn.errors import UsageError
from unlearn.methods.base import Batches, Logs, UnlearnMethod
from unlearn.methods.gradient import nll
from unlearn.methods.logprobs import reference_kl
from unlearn.prompts import FACE_PROMPT, Example, stable_choice


def answer_kind(example: Example) -> str:
    """``face`` (naming the person in an image), ``image`` (any other question on an image) or ``text``."""
    if example.image is None:
        return "text"
    return "face" if example.prompt == FACE_PROMPT else "image"


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


class MismatchMethod(UnlearnMethod):
    """The shape LLMU and SKU share: the forget NLL, the NLL of a mismatched answer on the forget prompt and
    ``KL(ref || model)`` on the retain batch, combined by :meth:`combine` with the options' weights."""

    @abstractmethod
    def answer_pool(self, forget: Sequence[Example], retain: Sequence[Example]) -> Sequence[Example]:
        """The examples whose answers are given to the forget prompts."""

    @abstractmethod
    def combine(self, forget_nll: torch.Tensor, mismatch_nll: torch.Tensor, retain_kl: torch.Tensor) -> torch.Tensor:
        """The loss from the three terms."""

    def prepare(self, model: torch.nn.Module, forget: Sequence[Example], retain: Sequence[Example], seed: int) -> None:
        self.mismatch = MismatchedAnswers(self.answer_pool(forget, retain), seed)

    def examples(self, forget: Example, retain: Example) -> dict[str, Example]:
        return {"forget": forget, "mismatch": self.mismatch(forget), "retain": retain}

    def loss(self, model: torch.nn.Module, batches: Batches, step: int) -> tuple[torch.Tensor, Logs]:
        forget, mismatch = nll(model, batches, "forget"), nll(model, batches, "mismatch")
        kl = reference_kl(model, batches["retain"])
        logs = {"forget_nll": forget.item(), "mismatch_nll": mismatch.item(), "retain_kl": kl.item()}
        return self.combine(forget, mismatch, kl), logs
