"""Every metric against a value computed by hand, and the paper-code mistakes that concern metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eval.metrics import (
    distribution_similarity,
    forget_quality,
    harmonic_mean,
    histogram_edges,
    log_ratios,
    option_accuracy,
    option_probability,
    probability,
    rouge_l_recall,
    truth_ratio,
    truth_ratio_score,
)


def test_probability_is_exp_of_minus_loss():
    np.testing.assert_allclose(probability(np.array([0.0, math.log(2), math.log(4)])), [1.0, 0.5, 0.25])


def test_option_probability_is_the_true_options_share():
    # exp(-l) = 1, 1/2, 1/4 -> the true option's share is 1 / 1.75
    losses = np.array([[0.0, math.log(2), math.log(4)], [math.log(4), 0.0, math.log(4)]])
    np.testing.assert_allclose(option_probability(losses), [1 / 1.75, 0.25 / 1.5])


def test_option_probability_is_stable_for_large_losses():
    # exp(-1000) underflows to 0 in float64; the share exp(-1000) / (exp(-1000) + exp(-1001)) = 1 / (1 + e^-1)
    share = option_probability(np.array([[1000.0, 1001.0]]))
    np.testing.assert_allclose(share, [1 / (1 + math.exp(-1))])


def test_option_accuracy_counts_rows_whose_true_option_has_the_lowest_loss():
    losses = np.array([[1.0, 2.0, 3.0], [2.0, 1.0, 3.0], [1.0, 1.0, 2.0], [0.5, 0.6, 0.7]])
    assert option_accuracy(losses) == pytest.approx(2 / 4)  # rows 0 and 3; a tie (row 2) is not a win


def test_truth_ratio_per_sample_by_hand():
    # R_0 = exp(1 - mean(2, 4)) = e^-2, R_1 = exp(2 - mean(1, 1)) = e
    ratios = truth_ratio(np.array([1.0, 2.0]), np.array([[2.0, 4.0], [1.0, 1.0]]))
    np.testing.assert_allclose(ratios, [math.exp(-2), math.e])


def test_truth_ratio_of_one_sample_ignores_the_other_samples():
    """The paper's code averaged perturbed losses over the whole dataset; here R_i only sees sample i."""
    para, pert = np.array([1.0, 2.0, 0.5]), np.array([[2.0, 4.0], [1.0, 1.0], [3.0, 3.0]])
    before = truth_ratio(para, pert)[0]
    para[1:], pert[1:] = [9.0, 0.1], [[0.2, 7.0], [5.0, 0.0]]
    assert truth_ratio(para, pert)[0] == before
    assert truth_ratio(para[:1], pert[:1])[0] == before


def test_truth_ratio_rejects_misshaped_perturbed_losses():
    with pytest.raises(ValueError, match="perturbed_loss"):
        truth_ratio(np.array([1.0, 2.0]), np.array([1.0, 2.0]))


def test_truth_ratio_score_forget_and_other_sets_by_hand():
    ratios = np.array([0.5, 2.0, 1.0])
    assert truth_ratio_score(ratios, forget=True) == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    assert truth_ratio_score(ratios, forget=False) == pytest.approx((0.5 + 0.0 + 0.0) / 3)


def test_rouge_l_recall_by_hand():
    # reference "the cat was sitting": 4 words; LCS with the prediction is "the cat" -> 2 / 4
    assert rouge_l_recall("the cat sat on the mat", "the cat was sitting") == pytest.approx(0.5)
    assert rouge_l_recall("", "the cat was sitting") == 0.0


def test_rouge_l_recall_stems_words():
    # with stemming runs/running -> run and quickly -> quickli, so all 3 reference words match (without: 2 / 3)
    assert rouge_l_recall("he running quickly", "he runs quickly") == pytest.approx(1.0)


def test_forget_quality_is_the_ks_p_value_by_hand():
    # disjoint samples of 3 and 3: D = 1, exact two-sided p = 2 / C(6, 3) = 0.1
    assert forget_quality(np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0])) == pytest.approx(0.1)
    assert forget_quality(np.array([0.3, 0.7, 1.2]), np.array([0.3, 0.7, 1.2])) == 1.0


def test_forget_quality_compares_distributions_not_aligned_vectors():
    """The paper's code compared index-aligned vectors; order and sample sizes must not matter."""
    rng = np.random.default_rng(0)
    ratios = rng.uniform(0.2, 2.0, size=40)
    reversed_gold = ratios[::-1].copy()
    assert not np.allclose(ratios, reversed_gold)
    assert forget_quality(ratios, reversed_gold) == 1.0
    assert forget_quality(ratios, np.concatenate([ratios, ratios])) == pytest.approx(1.0)
    assert distribution_similarity(ratios, reversed_gold) == pytest.approx(1.0)


def test_distribution_similarity_by_hand():
    # bins on log R: log values (0.1, 0.2, 0.9) and (0.15, 0.85, 0.95), shared edges [0.1, 0.525, 0.95]:
    # p = (2, 1) / 3, q = (1, 2) / 3, m = (1/2, 1/2); JS = KL(p||m) = 2/3 log2(4/3) + 1/3 log2(2/3)
    ratios, gold = np.exp([0.1, 0.2, 0.9]), np.exp([0.15, 0.85, 0.95])
    np.testing.assert_allclose(histogram_edges(ratios, gold, bins=2), [0.1, 0.525, 0.95])
    js = 2 / 3 * math.log2(4 / 3) + 1 / 3 * math.log2(2 / 3)
    assert distribution_similarity(ratios, gold, bins=2) == pytest.approx(1 - js)
    assert distribution_similarity(np.array([0.5, 0.5]), np.array([2.0, 2.0]), bins=2) == pytest.approx(0.0)


def test_distribution_similarity_survives_outliers_and_infinite_ratios():
    ratios, gold = np.array([0.10, 0.11, 0.12, 0.13]), np.array([0.9, 1.0, 1.05, 1.1])
    apart = distribution_similarity(ratios, gold)
    assert apart < 0.1
    # one huge ratio must not squeeze every other sample into one bin and make the samples look alike
    assert distribution_similarity(np.append(ratios, 50.0), gold) < 0.3
    assert np.isfinite(distribution_similarity(np.append(ratios, np.inf), gold))
    assert log_ratios(np.array([0.0, np.inf])).tolist() == pytest.approx([math.log(1e-300), math.log(1e300)])


def test_harmonic_mean_by_hand():
    assert harmonic_mean([1.0, 0.5]) == pytest.approx(2 / 3)
    assert harmonic_mean(np.array([0.5, 0.5, 0.25])) == pytest.approx(3 / 8)
    assert harmonic_mean([0.9, 0.0, 0.8]) == 0.0
    with pytest.raises(ValueError):
        harmonic_mean([0.5, -0.1])
    with pytest.raises(ValueError):
        harmonic_mean([])
