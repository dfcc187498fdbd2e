"""LLMU (Yao et al. 2023, "Large Language Model Unlearning"): ascent on f, random mismatch, KL to the reference on r."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from unlearn.methods import register
from unlearn.methods.mismatch import MismatchMethod
from unlearn.prompts import Example


def llmu_loss(
    forget_nll: torch.Tensor,
    mismatch_nll: torch.Tensor,
    retain_kl: torch.Tensor,
    forget_weight: float,
    mismatch_weight: float,
    kl_weight: float,
) -> torch.Tensor:
    """``-forget_weight * NLL(f) + mismatch_weight * NLL(random retain answer | forget prompt) + kl_weight * KL(r)``.

    ``retain_kl`` is ``KL(ref || model)`` per answer token of the retain batch.
    """
    return -forget_weight * forget_nll + mismatch_weight * mismatch_nll + kl_weight * retain_kl


@dataclass
class LLMUOptions:
    forget_weight: float = field(default=0.5, metadata={"help": "weight of the ascent term -NLL(f) (Yao et al.: 0.5)"})
    mismatch_weight: float = field(
        default=1.0, metadata={"help": "weight of NLL(random retain answer | forget prompt) (Yao et al.: 1)"}
    )
    kl_weight: float = field(default=1.0, metadata={"help": "weight of KL(ref || model) on r (Yao et al.: 1)"})


@register
class LLMU(MismatchMethod):
    """``loss = -forget_weight * NLL(f) + mismatch_weight * NLL(y_rand | x_f) + kl_weight * KL(ref || model)(r)``.

    ``y_rand`` is a retain answer of the same kind (a name, a caption, a text answer) given to the forget prompt,
    drawn per sample from the retain set by the run's seed; the reference is the model with its adapter disabled.
    """

    name = "llmu"
    description = "LLMU: -NLL(f) + NLL(random retain answer | forget prompt) + KL(ref||model)(r)"
    options_class = LLMUOptions

    def answer_pool(self, forget: Sequence[Example], retain: Sequence[Example]) -> Sequence[Example]:
        return retain

    def combine(self, forget_nll: torch.Tensor, mismatch_nll: torch.Tensor, retain_kl: torch.Tensor) -> torch.Tensor:
        options = self.options
        return llmu_loss(
            forget_nll, mismatch_nll, retain_kl, options.forget_weight, options.mismatch_weight, options.kl_weight
        )
