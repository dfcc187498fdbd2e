"""Batched scoring and generation against the one-at-a-time path with the real LLaVA-1.5 processor (576 image
tokens, its tokenizer and padding token) on a shrunken random model built from its config (no weights needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from eval.scoring import answer_losses, generate


@pytest.fixture(scope="module")
def model_and_processor(real_llava):
    from transformers import AutoConfig, AutoProcessor, LlavaForConditionalGeneration

    config = AutoConfig.from_pretrained(real_llava)
    config.text_config.update(
        {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
        }
    )
    config.vision_config.update(
        {
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "projection_dim": 16,
        }
    )
    torch.manual_seed(0)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield LlavaForConditionalGeneration(config).float().eval(), AutoProcessor.from_pretrained(real_llava)
    torch.set_num_threads(before)


def example_groups():
    from unlearn.prompts import Example

    red, blue = Image.new("RGB", (40, 30), (200, 30, 30)), Image.new("RGB", (30, 50), (30, 30, 200))
    face = Example("Who is this person?", "Dorin Valemo", red)
    caption = Example("Describe the image in detail, please.", "A blue square on a plain wall.", blue)
    return [
        [face.with_answer(name) for name in ("Dorin Valemo", "Kestra Bell", "Tom Oranthius Bright")],
        [caption.with_answer(text) for text in ("A blue square on a plain wall.", "A red circle.")],
    ]


def test_batched_losses_equal_one_example_at_a_time(model_and_processor):
    model, processor = model_and_processor
    groups = example_groups()
    batched = answer_losses(model, processor, groups)
    single = [[answer_losses(model, processor, [[example]])[0][0] for example in group] for group in groups]
    for got, expected in zip(batched, single, strict=True):
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_batched_generation_equals_one_prompt_at_a_time(model_and_processor):
    model, processor = model_and_processor
    prompts = [group[0] for group in example_groups()]
    together = generate(model, processor, prompts, max_new_tokens=6)
    assert together == [generate(model, processor, [prompt], max_new_tokens=6)[0] for prompt in prompts]
