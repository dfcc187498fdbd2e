"""Answer-token log-probabilities, NLL and KL shared by the methods, and the reference model through PEFT.

``labels`` are the collator's: the token ids, with -100 on every position that is not an answer token. As in any
causal LM, the logits at position t predict the token at t + 1, so labels are shifted by one before use.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from accelerate.utils import extract_model_from_parallel
from transformers import BatchFeature
from transformers.utils import ModelOutput

from unlearn.collate import IGNORE_INDEX


def _shift(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return logits[:, :-1, :].float(), labels[:, 1:]


def token_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-position NLL ``-log p(y_t | y_<t, x)`` (batch, length - 1); 0 where the label is ignored."""
    logits, labels = _shift(logits, labels)
    return F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=IGNORE_INDEX, reduction="none")


def answer_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean answer-token NLL over the batch: ``NLL = -(1/N) sum_{i,t: y_it != -100} log p(y_it | y_i<t, x_i)``.

    N counts the answer tokens of the whole batch (as ``model(**batch).loss`` does).
    """
    count = (labels[:, 1:] != IGNORE_INDEX).sum().clamp(min=1)
    return token_nll(logits, labels).sum() / count


def answer_logprob(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed answer-token log-probability per sample: ``log p(y_i|x_i) = sum_{t: y_it != -100} log p(y_it | ...)``."""
    return -token_nll(logits, labels).sum(dim=1)


def answer_kl(reference_logits: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """KL(ref || model) per answer token: ``(1/N) sum_{answer positions} sum_v p_ref(v) (log p_ref(v) - log p(v))``."""
    logits, labels = _shift(logits, labels)
    reference_logits = reference_logits[:, :-1, :].float()
    mask = labels != IGNORE_INDEX
    log_p = F.log_softmax(logits[mask], dim=-1)
    log_ref = F.log_softmax(reference_logits[mask], dim=-1)
    return F.kl_div(log_p, log_ref, log_target=True, reduction="sum") / mask.sum().clamp(min=1)


def model_inputs(batch: BatchFeature) -> dict[str, torch.Tensor]:
    """The batch without ``labels`` (the methods compute their own losses from the logits)."""
    return {key: value for key, value in batch.items() if key != "labels"}


def outputs(model: torch.nn.Module, batch: BatchFeature, **kwargs: Any) -> ModelOutput:
    """The model's outputs on a batch (pixel values included); ``kwargs`` e.g. ``output_hidden_states=True``."""
    return model(**model_inputs(batch), **kwargs)


@contextmanager
def adapter_disabled(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """The PEFT model (unwrapped from accelerate) with its LoRA adapter disabled and no gradient: the reference model.

    No second copy of the weights: PEFT's ``disable_adapter()`` skips the adapter inside the block only. Leaving it
    makes every active LoRA layer trainable again, so each parameter's ``requires_grad`` is restored afterwards (RMU's
    frozen layers stay frozen, an adapter loaded for inference stays so).
    """
    peft_model = extract_model_from_parallel(model)
    flags = [(parameter, parameter.requires_grad) for parameter in peft_model.parameters()]
    try:
        with peft_model.disable_adapter(), torch.no_grad():
            yield peft_model
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)


def reference_outputs(model: torch.nn.Module, batch: BatchFeature, **kwargs: Any) -> ModelOutput:
    """The outputs of the model before unlearning (see :func:`adapter_disabled`)."""
    with adapter_disabled(model) as reference:
        return reference(**model_inputs(batch), **kwargs)


def logits(model: torch.nn.Module, batch: BatchFeature) -> torch.Tensor:
    """The model's logits on a batch."""
    return outputs(model, batch).logits


def reference_logits(model: torch.nn.Module, batch: BatchFeature) -> torch.Tensor:
    """The reference model's logits on a batch (see :func:`reference_outputs`)."""
    return reference_outputs(model, batch).logits


def reference_kl(model: torch.nn.Module, batch: BatchFeature) -> torch.Tensor:
    """:func:`answer_kl` of the reference (see :func:`reference_outputs`) to the model on ``batch``'s answers."""
    return answer_kl(reference_logits(model, batch), logits(model, batch), batch["labels"])
