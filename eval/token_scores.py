"""Per-token log-probabilities of answers, with the moments of each next-token distribution, for the
membership-inference scores of :mod:`eval.membership`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from peft import PeftModel
from transformers import PreTrainedModel, ProcessorMixin

from eval.membership import attack_scores
from eval.scoring import label_positions
from unlearn.collate import training_batch
from unlearn.prompts import Example


@dataclass(frozen=True)
class TokenScores:
    """One answer's labelled tokens: ``logprobs[t] = log p(y_t | y_<t, prompt)``, and ``mu[t]``, ``sigma[t]`` the
    mean and standard deviation of ``log p(z | y_<t, prompt)`` under ``z ~ p(. | y_<t, prompt)``."""

    logprobs: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray


@torch.no_grad()
def token_scores(
    model: PreTrainedModel | PeftModel, processor: ProcessorMixin, examples: list[Example]
) -> list[TokenScores]:
    """:class:`TokenScores` of each example's answer (the tokens ``training_batch`` labels), in one forward pass.

    ``mean(logprobs)`` is minus the loss :func:`eval.scoring.answer_losses` gives the same example.
    """
    batch = training_batch(processor, examples).to(model.device, dtype=model.dtype)
    labels = batch.pop("labels")
    predicts, targets = label_positions(labels)
    log_p = model(**batch, logits_to_keep=predicts, use_cache=False).logits.float().log_softmax(dim=-1)
    chosen = log_p.gather(1, targets[:, None])[:, 0]
    p = log_p.exp()
    mu = (p * log_p).sum(dim=-1)
    sigma = (p * (log_p - mu[:, None]) ** 2).sum(dim=-1).sqrt()
    counts = predicts.sum(dim=1).tolist()  # the kept positions come row by row
    parts = (values.cpu().double().numpy() for values in (chosen, mu, sigma))
    per_row = [np.split(values, np.cumsum(counts)[:-1]) for values in parts]
    return [TokenScores(*row) for row in zip(*per_row, strict=True)]


def answer_attack_scores(
    model: PreTrainedModel | PeftModel,
    processor: ProcessorMixin,
    examples: list[Example],
    k: float = 0.2,
    batch_size: int = 8,
) -> list[dict[str, float]]:
    """:func:`eval.membership.attack_scores` of every example's answer, ``batch_size`` examples per pass."""
    out = []
    for start in range(0, len(examples), batch_size):
        batch = examples[start : start + batch_size]
        for example, scores in zip(batch, token_scores(model, processor, batch), strict=True):
            out.append(attack_scores(scores.logprobs, scores.mu, scores.sigma, example.answer, k))
    return out
