"""Per-token scores agree with the answer losses and with the next-token moments computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from eval.membership import min_k_score, vocabulary_moments
from eval.scoring import answer_losses
from eval.tasks import TASKS
from eval.token_scores import answer_attack_scores, token_scores
from unlearn.collate import IGNORE_INDEX, training_batch
from unlearn.data import load_clear
from unlearn.models import load_model


@pytest.fixture(scope="module")
def loaded(tiny_model):
    model, processor = load_model(tiny_model)
    return model.eval(), processor


def examples(mini_clear: str) -> list:
    rows = load_clear(TASKS["retain_caption"].config("forget10"), mini_clear)
    return [sample.scored()[0] for _, sample in zip(range(3), TASKS["retain_caption"].samples(rows), strict=False)]


def test_the_mean_token_logprob_is_minus_the_answer_loss(loaded, mini_clear):
    model, processor = loaded
    batch = examples(mini_clear)
    scores = token_scores(model, processor, batch)
    labels = training_batch(processor, batch)["labels"]
    assert [len(s.logprobs) for s in scores] == [int((row != IGNORE_INDEX).sum()) for row in labels]
    losses = answer_losses(model, processor, [[e] for e in batch], scoring="full")
    np.testing.assert_allclose([-s.logprobs.mean() for s in scores], [g[0] for g in losses], atol=1e-5)


def test_the_moments_are_those_of_the_next_token_distribution(loaded, mini_clear):
    model, processor = loaded
    example = examples(mini_clear)[0]
    batch = training_batch(processor, [example])
    labels = batch.pop("labels")[0]
    logits = model(**batch).logits[0, :-1][labels[1:] != IGNORE_INDEX].detach().double().numpy()
    mu, sigma = vocabulary_moments(logits)
    scores = token_scores(model, processor, [example])[0]
    np.testing.assert_allclose(scores.mu, mu, atol=1e-4)
    np.testing.assert_allclose(scores.sigma, sigma, atol=1e-4)


def test_attack_scores_of_a_model_match_its_token_scores(loaded, mini_clear):
    model, processor = loaded
    batch = examples(mini_clear)
    together = answer_attack_scores(model, processor, batch, k=0.5, batch_size=2)
    for example, scores in zip(batch, together, strict=True):
        alone = token_scores(model, processor, [example])[0]
        assert scores["loss"] == pytest.approx(alone.logprobs.mean(), abs=1e-5)
        assert scores["min_k"] == pytest.approx(min_k_score(alone.logprobs, 0.5), abs=1e-5)
