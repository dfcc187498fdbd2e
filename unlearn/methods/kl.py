"""KL minimisation: gradient ascent on the forget set while the retain answers stay close to the reference."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from unlearn.methods import register
from unlearn.methods.base import Batches, Logs, UnlearnMethod
from unlearn.methods.gradient import nll
from unlearn.methods.logprobs import reference_kl


@dataclass
class KLOptions:
    forget_weight: float = field(default=1.0, metadata={"help": "weight of the forget term -NLL(f)"})
    kl_weight: float = field(default=1.0, metadata={"help": "weight of the retain term KL(ref || model)"})


@register
class KLMinimisation(UnlearnMethod):
    """``loss = -forget_weight * NLL(f) + kl_weight * KL(ref || model)`` on r, per answer token.

    ``KL = (1/N) sum_{answer tokens of r} sum_v p_ref(v) (log p_ref(v) - log p(v))``; the reference is the same
    model with its LoRA adapter disabled.
    """

    name = "kl"
    description = "gradient ascent on f, KL to the reference on r: -NLL(f) + KL(ref||model)(r)"
    options_class = KLOptions

    def loss(self, model: torch.nn.Module, batches: Batches, step: int) -> tuple[torch.Tensor, Logs]:
        forget = nll(model, batches, "forget")
        retain = batches["retain"]
        kl = reference_kl(model, retain)
        loss = -self.options.forget_weight * forget + self.options.kl_weight * kl
        return loss, {"forget_nll": forget.item(), "retain_kl": kl.item()}
