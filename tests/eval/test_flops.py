"""FLOP counts of the three ways of scoring, against hand-computed values."""

from __future__ import annotations

import pytest

from eval.flops import ModelSize, SampleTokens, model_size, scoring_flops
from unlearn.models import load_model

SIZE = ModelSize(vision=10, language=100, head=7, vision_tokens_per_image_token=1)
# one sample: a 20-token prompt with 4 vision tokens, two answers of 3 and 5 tokens
SAMPLE = SampleTokens(prompt=20, vision=4, answers=(3, 5))


def test_full_sequences_repeat_the_image_and_the_prompt_per_answer():
    # 2 answers x (2*10*4 + 2*100*20) + 2*100*(3+5) + 2*7*(3+5) = 2 x 4080 + 1600 + 112
    assert scoring_flops(SIZE, [SAMPLE], "full") == 2 * 4080 + 1600 + 112


def test_per_option_scoring_encodes_the_image_once():
    # 2*10*4 + 2*100*(2*20 + 8) + 2*7*8 = 80 + 9600 + 112
    assert scoring_flops(SIZE, [SAMPLE], "per_option") == 80 + 9600 + 112


def test_prefix_scoring_runs_prompt_and_answers_once():
    # 2*10*4 + 2*100*(20 + 8) + 2*7*8 = 80 + 5600 + 112
    assert scoring_flops(SIZE, [SAMPLE], "prefix") == 80 + 5600 + 112
    assert scoring_flops(SIZE, [SAMPLE, SAMPLE], "prefix") == 2 * (80 + 5600 + 112)


def test_an_unknown_way_is_refused():
    with pytest.raises(ValueError, match="unknown scoring"):
        scoring_flops(SIZE, [SAMPLE], "cached")


def test_model_size_counts_4bit_weights_unpacked(tiny_model):
    full, quantized = model_size(load_model(tiny_model)[0]), model_size(load_model(tiny_model, "4bit")[0])
    assert quantized == full
    assert full.vision > 0 and full.language > 0 and full.head > 0 and full.vision_tokens_per_image_token == 1


def test_qwen2_vl_encodes_four_patches_per_image_token(family_model):
    model = load_model(family_model)[0]
    merged = 4 if model.config.model_type == "qwen2_vl" else 1  # Qwen2-VL merges 2x2 patches into one token
    assert model_size(model).vision_tokens_per_image_token == merged
