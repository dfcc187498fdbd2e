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
    log_truth_ratio,
    option_accuracy,
    option_probability,
    probability,
    rouge_l_recall,
    truth_ratio,
    truth_ratio_score,
    truth_ratio_score_of_logs,
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
    # R_0 = exp(mean(2, 4) - 1) = e^2, R_1 = exp(mean(1, 1) - 2) = e^-1 (R > 1: the true answer is likelier)
    ratios = truth_ratio(np.array([1.0, 2.0]), np.array([[2.0, 4.0], [1.0, 1.0]]))
    np.testing.assert_allclose(ratios, [math.exp(2), math.exp(-1)])


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
    ratios = np.array([0.5, 2.0, 1.0, 4.0])
    # forget: min(R, 1/R) = 0.5, 0.5, 1, 0.25; others: max(0, 1 - 1/R) = 0 (1 - 2 < 0), 0.5, 0, 0.75
    assert truth_ratio_score(ratios, forget=True) == pytest.approx((0.5 + 0.5 + 1.0 + 0.25) / 4)
    assert truth_ratio_score(ratios, forget=False) == pytest.approx((0.0 + 0.5 + 0.0 + 0.75) / 4)
    # an infinite ratio: the true answer infinitely likelier, fully told apart (0 on forget, 1 elsewhere)
    assert truth_ratio_score(np.array([np.inf]), forget=True) == 0.0
    assert truth_ratio_score(np.array([np.inf]), forget=False) == 1.0


def test_log_truth_ratio_by_hand_stays_finite_where_the_ratio_overflows():
    # log R_0 = mean(2, 4) - 1 = 2, log R_1 = mean(1, 1) - 2 = -1, log R_2 = mean(800, 802) - 1 = 800
    para, pert = np.array([1.0, 2.0, 1.0]), np.array([[2.0, 4.0], [1.0, 1.0], [800.0, 802.0]])
    np.testing.assert_allclose(log_truth_ratio(para, pert), [2.0, -1.0, 800.0])
    with np.errstate(over="ignore"):
        assert truth_ratio(para, pert)[2] == np.inf, "exp(800) is beyond float64 (exp(709.78) is its largest)"
    with pytest.raises(ValueError, match="perturbed_loss"):
        log_truth_ratio(np.array([1.0, 2.0]), np.array([1.0, 2.0]))


def test_truth_ratio_score_of_logs_equals_the_ratio_form_and_holds_where_it_overflows():
    ratios = np.array([0.5, 2.0, 1.0, 4.0])
    for forget in (True, False):
        assert truth_ratio_score_of_logs(np.log(ratios), forget) == pytest.approx(truth_ratio_score(ratios, forget))
    # log R = 800, ln 2, -ln 4: forget exp(-|log R|) = (exp(-800) = 0) + 1/2 + 1/4; elsewhere max(0, 1 - 1/R) =
    # (1 - exp(-800) = 1) + 1/2 + 0
    logs = np.array([800.0, math.log(2), -math.log(4)])
    assert truth_ratio_score_of_logs(logs, forget=True) == pytest.approx(0.75 / 3)
    assert truth_ratio_score_of_logs(logs, forget=False) == pytest.approx(1.5 / 3)
    # the limits: log R = +inf as R = inf (0 on forget, 1 elsewhere), log R = -inf as R = 0 (0 and 0)
    assert truth_ratio_score_of_logs(np.array([np.inf, -np.inf]), forget=True) == 0.0
    assert truth_ratio_score_of_logs(np.array([np.inf, -np.inf]), forget=False) == 0.5
    assert math.isnan(truth_ratio_score_of_logs(np.array([np.nan, 0.0]), forget=True))


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
    # log R of gold (0.15, 0.85, 0.95): its 0, 1/2, 1 quantiles are the inner edges [0.15, 0.85, 0.95], plus the
    # overflow bins (-inf, 0.15) and (0.95, inf). Model log R (0.1, 0.2, 0.9) -> p = (1, 1, 1, 0) / 3 (0.1 overflows
    # below); gold -> q = (0, 1, 2, 0) / 3 (0.95 is in the last inner bin); m = (1/6, 1/3, 1/2, 0).
    ratios, gold = np.exp([0.1, 0.2, 0.9]), np.exp([0.15, 0.85, 0.95])
    np.testing.assert_allclose(histogram_edges(ratios, gold, bins=2), [0.15, 0.85, 0.95])
    kl_p = 1 / 3 * math.log2(2) + 1 / 3 * math.log2(1) + 1 / 3 * math.log2(2 / 3)
    kl_q = 1 / 3 * math.log2(1) + 2 / 3 * math.log2(4 / 3)
    assert distribution_similarity(ratios, gold, bins=2) == pytest.approx(1 - (kl_p + kl_q) / 2)
    assert distribution_similarity(np.array([0.5, 0.5]), np.array([2.0, 2.0]), bins=2) == pytest.approx(0.0)


def test_one_outlier_cannot_make_disjoint_samples_look_alike():
    """Ratios 0.10-0.13 against gold's 0.9-1.1: disjoint. With bins spanning both samples one ratio of e^60 squeezed
    every other value into one bin (1-JS 0.892); with gold's quantile bins and overflow bins it stays disjoint."""
    ratios, gold = np.linspace(0.10, 0.13, 10), np.linspace(0.9, 1.1, 10)
    assert distribution_similarity(ratios, gold) <= 0.1
    for outlier in (math.exp(60), np.inf, 0.0):
        assert distribution_similarity(np.append(ratios, outlier), gold) <= 0.1
    assert distribution_similarity(np.append(gold, math.exp(60)), gold) > 0.9, "one outlier moves one count only"
    assert log_ratios(np.array([0.0, np.inf])).tolist() == pytest.approx([math.log(1e-300), math.log(1e300)])


def test_harmonic_mean_by_hand():
    assert harmonic_mean([1.0, 0.5]) == pytest.approx(2 / 3)
    assert harmonic_mean(np.array([0.5, 0.5, 0.25])) == pytest.approx(3 / 8)
    assert harmonic_mean([0.9, 0.0, 0.8]) == 0.0
    with pytest.raises(ValueError):
        harmonic_mean([0.5, -0.1])
    with pytest.raises(ValueError):
        harmonic_mean([])
