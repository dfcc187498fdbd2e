"""Negative preference optimisation (NPO, Zhang et al. 2024), alone or with retain NLL."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from unlearn.methods import register
from unlearn.methods.base import Batches, Logs, UnlearnMethod, require_positive
from unlearn.methods.gradient import nll
from unlearn.methods.logprobs import answer_logprob, logits, reference_logits
from unlearn.prompts import Example


def npo_loss(logprob: torch.Tensor, reference_logprob: torch.Tensor, beta: float) -> torch.Tensor:
    """``(2/beta) * mean_i log(1 + (p(y_i|x_i) / p_ref(y_i|x_i))^beta)``, from summed answer log-probabilities.

    Written as ``(2/beta) * mean softplus(beta * (log p - log p_ref))``, which is the same value, computed stably.
    """
    return 2.0 / beta * F.softplus(beta * (logprob - reference_logprob)).mean()


@dataclass
class NPOOptions:
    beta: float = field(default=0.1, metadata={"help": "NPO inverse temperature beta (the NPO paper's 0.1)"})

    def __post_init__(self) -> None:
        require_positive(beta=self.beta)


@register
class NPO(UnlearnMethod):
    """``loss = (2/beta) * mean log(1 + (p(y|x) / p_ref(y|x))^beta)`` on f.

    ``log p(y|x)`` sums the log-probabilities of the forget answer tokens only (the labels' -100 positions are left
    out); ``p_ref`` is the same model with its LoRA adapter disabled.
    """

    name = "npo"
    description = "negative preference optimisation on f against the reference"
    options_class = NPOOptions

    def examples(self, forget: Example, retain: Example) -> dict[str, Example]:
        return {"forget": forget}

    def npo(self, model: torch.nn.Module, batches: Batches) -> torch.Tensor:
        """The NPO term on the forget batch."""
        forget = batches["forget"]
        labels = forget["labels"]
        reference = answer_logprob(reference_logits(model, forget), labels)
        return npo_loss(answer_logprob(logits(model, forget), labels), reference, self.options.beta)

    def loss(self, model: torch.nn.Module, batches: Batches, step: int) -> tuple[torch.Tensor, Logs]:
        npo = self.npo(model, batches)
        return npo, {"npo": npo.item()}


@dataclass
class NPOGDOptions(NPOOptions):
    retain_weight: float = field(default=1.0, metadata={"help": "weight of the retain term NLL(r)"})


@register
class NPOGD(NPO):
    """``loss = NPO(f) + retain_weight * NLL(r)``."""

    name = "npo_gd"
    description = "NPO on f plus NLL on r"
    options_class = NPOGDOptions

    examples = UnlearnMethod.examples  # the retain batch is back

    def loss(self, model: torch.nn.Module, batches: Batches, step: int) -> tuple[torch.Tensor, Logs]:
        npo, retain = self.npo(model, batches), nll(model, batches, "retain")
        return npo + self.options.retain_weight * retain, {"npo": npo.item(), "retain_nll": retain.item()}
