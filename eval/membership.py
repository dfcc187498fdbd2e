"""Membership-inference scores and the relearning recovery, as pure functions (issue 15's probes build on them).

Every score is a *membership score*: higher means "looks more like training data". For one answer of ``T`` tokens
with log-probabilities ``l_t = log p(y_t | y_<t, prompt)``:

- loss attack (Yeom et al., 2018): ``-mean_t(-l_t)``, the negative mean NLL;
- zlib (Carlini et al., 2021): ``-mean_t(-l_t) / Z``, with ``Z`` the length in bytes of the zlib-compressed answer
  text (its entropy, so a repetitive, easy answer is not mistaken for a memorised one);
- min-k% (Shi et al., 2024): the mean of the ``ceil(k * T)`` lowest ``l_t``;
- min-k%++ (Zhang et al., 2025): the mean of the ``ceil(k * T)`` lowest ``(l_t - mu_t) / sigma_t``, where ``mu_t``
  and ``sigma_t`` are the mean and standard deviation of ``log p(z | y_<t)`` over the vocabulary under
  ``z ~ p(. | y_<t)``.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
from scipy.stats import mannwhitneyu


def loss_score(token_logprobs: np.ndarray) -> float:
    """``mean_t l_t``: the negative mean NLL of the answer tokens."""
    return float(np.mean(np.asarray(token_logprobs, dtype=np.float64)))


def zlib_score(token_logprobs: np.ndarray, text: str) -> float:
    """``mean_t l_t / Z`` with ``Z = len(zlib.compress(text.encode("utf-8")))`` bytes."""
    return loss_score(token_logprobs) / len(zlib.compress(text.encode("utf-8")))


def _lowest_mean(values: np.ndarray, k: float) -> float:
    if not 0 < k <= 1:
        raise ValueError(f"k is a fraction of the tokens in (0, 1], not {k}")
    values = np.sort(np.asarray(values, dtype=np.float64))
    return float(np.mean(values[: math.ceil(k * len(values))]))


def min_k_score(token_logprobs: np.ndarray, k: float = 0.2) -> float:
    """The mean of the ``ceil(k * T)`` lowest token log-probabilities."""
    return _lowest_mean(token_logprobs, k)


def min_k_plus_plus_score(token_logprobs: np.ndarray, mu: np.ndarray, sigma: np.ndarray, k: float = 0.2) -> float:
    """The mean of the ``ceil(k * T)`` lowest ``(l_t - mu_t) / sigma_t`` (see the module docstring)."""
    logprobs, mu, sigma = (np.asarray(a, dtype=np.float64) for a in (token_logprobs, mu, sigma))
    return _lowest_mean((logprobs - mu) / sigma, k)


def vocabulary_moments(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``mu_t = sum_z p_z log p_z`` and ``sigma_t = sqrt(sum_z p_z (log p_z - mu_t)^2)`` for each row of logits
    ``[T, V]`` (the next-token distributions that min-k%++ normalises by)."""
    logits = np.asarray(logits, dtype=np.float64)
    log_p = logits - logits.max(axis=1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    p = np.exp(log_p)
    mu = (p * log_p).sum(axis=1)
    return mu, np.sqrt((p * (log_p - mu[:, None]) ** 2).sum(axis=1))


def membership_auc(members: np.ndarray, non_members: np.ndarray) -> float:
    """``P(s_member > s_non_member) + P(tie) / 2`` over all pairs: the area under the ROC curve of telling the two
    apart by the score (Mann-Whitney U / (n_1 n_2)); 0.5 is chance."""
    members, non_members = np.asarray(members, dtype=np.float64), np.asarray(non_members, dtype=np.float64)
    if not len(members) or not len(non_members):
        raise ValueError("an AUC needs at least one score on each side")
    return float(mannwhitneyu(members, non_members).statistic / (len(members) * len(non_members)))


def relative_gap(value: float, gold: float) -> float | None:
    """``(value - gold) / gold``: how far a model's AUC is from gold's; None when gold's is 0."""
    return None if gold == 0 else (value - gold) / gold


# Figures computed in float32 by two routes (an adapter that changes nothing, and no adapter) agree to about 1e-7;
# a gap below this is no gap, and dividing by it would turn rounding into a recovery of millions.
MIN_GAP = 1e-6


def recovery(relearned: float, unlearned: float, vanilla: float) -> float | None:
    """``(relearned - unlearned) / (vanilla - unlearned)``: the share of what unlearning removed that relearning
    brought back (1: all of it); None, not a number, when unlearning removed nothing
    (``|vanilla - unlearned| < MIN_GAP``)."""
    gap = vanilla - unlearned
    return None if abs(gap) < MIN_GAP else (relearned - unlearned) / gap


ATTACKS = ("loss", "zlib", "min_k", "min_k_plus_plus")


def attack_scores(
    token_logprobs: np.ndarray, mu: np.ndarray, sigma: np.ndarray, text: str, k: float = 0.2
) -> dict[str, float]:
    """Every attack's membership score of one answer (``text`` is the answer, for zlib)."""
    return {
        "loss": loss_score(token_logprobs),
        "zlib": zlib_score(token_logprobs, text),
        "min_k": min_k_score(token_logprobs, k),
        "min_k_plus_plus": min_k_plus_plus_score(token_logprobs, mu, sigma, k),
    }


def attack_aucs(members: list[dict[str, float]], non_members: list[dict[str, float]]) -> dict[str, float]:
    """Each attack's :func:`membership_auc` of ``members`` against ``non_members`` (lists of :func:`attack_scores`)."""
    return {
        attack: membership_auc([s[attack] for s in members], [s[attack] for s in non_members]) for attack in ATTACKS
    }
