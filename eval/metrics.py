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
    """Per-sample truth ratio ``R_i = exp(mean_k pert_ik - para_i)`` (the CLEAR paper's orientation).

    For ``paraphrased_loss [N]`` and ``perturbed_loss [N, K]``: the paraphrased (true) answer's normalised
    probability ``exp(-para_i)`` over the geometric mean of the perturbed answers' ``exp(-pert_ik)``. Each sample
    uses only its own perturbed answers (never an average over the dataset, as CLEAR's code does). ``R > 1``: the
    true answer is the more likely one. For option tasks the "paraphrase" is the true answer itself.
    """
    para = np.asarray(paraphrased_loss, dtype=np.float64)
    pert = np.asarray(perturbed_loss, dtype=np.float64)
    if pert.ndim != 2 or pert.shape[0] != para.shape[0]:
        raise ValueError(f"perturbed_loss must be [N, K] with N = {para.shape[0]}, got shape {pert.shape}")
    return np.exp(pert.mean(axis=1) - para)


def log_truth_ratio(paraphrased_loss: np.ndarray, perturbed_loss: np.ndarray) -> np.ndarray:
    """Per-sample ``log R_i = mean_k pert_ik - para_i``: :func:`truth_ratio`'s exponent, finite whenever the losses
    are, even where ``R_i`` itself overflows to ``inf`` (``log R > 709.78``) or underflows to 0 (the per-sample
    records keep both). Same shapes and check as :func:`truth_ratio`."""
    para = np.asarray(paraphrased_loss, dtype=np.float64)
    pert = np.asarray(perturbed_loss, dtype=np.float64)
    if pert.ndim != 2 or pert.shape[0] != para.shape[0]:
        raise ValueError(f"perturbed_loss must be [N, K] with N = {para.shape[0]}, got shape {pert.shape}")
    return pert.mean(axis=1) - para


def truth_ratio_score_of_logs(log_ratios: np.ndarray, forget: bool) -> float:
    """:func:`truth_ratio_score` from ``log R`` (:func:`log_truth_ratio`), which stays exact where ``R`` overflows.

    ``min(R, 1/R) = exp(-|log R|)`` and ``max(0, 1 - 1/R) = max(0, -expm1(-log R))``, so the forget figure is
    ``mean_i exp(-|log R_i|)`` and the other one ``mean_i max(0, -expm1(-log R_i))``; ``log R = +-inf`` gives the
    limits of the ratio form (0 on forget sets; 1 for ``+inf`` and 0 for ``-inf`` elsewhere), NaN stays NaN.
    """
    logs = np.asarray(log_ratios, dtype=np.float64)
    if forget:
        return float(np.mean(np.exp(-np.abs(logs))))
    with np.errstate(over="ignore"):  # log R = -inf: -expm1(inf) = -inf, clipped to 0 below
        return float(np.mean(np.maximum(0.0, -np.expm1(-logs))))


def truth_ratio_score(ratios: np.ndarray, forget: bool) -> float:
    """The truth-ratio figure of a task: forget sets ``mean(min(R, 1/R))``, all others ``mean(max(0, 1 - 1/R))``.

    Both lie in [0, 1]. On a forget set 1 means the model cannot tell true from perturbed answers (``R = 1``);
    elsewhere higher means the true answer is clearly preferred (``R`` well above 1).
    """
    ratios = np.asarray(ratios, dtype=np.float64)
    with np.errstate(divide="ignore"):
        inverse = 1.0 / ratios
    if forget:
        return float(np.mean(np.minimum(ratios, inverse)))
    return float(np.mean(np.maximum(0.0, 1.0 - inverse)))


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
    """The inner bin edges on the ``log R`` scale: the ``0, 1/bins, ..., 1`` quantiles of the gold sample's ``log R``
    (repeated edges merged).

    ``distribution_similarity`` adds two overflow bins, below the first and above the last edge, so a model's values
    outside gold's range (infinite ratios included) fall there instead of stretching the bins: bins spanning both
    samples would let one extreme value squeeze every other value into one bin. ``ratios`` is accepted for the
    signature's sake and does not move the edges.
    """
    del ratios  # the edges depend on gold alone
    return np.unique(np.quantile(log_ratios(gold_ratios), np.linspace(0.0, 1.0, bins + 1)))


def binned(log_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of ``log_values`` in ``[-inf, e_0), [e_0, e_1), ..., [e_{m-1}, e_m], (e_m, inf]``: the inner bins
    between the overflow bins. With a single edge (a gold sample of one value) the one inner bin is ``[e_0, e_0]``."""
    values = np.asarray(log_values, dtype=np.float64)
    inner = max(len(edges) - 1, 1)
    index = np.searchsorted(edges, values, side="right")  # 0 below e_0, i in [e_{i-1}, e_i), m + 1 from e_m on
    index = np.where(values > edges[-1], inner + 1, np.minimum(index, inner))  # e_m itself is in the last inner bin
    return np.bincount(index, minlength=inner + 2)


def distribution_similarity(ratios: np.ndarray, gold_ratios: np.ndarray, bins: int = 20) -> float:
    """``1 - JS(p, q)``: one minus the Jensen-Shannon divergence (base 2) of two truth-ratio histograms.

    ``p`` and ``q`` are the normalised counts of ``log R`` of the two samples in the bins of ``histogram_edges``
    (gold's quantiles) plus two overflow bins (:func:`binned`), so only the distributions are compared, never
    index-aligned values, and one outlier only moves one count. ``JS = (KL(p||m) + KL(q||m)) / 2`` with
    ``m = (p + q) / 2``, in [0, 1] (scipy's ``jensenshannon`` returns its square root). 1 for equal histograms, 0 for
    disjoint ones.
    """
    edges = histogram_edges(ratios, gold_ratios, bins)
    p = binned(log_ratios(ratios), edges)
    q = binned(log_ratios(gold_ratios), edges)
    return float(1.0 - jensenshannon(p, q, base=2) ** 2)


def harmonic_mean(values: np.ndarray | list[float]) -> float:
    """``n / sum_i (1 / v_i)`` of non-negative figures; 0 when any value is 0 (a model that fails one figure)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0 or np.any(values < 0):
        raise ValueError(f"harmonic_mean needs at least one non-negative value, got {values.tolist()}")
    if np.any(values == 0):
        return 0.0
    return float(values.size / np.sum(1.0 / values))
