"""Prefix-shared scoring (each prompt and image run once, the answers on its key/value cache) gives the losses of
scoring every answer as its own sequence, for every task, in padded batches, with and without 4-bit weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eval.scoring import SCORING_MODES, PackedAnswers, answer_losses, answer_token_ids
from eval.tasks import TASKS
from unlearn.collate import IGNORE_INDEX, generation_batch, training_batch
from unlearn.data import load_clear
from unlearn.models import load_model

GROUPS_PER_TASK = 3  # samples of different prompt lengths in one batch, so the prompts are padded


@pytest.fixture(scope="module")
def loaded(family_model):
    model, processor = load_model(family_model)
    return model.eval(), processor


def task_groups(mini_clear: str, task: str) -> list:
    rows = load_clear(TASKS[task].config("forget10"), mini_clear)
    samples = [sample for _, sample in zip(range(GROUPS_PER_TASK), TASKS[task].samples(rows), strict=False)]
    return [sample.scored() for sample in samples]


@pytest.mark.parametrize("task", list(TASKS))
def test_every_scoring_gives_the_same_losses_for_every_task(loaded, mini_clear, task):
    model, processor = loaded
    groups = task_groups(mini_clear, task)
    by_mode = {mode: answer_losses(model, processor, groups, scoring=mode) for mode in SCORING_MODES}
    assert [len(g) for g in by_mode["prefix"]] == [len(g) for g in groups]
    for mode in ("per_option", "full"):
        for got, expected in zip(by_mode["prefix"], by_mode[mode], strict=True):
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4, err_msg=f"{task}: prefix vs {mode}")


def test_prefix_scoring_matches_in_4bit(family_model, mini_clear):
    model, processor = load_model(family_model, "4bit")
    groups = task_groups(mini_clear, "forget_caption")
    prefix = answer_losses(model.eval(), processor, groups, scoring="prefix")
    full = answer_losses(model, processor, groups, scoring="full")
    for got, expected in zip(prefix, full, strict=True):
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


def test_groups_of_different_sizes_keep_their_own_answers(loaded, mini_clear):
    """Groups with 1, 2 and all their answers in one batch each get their own answers' losses."""
    model, processor = loaded
    groups = task_groups(mini_clear, "real_faces")
    groups = [groups[0], groups[1][:1], groups[2][:2]]
    prefix = answer_losses(model, processor, groups, scoring="prefix")
    assert [len(g) for g in prefix] == [len(groups[0]), 1, 2]
    single = [[answer_losses(model, processor, [[e]], scoring="full")[0][0] for e in group] for group in groups]
    for got, expected in zip(prefix, single, strict=True):
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


def test_the_prompt_runs_once_per_sample_and_the_answers_once_after_it(loaded, mini_clear):
    """Two passes: one row per sample with its prompt, then one row per sample holding all its answers' tokens."""
    model, processor = loaded
    groups = task_groups(mini_clear, "retain_face")
    shapes = []
    hook = model.get_decoder().register_forward_pre_hook(
        lambda module, args, kwargs: shapes.append(tuple(kwargs["inputs_embeds"].shape[:2])), with_kwargs=True
    )
    try:
        answer_losses(model, processor, groups, scoring="prefix")
    finally:
        hook.remove()
    prompts = generation_batch(processor, [group[0] for group in groups])["input_ids"].shape[1]
    answers = max(sum(len(ids) for ids in answer_token_ids(processor, group)) for group in groups)
    assert shapes == [(len(groups), prompts), (len(groups), answers)]


def test_packed_answers_see_the_prompt_and_their_own_earlier_tokens_only():
    packed = PackedAnswers.of([[[5, 6], [7, 8, 9]], [[4]]], pad=0)
    assert packed.tokens.tolist() == [[5, 6, 7, 8, 9], [4, 0, 0, 0, 0]]
    assert packed.answer.tolist() == [[0, 0, 1, 1, 1], [0, -1, -1, -1, -1]]
    assert packed.offset.tolist() == [[0, 1, 0, 1, 2], [0, 0, 0, 0, 0]]
    prompt_mask = torch.tensor([[0, 1], [1, 1]])  # the first prompt is left-padded
    seen = packed.attention(prompt_mask, torch.float32)[:, 0] == 0
    assert seen[0].int().tolist() == [
        [0, 1, 1, 0, 0, 0, 0],  # answer 0, token 0: the prompt and itself
        [0, 1, 1, 1, 0, 0, 0],
        [0, 1, 0, 0, 1, 0, 0],  # answer 1, token 0: the prompt and itself, not answer 0
        [0, 1, 0, 0, 1, 1, 0],
        [0, 1, 0, 0, 1, 1, 1],
    ]
    assert seen[1, 1].int().tolist() == [1, 1, 0, 0, 0, 0, 0], "padding sees the prompt only (no empty row)"
    assert packed.predicts().int().tolist() == [[1, 0, 1, 1, 0], [0, 0, 0, 0, 0]]


def test_answer_token_ids_are_the_labelled_tokens(loaded, mini_clear):
    model, processor = loaded
    examples = [e for group in task_groups(mini_clear, "forget_caption") for e in group]
    labels = training_batch(processor, examples)["labels"]
    assert answer_token_ids(processor, examples) == [row[row != IGNORE_INDEX].tolist() for row in labels]


def test_an_unknown_scoring_is_refused(loaded, mini_clear):
    with pytest.raises(ValueError, match="unknown scoring"):
        answer_losses(*loaded, task_groups(mini_clear, "forget_face"), scoring="fast")


def test_prefix_scoring_leaves_no_state_behind(loaded, mini_clear):
    """Scoring twice gives identical numbers: the cache is the call's own, and positions are passed explicitly."""
    model, processor = loaded
    groups = task_groups(mini_clear, "forget_face")
    with torch.no_grad():
        assert answer_losses(model, processor, groups) == answer_losses(model, processor, groups)
