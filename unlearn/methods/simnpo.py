"""SimNPO (Fan et al. 2024, "Simplicity Prevails"): reference-free, length-normalised NPO, plus optional retain NLL."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from unlearn.collate import IGNORE_INDEX
from unlearn.methods import register
from unlearn.methods.base import Batches, Logs, UnlearnMethod, require_positive
from unlearn.methods.logprobs import answer_logprob, logits
from unlearn.methods.retain import add_retain, with_retain
from unlearn.prompts import Example


def answer_lengths(labels: torch.Tensor) -> torch.Tensor:
    """``|y_i|``: the number of answer tokens (end-of-sequence included) of each sample, at least 1."""
    return (labels[:, 1:] != IGNORE_INDEX).sum(dim=1).clamp(min=1)


def simnpo_loss(logprob: torch.Tensor, lengths: torch.Tensor, beta: float, gamma: float) -> torch.Tensor:
    """``-(2/beta) * mean_i log sigmoid(-(beta/|y_i|) * log p(y_i|x_i) - gamma)``.

    ``logprob`` holds the summed answer-token log-probabilities ``log p(y_i|x_i)`` and ``lengths`` the answer lengths
    ``|y_i|``; no reference model: the length-normalised log-probability itself is pushed down, with margin ``gamma``.
    """
    return -2.0 / beta * F.logsigmoid(-beta / lengths * logprob - gamma).mean()


@dataclass
class SimNPOOptions:
    beta: float = field(default=4.5, metadata={"help": "inverse temperature beta (the SimNPO authors' TOFU: 4.5)"})
    gamma: float = field(default=0.0, metadata={"help": "reward margin gamma (the SimNPO authors' TOFU: 0)"})
    retain_weight: float = field(default=1.0, metadata={"help": "weight of the retain term NLL(r); 0 drops it"})

    def __post_init__(self) -> None:
        require_positive(beta=self.beta)


@register
class SimNPO(UnlearnMethod):
    """``loss = -(2/beta) * mean log sigmoid(-(beta/|y|) * log p(y|x) - gamma) + retain_weight * NLL(r)`` on f.

    ``log p(y|x)`` sums the forget answer's token log-probabilities and ``|y|`` counts its tokens; no reference.
    """

    name = "simnpo"
    description = "SimNPO: reference-free, length-normalised NPO on f (+ NLL(r))"
    options_class = SimNPOOptions

    def examples(self, forget: Example, retain: Example) -> dict[str, Example]:
        return with_retain({"forget": forget}, retain, self.options.retain_weight)

    def loss(self, model: torch.nn.Module, batches: Batches, step: int) -> tuple[torch.Tensor, Logs]:
        labels = batches["forget"]["labels"]
        logprob = answer_logprob(logits(model, batches["forget"]), labels)
        simnpo = simnpo_loss(logprob, answer_lengths(labels), self.options.beta, self.options.gamma)
        logs = {"simnpo": simnpo.item()}
        return add_retain(simnpo, logs, model, batches, self.options.retain_weight), logs
