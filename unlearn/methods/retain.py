"""The optional retain term ``retain_weight * NLL(r)`` that IDK, DPO and SimNPO add to their forget terms."""

from __future__ import annotations

import torch

from unlearn.methods.base import Batches, Logs
from unlearn.methods.gradient import nll
from unlearn.prompts import Example


def with_retain(examples: dict[str, Example], retain: Example, weight: float) -> dict[str, Example]:
    """``examples`` plus the retain example, unless its weight is 0 (then no retain batch is built at all)."""
    return {**examples, "retain": retain} if weight else examples


def add_retain(loss: torch.Tensor, logs: Logs, model: torch.nn.Module, batches: Batches, weight: float) -> torch.Tensor:
    """``loss + weight * NLL(r)`` when the batches hold a retain batch (``retain_nll`` logged), else ``loss``."""
    if "retain" not in batches:
        return loss
    retain = nll(model, batches, "retain")
    logs["retain_nll"] = retain.item()
    return loss + weight * retain
