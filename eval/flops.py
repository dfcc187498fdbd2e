"""Forward FLOPs of scoring answers, counted from parameter counts and token counts.

A forward pass costs ``2 * N * t`` FLOPs for ``N`` parameters applied to ``t`` tokens (one multiply and one add per
weight and token); attention's own ``4 * t^2 * d`` per layer is left out (about 2% at 600 tokens and width 4096).
For a sample with ``p`` prompt tokens (image tokens included), ``v`` vision-encoder tokens (0 without an image) and
answers of ``a_j`` tokens:

- vision: ``2 * N_vision * v`` (the encoder and the projector);
- language: ``2 * N_language * tokens`` (the decoder layers; embedding lookups are free);
- head: ``2 * N_head * a_j`` (logits only where a label is predicted).

The three ways of scoring (``eval.scoring.SCORING_MODES``) differ in what they repeat per answer:

- ``full``: ``sum_j [vision + language(p + a_j) + head(a_j)]``;
- ``per_option``: ``vision + sum_j [language(p + a_j) + head(a_j)]``;
- ``prefix``: ``vision + language(p) + sum_j [language(a_j) + head(a_j)]``: the floor, as every answer token and
  the prompt run once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from peft import PeftModel
from transformers import PreTrainedModel

from unlearn.architectures import anatomy


@dataclass(frozen=True)
class ModelSize:
    """Parameters of the parts a scoring pass runs (4-bit weights counted unpacked)."""

    vision: int  # the vision encoder and the projector
    language: int  # the decoder without its input embeddings
    head: int  # the output projection (``lm_head``)
    vision_tokens_per_image_token: int  # encoder tokens behind one image token (Qwen2-VL merges 2x2 patches)


@dataclass(frozen=True)
class SampleTokens:
    """One scored sample: prompt tokens (image tokens included), vision-encoder tokens and each answer's tokens."""

    prompt: int
    vision: int
    answers: tuple[int, ...]


def _count(parameter: torch.nn.Parameter) -> int:
    state = getattr(parameter, "quant_state", None)  # bitsandbytes packs two 4-bit weights per byte
    return state.shape.numel() if state is not None else parameter.numel()


def model_size(model: PreTrainedModel | PeftModel) -> ModelSize:
    """The parameter counts of ``model``'s vision part, decoder and head (LoRA weights count where they run)."""
    base = model.get_base_model() if isinstance(model, PeftModel) else model
    parts = anatomy(base)
    vision_parts = [parts.vision, *([parts.projector] if parts.projector else [])]
    embeddings = {id(p) for p in base.get_input_embeddings().parameters()}
    vision = language = 0
    for name, parameter in base.named_parameters():
        if any(name == part or name.startswith(f"{part}.") for part in vision_parts):
            vision += _count(parameter)
        elif name.startswith(f"{parts.language}.") and id(parameter) not in embeddings:
            language += _count(parameter)
    merge = getattr(base.config.vision_config, "spatial_merge_size", 1)
    return ModelSize(vision, language, sum(_count(p) for p in base.get_output_embeddings().parameters()), merge**2)


def scoring_flops(size: ModelSize, samples: list[SampleTokens], scoring: str) -> float:
    """Forward FLOPs of scoring ``samples`` the way ``scoring`` names (see the module docstring)."""
    total = 0.0
    for sample in samples:
        vision = 2.0 * size.vision * sample.vision
        answers = sum(sample.answers)
        head = 2.0 * size.head * answers
        if scoring == "full":
            total += len(sample.answers) * (vision + 2.0 * size.language * sample.prompt)
            total += 2.0 * size.language * answers + head
        elif scoring == "per_option":
            total += vision + 2.0 * size.language * (len(sample.answers) * sample.prompt + answers) + head
        elif scoring == "prefix":
            total += vision + 2.0 * size.language * (sample.prompt + answers) + head
        else:
            raise ValueError(f"unknown scoring {scoring!r}")
    return total
