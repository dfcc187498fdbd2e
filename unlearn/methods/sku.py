"""SKU (Liu et al. 2024, "Towards Safer Large Language Models through Machine Unlearning"): learn, then negate.

Stage 1 (harmful knowledge acquisition) trains the LoRA adapter to *strengthen* the forget knowledge, with the
paper's three modules (weights e1, e2, e3; the authors' code defaults to 0.5, 1, 1):

- guided distortion: ``NLL(f)``, fine-tuning on the forget answers;
- random disassociation: ``NLL(y_other | x_f)``, each forget prompt with another forget sample's answer (of the
  same kind, drawn per sample by the run's seed), so the adapter takes in the forget knowledge beyond exact pairs;
- preservation divergence: ``-KL(ref || model)(r)``, as the authors' code computes it (``compute_reverse_kl``
  returns the negative KL, added with weight e3): on retain data the stage-1 adapter is pushed *away* from the
  original model. Our reading of the paper's aim: what stage 1 learns is kept apart from the retain knowledge, so
  that its negation does not carry the retain answers along.

Stage 2 (knowledge negation) is task-vector negation (Ilharco et al. 2023): stage 1 learned ``W_0 + Delta W`` and
the saved model is ``W_0 - Delta W``. With LoRA, ``Delta W = (alpha / r) B A``: flipping the sign of B alone
negates it (flipping A too would leave the product unchanged).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from peft.tuners.lora import LoraLayer

from unlearn.methods import register
from unlearn.methods.mismatch import MismatchMethod
from unlearn.prompts import Example


def sku_loss(
    forget_nll: torch.Tensor,
    mismatch_nll: torch.Tensor,
    retain_kl: torch.Tensor,
    forget_weight: float,
    mismatch_weight: float,
    kl_weight: float,
) -> torch.Tensor:
    """Stage 1: ``e1 * NLL(f) + e2 * NLL(y_other | x_f) - e3 * KL(ref || model)(r)``."""
    return forget_weight * forget_nll + mismatch_weight * mismatch_nll - kl_weight * retain_kl


@torch.no_grad()
def negate_lora(model: torch.nn.Module) -> int:
    """Stage 2: flip the sign of every active LoRA B (weight and bias), so each ``Delta W`` becomes ``-Delta W``.

    Returns the number of LoRA layers negated.
    """
    count = 0
    for module in model.modules():
        if not isinstance(module, LoraLayer):
            continue
        for adapter in module.active_adapters:
            if adapter in module.lora_B:
                if module.use_dora.get(adapter):
                    raise ValueError("SKU's negation is the LoRA B sign flip; it does not apply to DoRA adapters")
                for parameter in module.lora_B[adapter].parameters():
                    parameter.neg_()
                count += 1
    return count


@dataclass
class SKUOptions:
    forget_weight: float = field(default=0.5, metadata={"help": "e1, guided distortion: weight of NLL(f)"})
    mismatch_weight: float = field(
        default=1.0, metadata={"help": "e2, random disassociation: weight of NLL(other forget answer | forget prompt)"}
    )
    kl_weight: float = field(
        default=1.0, metadata={"help": "e3, preservation divergence: weight of -KL(ref || model) on r"}
    )


@register
class SKU(MismatchMethod):
    """Stage 1 ``loss = e1 * NLL(f) + e2 * NLL(y_other | x_f) - e3 * KL(ref || model)(r)``; stage 2 ``B <- -B``.

    The saved adapter is the negation of the one trained (see the module docstring); training checkpoints hold the
    stage-1 adapter, so a resumed run negates once, at its end.
    """

    name = "sku"
    description = "SKU: learn f (+ random disassociation, - KL on r), then save the negated adapter"
    options_class = SKUOptions

    def answer_pool(self, forget: Sequence[Example], retain: Sequence[Example]) -> Sequence[Example]:
        return forget

    def combine(self, forget_nll: torch.Tensor, mismatch_nll: torch.Tensor, retain_kl: torch.Tensor) -> torch.Tensor:
        options = self.options
        return sku_loss(
            forget_nll, mismatch_nll, retain_kl, options.forget_weight, options.mismatch_weight, options.kl_weight
        )

    def finish(self, model: torch.nn.Module) -> None:
        if not negate_lora(model):
            raise ValueError("SKU found no active LoRA layer to negate: the saved adapter would be the stage-1 one")
