"""Lazy data: examples and evaluation samples refer to their dataset rows, images are decoded only when a batch is
built, and everything built from them equals what eagerly decoded examples give (the code before lazy data)."""

from __future__ import annotations

from dataclasses import replace

import datasets
import pytest
import torch
from transformers import Trainer, TrainingArguments, set_seed

from eval.evaluator import run_task
from eval.tasks import TASKS, Sample
from unlearn.collate import TrainingCollator, generation_batch, training_batch
from unlearn.data import lazy_rows, load_clear, split_examples, world_examples
from unlearn.methods import get_method
from unlearn.models import load_model
from unlearn.prompts import (
    Example,
    RowImage,
    answer_options,
    caption_example,
    decode_image,
    face_example,
    multiple_choice,
    question_example,
)
from unlearn.training.pairing import ForgetRetainPairs, PairCollator
from unlearn.training.runs import finetune_examples


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the images ``datasets`` decodes from now on (one list entry per decoded image)."""
    calls: list[int] = []
    decode = datasets.Image.decode_example

    def counting(self: datasets.Image, value: dict, token_per_repo_id: dict | None = None):  # noqa: ANN202
        calls.append(1)
        return decode(self, value, token_per_repo_id)

    monkeypatch.setattr(datasets.Image, "decode_example", counting)
    return calls


@pytest.fixture(scope="module")
def processor(tiny_model):
    return load_model(tiny_model)[1]


def eager(examples: list[Example]) -> list[Example]:
    """The examples with every image decoded up front, as they were before lazy data."""
    return [
        example if example.image is None else replace(example, image=decode_image(example.image))
        for example in examples
    ]


def old_split_examples(data: str, split: str, face_naming: bool) -> list[Example]:
    """``split_examples(data, split, "both", face_naming)`` as it was written before lazy data (decoded rows)."""
    visual = [
        e for row in load_clear(split, data) for e in (caption_example(row), *([face_example(row)] * face_naming))
    ]
    text = [question_example(r) for r in load_clear(f"{split}+tofu", data) if r["image"] is None and r["question"]]
    return visual + text


def assert_same_examples(lazy: list[Example], decoded: list[Example]) -> None:
    assert len(lazy) == len(decoded)
    for ours, theirs in zip(lazy, decoded, strict=True):
        assert (ours.prompt, ours.answer, ours.image is None) == (theirs.prompt, theirs.answer, theirs.image is None)
        if ours.image is not None:
            assert isinstance(ours.image, RowImage)
            image = decode_image(ours.image)
            assert (image.mode, image.size, image.tobytes()) == (
                theirs.image.mode,
                theirs.image.size,
                theirs.image.tobytes(),
            )


def assert_same_batch(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key


# ------------------------------------------------------------------------------------------- no decoding


def test_no_image_is_decoded_until_a_batch_is_built(mini_clear, processor, decodes):
    examples = split_examples(mini_clear, "full+tofu", face_naming=True)
    examples += world_examples(mini_clear, ["real_faces", "real_world"])
    samples = {
        name: list(task.samples(load_clear(task.config("forget10"), mini_clear))) for name, task in TASKS.items()
    }
    assert decodes == [], "building training examples and evaluation samples decodes nothing"
    assert all(isinstance(e.image, RowImage) for e in examples if e.image is not None)
    assert all(isinstance(s.example.image, RowImage) for task in samples.values() for s in task if s.example.image)
    training_batch(processor, examples[:4])
    assert len(decodes) == 2, "a batch decodes its own images: 2 rows, each shared by a caption and a face example"


def test_a_samples_answer_options_share_one_decoded_image(mini_clear, processor, decodes):
    sample = next(TASKS["forget_face"].samples(load_clear("forget10_perturbed", mini_clear)))
    batch = training_batch(processor, sample.scored())
    assert len(decodes) == 1 and batch["pixel_values"].shape[0] == len(sample.answers)


def test_lazy_rows_follow_a_selection_of_rows(mini_clear):
    rows = load_clear("full+tofu", mini_clear)
    picked = rows.select([len(rows) - 1, 4, 0])  # a text row, then two image rows
    lazy = list(lazy_rows(picked))
    assert lazy[0]["image"] is None and [row["caption"] for row in lazy] == picked["caption"]
    for row, decoded in zip(lazy[1:], list(picked)[1:], strict=True):
        assert decode_image(row["image"]).tobytes() == decoded["image"].tobytes()


# ---------------------------------------------------------------------------------- equal to eager decoding


@pytest.mark.parametrize(("split", "face_naming"), [("full", False), ("forget10", True), ("retain90", False)])
def test_split_examples_equal_the_eagerly_decoded_ones(mini_clear, split, face_naming):
    assert_same_examples(
        split_examples(mini_clear, split, face_naming=face_naming), old_split_examples(mini_clear, split, face_naming)
    )


def test_world_examples_equal_the_eagerly_decoded_ones(mini_clear):
    decoded = [face_example(row) for row in load_clear("real_faces", mini_clear)]
    decoded += [question_example(row) for row in load_clear("real_world", mini_clear)]
    assert_same_examples(world_examples(mini_clear, ["real_faces", "real_world"]), decoded)


def test_training_and_generation_batches_equal_the_eager_ones(mini_clear, processor):
    lazy = finetune_examples(mini_clear, "full+tofu") + world_examples(mini_clear, ["real_faces", "real_world"])
    decoded = eager(lazy)
    for start in range(0, len(lazy), 8):
        assert_same_batch(
            training_batch(processor, lazy[start : start + 8]), training_batch(processor, decoded[start : start + 8])
        )
        assert_same_batch(
            generation_batch(processor, lazy[start : start + 8]),
            generation_batch(processor, decoded[start : start + 8]),
        )


def test_the_trainers_batches_equal_the_eager_ones(mini_clear, tiny_model, processor, tmp_path):
    model = load_model(tiny_model)[0]
    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=6, report_to="none", seed=0, dataloader_pin_memory=False
    )
    lazy = finetune_examples(mini_clear, "full+tofu")
    batches = []
    for examples in (lazy, eager(lazy)):
        set_seed(0)
        trainer = Trainer(model=model, args=args, train_dataset=examples, data_collator=TrainingCollator(processor))
        batches.append(list(trainer.get_train_dataloader()))
    assert len(batches[0]) == len(batches[1]) > 1
    for ours, theirs in zip(*batches, strict=True):
        assert_same_batch(ours, theirs)


@pytest.mark.parametrize("method", ["llmu", "idk", "npo_gd"])
def test_unlearning_pair_batches_equal_the_eager_ones(mini_clear, processor, method):
    forget, retain = split_examples(mini_clear, "forget10"), split_examples(mini_clear, "retain90")
    batches = []
    for f, r in ((forget, retain), (eager(forget), eager(retain))):
        loss = get_method(method)()
        loss.prepare(torch.nn.Linear(1, 1), f, r, 0)
        pairs = ForgetRetainPairs(f, r, 0)
        collate = PairCollator(processor, loss.examples)
        batches.append(
            [collate([pairs[i] for i in range(start, min(start + 3, len(pairs)))]) for start in range(0, len(pairs), 3)]
        )
    for ours, theirs in zip(*batches, strict=True):
        assert ours.keys() == theirs.keys()
        for name in ours:
            assert_same_batch(ours[name], theirs[name])


@pytest.mark.parametrize("name", list(TASKS))
def test_task_samples_and_records_equal_the_eager_ones(mini_clear, tiny_model, name):
    model, processor = load_model(tiny_model)
    model.eval()
    task = TASKS[name]
    rows = load_clear(task.config("forget10"), mini_clear)
    lazy = list(task.samples(rows))[:4]
    decoded = [replace(s, example=eager([s.example])[0]) for s in lazy]
    old = list(_old_samples(task, rows))[:4]
    assert [(s.id, s.answers, s.example.prompt, s.example.answer) for s in lazy] == [
        (s.id, s.answers, s.example.prompt, s.example.answer) for s in old
    ]
    assert_same_examples([s.example for s in lazy], [s.example for s in old])
    records = [run_task(model, processor, task, samples, 3, 6, progress=False) for samples in (lazy, decoded)]
    assert records[0] == records[1]


def _old_samples(task, rows: datasets.Dataset):  # noqa: ANN202
    """The task's samples from eagerly decoded rows, as ``Task.samples`` built them before lazy data."""
    for i, row in enumerate(rows):
        if task.name.endswith("_caption"):
            answers = (row["caption"], row["paraphrased_caption"], *row["perturbed_captions"])
            yield Sample(i, caption_example(row), answers)
        elif task.name.endswith("_text"):
            if row["question"] and row["image"] is None:
                yield Sample(i, question_example(row), (row["answer"],))
        elif "perturbed_names" in row:
            yield Sample(i, face_example(row), tuple(answer_options(row["name"], list(row["perturbed_names"]))))
        else:
            example, options = multiple_choice(row)
            yield Sample(i, example, tuple(options))
