"""Gradient methods: fine-tune on the retain set, ascend on the forget set, or both (gradient difference)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from unlearn.methods import register
from unlearn.methods.base import Batches, Logs, UnlearnMethod
from unlearn.methods.logprobs import answer_nll, logits
from unlearn.prompts import Example


def nll(model: torch.nn.Module, batches: Batches, name: str) -> torch.Tensor:
    """Mean answer-token NLL of the model on the batch called ``name``."""
    return answer_nll(logits(model, batches[name]), batches[name]["labels"])


@register
class RetainFinetune(UnlearnMethod):
    """``loss = NLL(r)``: keep training on the retain set only (the forget set is never used)."""

    name = "retain_ft"
    description = "fine-tune on the retain set only: NLL(r)"

    def examples(self, forget: Example, retain: Example) -> dict[str, Example]:
        return {"retain": retain}

    def loss(self, model: torch.nn.Module, batches: Batches, step: int) -> tuple[torch.Tensor, Logs]:
        retain = nll(model, batches, "retain")
        return retain, {"retain_nll": retain.item()}


@register
class GradientAscent(UnlearnMethod):
    """``loss = -NLL(f)``: gradient ascent on the forget answers."""

    name = "ga"
    description = "gradient ascent on the forget set: -NLL(f)"

    def examples(self, forget: Example, retain: Example) -> dict[str, Example]:
        return {"forget": forget}

    def loss(self, model: torch.nn.Module, batches: Batches, step: int) -> tuple[torch.Tensor, Logs]:
        forget = nll(model, batches, "forget")
        return -forget, {"forget_nll": forget.item()}


@dataclass
class GradientDifferenceOptions:
    forget_weight: float = field(default=1.0, metadata={"help": "weight of the forget term -NLL(f)"})
    retain_weight: float = field(default=1.0, metadata={"help": "weight of the retain term NLL(r)"})


@register
class GradientDifference(UnlearnMethod):
    """``loss = -forget_weight * NLL(f) + retain_weight * NLL(r)``."""

    name = "gd"
    description = "gradient difference: -NLL(f) + NLL(r)"
    options_class = GradientDifferenceOptions

    def loss(self, model: torch.nn.Module, batches: Batches, step: int) -> tuple[torch.Tensor, Logs]:
        forget, retain = nll(model, batches, "forget"), nll(model, batches, "retain")
        loss = -self.options.forget_weight * forget + self.options.retain_weight * retain
        return loss, {"forget_nll": forget.item(), "retain_nll": retain.item()}
