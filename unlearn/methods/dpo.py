"""DPO towards refusals (Rafailov et al. 2023): prefer a refusal over the forget answer, plus optional retain NLL."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from unlearn.methods import register
from unlearn.methods.base import Batches, Logs, UnlearnMethod, require_positive
from unlearn.methods.logprobs import answer_logprob, logits, reference_logits
from unlearn.methods.retain import add_retain, with_retain
from unlearn.prompts import Example, refusal_example


def dpo_loss(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    reference_chosen: torch.Tensor,
    reference_rejected: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """``-mean_i log sigmoid(beta * ((log p(c_i) - log p_ref(c_i)) - (log p(r_i) - log p_ref(r_i))))``.

    Each argument holds one summed answer log-probability per sample: ``c`` the chosen answer (a refusal), ``r`` the
    rejected one (the forget answer), under the model and under the reference.
    """
    margin = (chosen - reference_chosen) - (rejected - reference_rejected)
    return -F.logsigmoid(beta * margin).mean()


def logprobs(model: torch.nn.Module, batches: Batches, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed answer log-probabilities of batch ``name`` under the model and under the reference (adapter off)."""
    batch = batches[name]
    labels = batch["labels"]
    return answer_logprob(logits(model, batch), labels), answer_logprob(reference_logits(model, batch), labels)


@dataclass
class DPOOptions:
    beta: float = field(default=0.1, metadata={"help": "DPO inverse temperature beta (TOFU's IDK-DPO: 0.1)"})
    retain_weight: float = field(default=1.0, metadata={"help": "weight of the retain term NLL(r); 0 drops it"})

    def __post_init__(self) -> None:
        require_positive(beta=self.beta)


@register
class DPO(UnlearnMethod):
    """``loss = DPO(chosen = refusal, rejected = forget answer) + retain_weight * NLL(r)``.

    ``DPO = -mean log sigmoid(beta * ((log p(c) - log p_ref(c)) - (log p(r) - log p_ref(r))))`` with summed
    answer-token log-probabilities; the reference is the same model with its LoRA adapter disabled. The loss
    returned is this preference loss (plus the retain term), nothing else.
    """

    name = "dpo"
    description = "DPO preferring a refusal over the forget answer, reference = adapter off (+ NLL(r))"
    options_class = DPOOptions

    def examples(self, forget: Example, retain: Example) -> dict[str, Example]:
        pair = {"refusal": refusal_example(forget), "forget": forget}
        return with_retain(pair, retain, self.options.retain_weight)

    def loss(self, model: torch.nn.Module, batches: Batches, step: int) -> tuple[torch.Tensor, Logs]:
        chosen, reference_chosen = logprobs(model, batches, "refusal")
        rejected, reference_rejected = logprobs(model, batches, "forget")
        preference = dpo_loss(chosen, rejected, reference_chosen, reference_rejected, self.options.beta)
        logs = {"dpo": preference.item(), "refusal_logp": chosen.mean().item(), "forget_logp": rejected.mean().item()}
        return add_retain(preference, logs, model, batches, self.options.retain_weight), logs
