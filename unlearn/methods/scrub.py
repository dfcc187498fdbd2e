"""SCRUB (Kurmanji et al. 2023): a student moves away from its teacher on f and stays close to it on r.

The teacher is the model before unlearning (the LoRA adapter disabled). Optimiser steps alternate: each cycle takes
``max_steps_per_cycle`` max steps, then ``min_steps_per_cycle`` min steps, each its own optimiser step (never one
summed loss).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from unlearn.errors import UsageError
from unlearn.methods import register
from unlearn.methods.base import Batches, Logs, UnlearnMethod
from unlearn.methods.logprobs import answer_kl, answer_nll, logits, reference_kl, reference_logits

MAX, MIN = "max", "min"


def scrub_phase(step: int, max_steps: int, min_steps: int) -> str:
    """``max`` for the first ``max_steps`` optimiser steps of each cycle of ``max_steps + min_steps``, else ``min``."""
    return MAX if step % (max_steps + min_steps) < max_steps else MIN


def scrub_max_loss(forget_kl: torch.Tensor) -> torch.Tensor:
    """Max step: ``-KL(teacher || student)`` on the forget answers (minimising it raises the divergence)."""
    return -forget_kl


def scrub_min_loss(
    retain_kl: torch.Tensor, retain_nll: torch.Tensor, kl_weight: float, task_weight: float
) -> torch.Tensor:
    """Min step: ``kl_weight * KL(teacher || student)(r) + task_weight * NLL(r)``."""
    return kl_weight * retain_kl + task_weight * retain_nll


@dataclass
class SCRUBOptions:
    max_steps_per_cycle: int = field(
        default=1, metadata={"help": "max steps (raise KL to the teacher on f) that start each cycle"}
    )
    min_steps_per_cycle: int = field(
        default=1, metadata={"help": "min steps (KL to the teacher + NLL on r) that end each cycle"}
    )
    kl_weight: float = field(default=1.0, metadata={"help": "weight of KL(teacher || student) on r in a min step"})
    task_weight: float = field(default=1.0, metadata={"help": "weight of the task loss NLL(r) in a min step"})

    def __post_init__(self) -> None:
        if min(self.max_steps_per_cycle, self.min_steps_per_cycle) < 0 or not (
            self.max_steps_per_cycle + self.min_steps_per_cycle
        ):
            raise UsageError("--max_steps_per_cycle and --min_steps_per_cycle must be >= 0 and not both 0")


@register
class SCRUB(UnlearnMethod):
    """Per optimiser step, either ``-KL(teacher || student)(f)`` (max) or ``kl_weight * KL(r) + task_weight * NLL(r)``.

    ``KL = (1/N) sum_{answer tokens} sum_v p_teacher(v) (log p_teacher(v) - log p_student(v))``. The phase follows the
    trainer's global optimiser step, so gradient accumulation never mixes the two. The first max step has no
    gradient (the student equals its teacher until a min step moves it), as in SCRUB itself.
    """

    name = "scrub"
    description = "SCRUB: alternating max steps (raise KL to the teacher on f) and min steps (KL + NLL on r)"
    options_class = SCRUBOptions

    def loss(self, model: torch.nn.Module, batches: Batches, step: int) -> tuple[torch.Tensor, Logs]:
        if scrub_phase(step, self.options.max_steps_per_cycle, self.options.min_steps_per_cycle) == MAX:
            forget = batches["forget"]
            kl = reference_kl(model, forget)
            return scrub_max_loss(kl), {"forget_kl": kl.item()}
        retain = batches["retain"]
        student = logits(model, retain)
        kl = answer_kl(reference_logits(model, retain), student, retain["labels"])
        task = answer_nll(student, retain["labels"])
        loss = scrub_min_loss(kl, task, self.options.kl_weight, self.options.task_weight)
        return loss, {"retain_kl": kl.item(), "retain_nll": task.item()}
