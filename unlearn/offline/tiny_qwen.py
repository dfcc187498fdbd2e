"""The tiny Qwen2-VL and Qwen2.5-VL: their vision transformer with its patch merger (the projector) and a Qwen2
text model with multimodal rotary positions, dynamic resolution, and a Qwen-style chat template written for this
project (``<|im_start|>user\\n<|vision_start|><|image_pad|><|vision_end|>{question}<|im_end|>\\n<|im_start|>assistant
\\n{answer}<|im_end|>\\n``, without Qwen's default system turn)."""

from __future__ import annotations

from typing import Any

import torch
from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerFast,
    ProcessorMixin,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLProcessor,
)
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from unlearn.models import without_video_processor
from unlearn.offline.tiny_spec import TinyFamily, TinySpec

QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = {"unk_token": "<unk>", "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}
EXTRA_TOKENS = ("<|im_start|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")
MERGE = 2  # spatial_merge_size: 2x2 patches become one image token
TEMPORAL_PATCH = 2  # an image is two identical frames


def _processor(processor_class: type[ProcessorMixin], tokenizer: PreTrainedTokenizerFast, spec: TinySpec) -> Any:
    """Qwen's image processor with this project's chat template; 64-pixel images give (64/(patch*2))^2 tokens."""
    factor = spec.patch_size * MERGE
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=spec.patch_size,
        merge_size=MERGE,
        temporal_patch_size=TEMPORAL_PATCH,
        min_pixels=factor * factor,
        max_pixels=64 * 64,
    )
    build = without_video_processor(processor_class)
    return build(image_processor=image_processor, tokenizer=tokenizer, chat_template=QWEN_CHAT_TEMPLATE)


def _token_ids(tokenizer: PreTrainedTokenizerFast) -> dict[str, int]:
    ids = tokenizer.convert_tokens_to_ids
    return {
        "image_token_id": ids("<|image_pad|>"),
        "video_token_id": ids("<|video_pad|>"),
        "vision_start_token_id": ids("<|vision_start|>"),
        "vision_end_token_id": ids("<|vision_end|>"),
    }


def _text_config(tokenizer: PreTrainedTokenizerFast, spec: TinySpec) -> dict[str, Any]:
    head_dim = spec.text_hidden // spec.heads
    temporal = head_dim // 2 - 2 * (head_dim // 2 // 3)  # mrope sections (time, height, width) sum to head_dim / 2
    return {
        "hidden_size": spec.text_hidden,
        "intermediate_size": spec.text_hidden * 2,
        "num_hidden_layers": spec.text_layers,
        "num_attention_heads": spec.heads,
        "num_key_value_heads": spec.heads,
        "vocab_size": len(tokenizer),
        "max_position_embeddings": spec.max_positions,
        "rope_parameters": {"rope_type": "default", "mrope_section": [temporal, head_dim // 6, head_dim // 6]},
        "bos_token_id": None,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


def _random_model(
    config_class: type,
    model_class: type[PreTrainedModel],
    vision: dict[str, Any],
    tokenizer: PreTrainedTokenizerFast,
    spec: TinySpec,
    seed: int,
) -> PreTrainedModel:
    """``model_class`` with random weights from ``seed``: the ``vision`` config and the shared tiny text model."""
    config = config_class(
        vision_config=vision,
        text_config=_text_config(tokenizer, spec),
        tie_word_embeddings=False,
        **_token_ids(tokenizer),
    )
    torch.manual_seed(seed)
    return model_class(config)


def build_qwen2_vl(tokenizer: PreTrainedTokenizerFast, spec: TinySpec, seed: int) -> PreTrainedModel:
    """A randomly initialised Qwen2-VL sized by ``spec``."""
    vision = {
        "depth": spec.vision_layers,
        "embed_dim": spec.vision_hidden,
        "hidden_size": spec.text_hidden,
        "num_heads": spec.heads,
        "mlp_ratio": 4,
        "patch_size": spec.patch_size,
        "spatial_merge_size": MERGE,
        "temporal_patch_size": TEMPORAL_PATCH,
    }
    return _random_model(Qwen2VLConfig, Qwen2VLForConditionalGeneration, vision, tokenizer, spec, seed)


def build_qwen2_5_vl(tokenizer: PreTrainedTokenizerFast, spec: TinySpec, seed: int) -> PreTrainedModel:
    """A randomly initialised Qwen2.5-VL sized by ``spec`` (windowed attention but in its last vision layer)."""
    vision = {
        "depth": spec.vision_layers,
        "hidden_size": spec.vision_hidden,
        "intermediate_size": spec.vision_hidden * 4,
        "out_hidden_size": spec.text_hidden,
        "num_heads": spec.heads,
        "patch_size": spec.patch_size,
        "spatial_merge_size": MERGE,
        "temporal_patch_size": TEMPORAL_PATCH,
        "window_size": spec.patch_size * MERGE * 2,
        "fullatt_block_indexes": [spec.vision_layers - 1],
    }
    return _random_model(Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, vision, tokenizer, spec, seed)


def _family(name: str, processor_class: type[ProcessorMixin], build_model: Any) -> TinyFamily:
    return TinyFamily(
        name=name,
        special_tokens=SPECIAL_TOKENS,
        extra_tokens=EXTRA_TOKENS,
        scaffold=("user", "assistant"),
        newline_tokens=True,
        build_processor=lambda tokenizer, spec: _processor(processor_class, tokenizer, spec),
        build_model=build_model,
    )


QWEN2_VL = _family("qwen2_vl", Qwen2VLProcessor, build_qwen2_vl)
QWEN2_5_VL = _family("qwen2_5_vl", Qwen2_5_VLProcessor, build_qwen2_5_vl)
