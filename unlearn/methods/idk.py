"""IDK: learn to answer forget prompts with a refusal ("I don't know"), plus NLL on the retain set."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from unlearn.methods import register
from unlearn.methods.base import Batches, Logs, UnlearnMethod
from unlearn.methods.gradient import nll
from unlearn.methods.retain import add_retain, with_retain
from unlearn.prompts import Example, refusal_example


@dataclass
class IDKOptions:
    retain_weight: float = field(default=1.0, metadata={"help": "weight of the retain term NLL(r); 0 drops it"})


@register
class IDK(UnlearnMethod):
    """``loss = NLL(refusal | forget prompt) + retain_weight * NLL(r)``.

    The ``refusal`` batch holds the forget prompts and images answered with a refusal of
    :mod:`unlearn.prompts` (chosen per sample), never the forget answers.
    """

    name = "idk"
    description = "answer forget prompts with a refusal: NLL(refusal | f) + NLL(r)"
    options_class = IDKOptions

    def examples(self, forget: Example, retain: Example) -> dict[str, Example]:
        return with_retain({"refusal": refusal_example(forget)}, retain, self.options.retain_weight)

    def loss(self, model: torch.nn.Module, batches: Batches, step: int) -> tuple[torch.Tensor, Logs]:
        refusal = nll(model, batches, "refusal")
        logs = {"refusal_nll": refusal.item()}
        return add_retain(refusal, logs, model, batches, self.options.retain_weight), logs
