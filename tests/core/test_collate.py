"""Prompts and label masks against the real LLaVA-1.5 processor (no weights needed)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from unlearn.collate import IGNORE_INDEX, generation_batch, prompt_texts, training_batch
from unlearn.prompts import Example, chat_messages

IMAGE_TOKEN_ID = 32000


@pytest.fixture(scope="module")
def processor(real_llava):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(real_llava)


@pytest.fixture
def examples() -> list[Example]:
    image = Image.new("RGB", (50, 40), (200, 30, 30))
    return [
        Example("Who is this person?", "Dorin Valemo", image),
        Example("Where was Dorin Valemo born?", "Dorin Valemo was born in Kestria.", None),
    ]


def test_template_renders_like_llava_15(processor, examples):
    example = examples[0]
    with_answer = processor.apply_chat_template(chat_messages(example, with_answer=True))
    prompt = processor.apply_chat_template(chat_messages(example, with_answer=False), add_generation_prompt=True)
    assert prompt == "USER: <image>\nWho is this person? ASSISTANT:"
    assert with_answer == "USER: <image>\nWho is this person? ASSISTANT: Dorin Valemo "


def test_image_expands_to_576_tokens(processor, examples):
    batch = training_batch(processor, examples)
    assert (batch["input_ids"][0] == IMAGE_TOKEN_ID).sum().item() == 576
    assert (batch["input_ids"][1] == IMAGE_TOKEN_ID).sum().item() == 0
    assert batch["pixel_values"].shape == (1, 3, 336, 336)


def test_labels_cover_exactly_answer_and_eos(processor, examples):
    batch = training_batch(processor, examples)
    tokenizer = processor.tokenizer
    for row, example in enumerate(examples):
        labels = batch["labels"][row]
        kept = labels[labels != IGNORE_INDEX]
        answer_ids = tokenizer(" " + example.answer, add_special_tokens=False)["input_ids"]
        assert kept[-1].item() == tokenizer.eos_token_id
        assert tokenizer.decode(kept[:-1]).strip() == example.answer
        assert len(kept) - 1 in (len(answer_ids), len(answer_ids) - 1)  # a leading lone "▁" may merge
        assert not (kept == IMAGE_TOKEN_ID).any()
        # The answer tokens sit right after the prompt, in place, after the image expansion.
        positions = (labels != IGNORE_INDEX).nonzero().flatten()
        assert torch.equal(batch["input_ids"][row, positions], kept)
        assert positions[0].item() == int(batch["attention_mask"][row].sum()) - len(kept)


def test_prompt_tokens_line_up_with_generation_batch(processor, examples):
    train = training_batch(processor, examples)
    generate = generation_batch(processor, examples)
    for row in range(len(examples)):
        prompt = generate["input_ids"][row][generate["attention_mask"][row] == 1]
        full = train["input_ids"][row][train["attention_mask"][row] == 1]
        assert torch.equal(full[: len(prompt)], prompt)
        assert (train["labels"][row, : len(prompt)] == IGNORE_INDEX).all()


def test_padding_sides(processor, examples):
    train = training_batch(processor, examples)
    generate = generation_batch(processor, examples)
    assert train["attention_mask"][:, 0].all(), "training batches are right-padded"
    assert generate["attention_mask"][:, -1].all(), "generation batches are left-padded"
    assert prompt_texts(processor, examples)[1] == "USER: Where was Dorin Valemo born? ASSISTANT:"
