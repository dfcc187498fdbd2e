"""Membership-inference scores, their AUC and the relearning recovery, against hand-computed values."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

from eval.membership import (
    ATTACKS,
    attack_aucs,
    attack_scores,
    loss_score,
    membership_auc,
    min_k_plus_plus_score,
    min_k_score,
    recovery,
    relative_gap,
    vocabulary_moments,
    zlib_score,
)

LOGPROBS = np.array([-0.5, -2.0, -0.1, -4.0, -1.4])  # mean -1.6


def test_loss_and_zlib_scores():
    assert loss_score(LOGPROBS) == pytest.approx(-1.6)
    text = "aaaaaaaaaa"
    assert zlib_score(LOGPROBS, text) == pytest.approx(-1.6 / len(zlib.compress(text.encode())))


def test_min_k_takes_the_lowest_share_of_tokens():
    assert min_k_score(LOGPROBS, k=0.2) == pytest.approx(-4.0)  # ceil(0.2 x 5) = 1 token
    assert min_k_score(LOGPROBS, k=0.5) == pytest.approx((-4.0 - 2.0 - 1.4) / 3)  # ceil(2.5) = 3 tokens
    assert min_k_score(LOGPROBS, k=1.0) == pytest.approx(-1.6)
    with pytest.raises(ValueError, match="fraction"):
        min_k_score(LOGPROBS, k=0)


def test_min_k_plus_plus_normalises_each_token_first():
    mu, sigma = np.array([-1.0, -1.0, -1.0, -2.0, -1.0]), np.array([1.0, 2.0, 1.0, 4.0, 0.5])
    # (l - mu) / sigma = [0.5, -0.5, 0.9, -0.5, -0.8]; the lowest 2 (k=0.4): -0.8 and -0.5
    assert min_k_plus_plus_score(LOGPROBS, mu, sigma, k=0.4) == pytest.approx(-0.65)


def test_vocabulary_moments_of_a_uniform_and_a_two_point_distribution():
    mu, sigma = vocabulary_moments(np.array([[0.0, 0.0, 0.0, 0.0], [math.log(3.0), 0.0, -1e9, -1e9]]))
    assert mu[0] == pytest.approx(math.log(0.25)) and sigma[0] == pytest.approx(0.0, abs=1e-12)
    # p = (3/4, 1/4): mu = 3/4 log 3/4 + 1/4 log 1/4; sigma^2 = 3/4 (log 3/4 - mu)^2 + 1/4 (log 1/4 - mu)^2
    expected_mu = 0.75 * math.log(0.75) + 0.25 * math.log(0.25)
    expected_sigma = math.sqrt(0.75 * (math.log(0.75) - expected_mu) ** 2 + 0.25 * (math.log(0.25) - expected_mu) ** 2)
    assert mu[1] == pytest.approx(expected_mu) and sigma[1] == pytest.approx(expected_sigma)


def test_auc_counts_pairs_and_half_ties():
    # members [3, 2, 1] against non-members [1, 2]: 6 pairs; wins 3>1, 3>2, 2>1; ties 2=2, 1=1 -> (3 + 2/2) / 6
    assert membership_auc([3, 2, 1], [1, 2]) == pytest.approx(4 / 6)
    assert membership_auc([5, 6], [1, 2]) == 1.0 and membership_auc([1, 2], [5, 6]) == 0.0
    with pytest.raises(ValueError, match="each side"):
        membership_auc([], [1.0])


def test_relative_gap_and_recovery():
    assert relative_gap(0.6, 0.8) == pytest.approx(-0.25)
    assert relative_gap(0.6, 0.0) is None
    assert recovery(relearned=0.5, unlearned=0.1, vanilla=0.9) == pytest.approx(0.5)
    assert recovery(relearned=0.9, unlearned=0.1, vanilla=0.9) == pytest.approx(1.0)
    assert recovery(relearned=0.3, unlearned=0.4, vanilla=0.4) is None, "nothing was removed: undefined, not a number"
    assert recovery(relearned=0.5, unlearned=0.4, vanilla=0.4 + 5e-8) is None, "a rounding-sized gap is no gap"
    assert recovery(relearned=0.4, unlearned=0.4, vanilla=0.4 + 1e-5) == pytest.approx(0.0)


def test_attack_scores_hold_every_attack_of_one_answer():
    mu, sigma = np.zeros(5), np.ones(5)
    scores = attack_scores(LOGPROBS, mu, sigma, "a b", k=0.2)
    assert list(scores) == list(ATTACKS)
    assert scores["loss"] == pytest.approx(-1.6) and scores["min_k"] == pytest.approx(-4.0)
    assert scores["min_k_plus_plus"] == pytest.approx(-4.0), "mu 0 and sigma 1 leave the log-probabilities as they are"
    assert scores["zlib"] == pytest.approx(-1.6 / len(zlib.compress(b"a b")))


def test_attack_aucs_separate_members_per_attack():
    members = [dict.fromkeys(ATTACKS, 2.0), dict.fromkeys(ATTACKS, 3.0)]
    non_members = [dict.fromkeys(ATTACKS, 1.0), {**dict.fromkeys(ATTACKS, 1.0), "loss": 2.5}]
    aucs = attack_aucs(members, non_members)
    # loss: pairs (2,1) win, (2,2.5) loss, (3,1) win, (3,2.5) win -> 3/4; the others separate fully
    assert aucs == {"loss": 0.75, "zlib": 1.0, "min_k": 1.0, "min_k_plus_plus": 1.0}
