"""The CLEAR / TOFU metrics as pure functions of per-sample arrays.

``loss`` is always an answer's mean token negative log-likelihood (answer tokens and the end-of-sequence token), so
``exp(-loss)`` is the answer's length-normalised probability.
"""

from __future__ import annotations

import numpy as np
from rouge_score import rouge_scorer
from scipy.spatial.distance import jensenshannon
from scipy.special import softmax
from scipy.stats import ks_2samp

_ROUGE = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def probability(loss: np.ndarray) -> np.ndarray:
    """Length-normalised answer probability ``P = exp(-loss)``, per sample."""
    return np.exp(-np.asarray(loss, dtype=np.float64))


def option_probability(option_losses: np.ndarray) -> np.ndarray:
    """The true option's share ``exp(-l_0) / sum_j exp(-l_j)`` per row of ``option_losses [N, 1+K]`` (column 0 true).

    Computed as ``softmax(-l)[:, 0]``, which subtracts the row maximum first, so large losses do not underflow.
    """
    losses = np.asarray(option_losses, dtype=np.float64)
    return softmax(-losses, axis=1)[:, 0]


def option_accuracy(option_losses: np.ndarray) -> float:
    """Share of rows of ``option_losses [N, 1+K]`` whose true option (column 0) has the lowest loss.

    ``mean_i [l_i0 < min_{j>0} l_ij]``: a tie with a wrong option counts as wrong.
    """
    losses = np.asarray(option_losses, dtype=np.float64)
    return float(np.mean(losses[:, 0] < losses[:, 1:].min(axis=1)))


def truth_ratio(paraphrased_loss: np.ndarray, perturbed_loss: np.ndarray) -> np.ndarray:
    """Per-sample truth ratio ``R_i = exp(para_i - mean_k pert_ik)``.

    For ``paraphrased_loss [N]`` and ``perturbed_loss [N, K]``: the geometric mean of the perturbed answers'
    normalised probabilities ``exp(-pert_ik)`` over the paraphrased answer's ``exp(-para_i)``. Each sample uses only
    its own perturbed answers (never an average over the dataset). ``R < 1``: the paraphrased (true) answer is the
    more likely one.
    """
    para = np.asarray(paraphrased_loss, dtype=np.float64)
    pert = np.asarray(perturbed_loss, dtype=np.float64)
    if pert.ndim != 2 or pert.shape[0] != para.shape[0]:
        raise ValueError(f"perturbed_loss must be [N, K] with N = {para.shape[0]}, got shape {pert.shape}")
    return np.exp(para - pert.mean(axis=1))


def truth_ratio_score(ratios: np.ndarray, forget: bool) -> float:
    """The truth-ratio figure of a task: forget sets ``mean(min(R, 1/R))``, all others ``mean(max(0, 1 - R))``.

    Both lie in [0, 1]. On a forget set 1 means the model cannot tell true from perturbed answers; elsewhere higher
    means the true answer is clearly preferred.
    """
    ratios = np.asarray(ratios, dtype=np.float64)
    if forget:
        return float(np.mean(np.minimum(ratios, 1.0 / ratios)))
    return float(np.mean(np.maximum(0.0, 1.0 - ratios)))


def rouge_l_recall(prediction: str, reference: str) -> float:
    """ROUGE-L recall ``LCS(prediction, reference) / len(reference)`` in stemmed words (``rouge_score``)."""
    return float(_ROUGE.score(reference, prediction)["rougeL"].recall)


def forget_quality(ratios: np.ndarray, gold_ratios: np.ndarray) -> float:
    """Forget quality: the p-value of the two-sample Kolmogorov-Smirnov test between two truth-ratio samples.

    ``scipy.stats.ks_2samp(ratios, gold_ratios).pvalue`` (default method): the statistic is
    ``D = sup_x |F_model(x) - F_gold(x)|`` over the empirical distribution functions, so the two samples are
    compared as distributions (their order and sizes may differ). 1.0 for identical samples; small values mean the
    model's truth ratios are distinguishable from the gold model's.
    """
    return float(ks_2samp(np.asarray(ratios, dtype=np.float64), np.asarray(gold_ratios, dtype=np.float64)).pvalue)


def log_ratios(ratios: np.ndarray) -> np.ndarray:
    """``log R``, with ``R`` clipped to ``[1e-300, 1e300]`` so that a 0 or infinite ratio stays finite."""
    return np.log(np.clip(np.asarray(ratios, dtype=np.float64), 1e-300, 1e300))


def histogram_edges(ratios: np.ndarray, gold_ratios: np.ndarray, bins: int = 20) -> np.ndarray:
    """``bins + 1`` equal-width edges on the ``log R`` scale spanning both samples (the shared bins).

    Truth ratios are heavy-tailed (``R = exp(loss difference)``): on a linear scale one outlier would squeeze every
    other sample into the first bin, so the bins are laid on ``log R``, where a ratio and its inverse are symmetric.
    """
    return np.histogram_bin_edges(np.concatenate([log_ratios(ratios), log_ratios(gold_ratios)]), bins=bins)


def distribution_similarity(ratios: np.ndarray, gold_ratios: np.ndarray, bins: int = 20) -> float:
    """``1 - JS(p, q)``: one minus the Jensen-Shannon divergence (base 2) of two truth-ratio histograms.

    ``p`` and ``q`` are the normalised histograms of ``log R`` of the two samples on ``histogram_edges`` (shared
    bins), so only the distributions are compared, never index-aligned values. ``JS = (KL(p||m) + KL(q||m)) / 2``
    with ``m = (p + q) / 2``, in [0, 1] (scipy's ``jensenshannon`` returns its square root). 1 for equal histograms.
    """
    edges = histogram_edges(ratios, gold_ratios, bins)
    p, _ = np.histogram(log_ratios(ratios), bins=edges)
    q, _ = np.histogram(log_ratios(gold_ratios), bins=edges)
    return float(1.0 - jensenshannon(p, q, base=2) ** 2)


def harmonic_mean(values: np.ndarray | list[float]) -> float:
    """``n / sum_i (1 / v_i)`` of non-negative figures; 0 when any value is 0 (a model that fails one figure)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0 or np.any(values < 0):
        raise ValueError(f"harmonic_mean needs at least one non-negative value, got {values.tolist()}")
    if np.any(values == 0):
        return 0.0
    return float(values.size / np.sum(1.0 / values))
