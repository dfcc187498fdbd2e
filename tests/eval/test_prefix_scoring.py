"""Prefix-shared scoring (each prompt and image run once, the answers on its key/value cache) gives the losses of
scoring every answer as its own sequence, for every task, in padded batches, with and without 4-bit weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eval.scoring import SCORING_MODES, answer_losses, answer_token_ids
from eval.tasks import TASKS
from unlearn.collate import IGNORE_INDEX, training_batch
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
    """A group with fewer answers repeats its last one inside the passes; the result keeps only its own."""
    model, processor = loaded
    groups = task_groups(mini_clear, "real_faces")
    groups = [groups[0], groups[1][:1], groups[2][:2]]
    prefix = answer_losses(model, processor, groups, scoring="prefix")
    assert [len(g) for g in prefix] == [len(groups[0]), 1, 2]
    single = [[answer_losses(model, processor, [[e]], scoring="full")[0][0] for e in group] for group in groups]
    for got, expected in zip(prefix, single, strict=True):
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


def test_the_prompt_runs_once_per_sample(loaded, mini_clear):
    """One pass holds every prompt; the passes after it hold answer tokens only (no image, no prompt)."""
    model, processor = loaded
    groups = task_groups(mini_clear, "retain_face")
    lengths = []
    hook = model.get_decoder().register_forward_pre_hook(
        lambda module, args, kwargs: lengths.append(kwargs["inputs_embeds"].shape[:2]), with_kwargs=True
    )
    try:
        answer_losses(model, processor, groups, scoring="prefix")
    finally:
        hook.remove()
    longest_answer = max(len(ids) for group in groups for ids in answer_token_ids(processor, group))
    assert len(lengths) == 1 + max(len(group) for group in groups)
    assert lengths[0][0] == len(groups), "the prefill holds one row per sample"
    assert all(rows == len(groups) and width <= longest_answer for rows, width in lengths[1:])


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
