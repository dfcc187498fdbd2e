"""Model families: the one table of what cannot be read from a model, and the discovery of everything else.

The language model is found with transformers' ``get_decoder()``, the vision encoder with
``get_encoder(modality="image")``, and their linear layers by walking the modules. What neither tells is in
:data:`ARCHITECTURES`, one row per family: where the projector sits and whether the image processor takes a pixel
budget. Adding a family is one row there (and a tiny model in ``unlearn/offline`` to test it); see docs/models.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch
from peft import PeftModel
from peft.tuners.tuners_utils import BaseTunerLayer
from transformers import AutoConfig, AutoModelForImageTextToText, PreTrainedModel

from unlearn.errors import UsageError


@dataclass(frozen=True)
class Architecture:
    """What the code needs to know about a family and cannot discover from the model itself."""

    family: str  # the --family name of its tiny offline model
    model_type: str  # ``config.model_type`` of its checkpoints
    projector: str | None  # qualified name of the vision-to-language projector module
    pixel_budget: bool  # the image processor resizes to a pixel budget (min_pixels / max_pixels)
    hub_ids: tuple[str, ...]  # the checkpoints it is meant to run with (docs/models.md)


ARCHITECTURES = (
    Architecture("llava", "llava", "model.multi_modal_projector", False, ("llava-hf/llava-1.5-7b-hf",)),
    Architecture("qwen2_vl", "qwen2_vl", "model.visual.merger", True, ("Qwen/Qwen2-VL-2B-Instruct",)),
    Architecture(
        "qwen2_5_vl",
        "qwen2_5_vl",
        "model.visual.merger",
        True,
        ("Qwen/Qwen2.5-VL-3B-Instruct", "Qwen/Qwen2.5-VL-7B-Instruct"),
    ),
)
FAMILIES = tuple(row.family for row in ARCHITECTURES)
# The default pixel budget: at least 56x56 pixels, at most 512 image tokens of Qwen2-VL (28x28 pixels each), about
# LLaVA-1.5's 576; larger images are scaled down, keeping their aspect ratio.
MIN_PIXELS = 56 * 56
MAX_PIXELS = 512 * 28 * 28


def architecture_of(model_type: str) -> Architecture:
    """The table row of ``model_type``; a family outside the table gets discovery only (no projector, no budget)."""
    for row in ARCHITECTURES:
        if row.model_type == model_type:
            return row
    return Architecture(model_type, model_type, None, False, ())


@dataclass(frozen=True)
class Anatomy:
    """Where a model's parts are (qualified module names), and regexes matching exactly their linear layers."""

    architecture: Architecture
    language: str  # the language model (decoder)
    vision: str  # the vision encoder
    language_targets: str  # the decoder's nn.Linear layers
    vision_targets: str  # the vision encoder's, the projector's excluded
    projector_targets: str | None

    @property
    def projector(self) -> str | None:
        return self.architecture.projector

    def frozen_vision(self, name: str) -> bool:
        """True for a parameter of the vision encoder outside the projector (frozen in full fine-tuning)."""
        return _inside(name, self.vision) and not (self.projector and _inside(name, self.projector))

    def not_quantized(self) -> list[str]:
        """Modules bitsandbytes keeps in full precision: the vision encoder, the projector and ``lm_head``."""
        kept = [self.vision, *([self.projector] if self.projector else [])]
        return ["lm_head", *(re.escape(name) for name in kept)]


def _inside(name: str, module: str) -> bool:
    return name == module or name.startswith(f"{module}.")


def _parents(name: str) -> list[str]:
    """``a.b.c`` -> ``["a", "a.b"]``: the qualified names of the modules holding ``name``."""
    parts = name.split(".")
    return [".".join(parts[:depth]) for depth in range(1, len(parts))]


def _qualified_name(model: torch.nn.Module, part: torch.nn.Module, what: str) -> str:
    for name, module in model.named_modules():
        if module is part and name:
            return name
    raise UsageError(f"cannot find the {what} of {type(model).__name__}; add its family to unlearn/architectures.py")


def anatomy(model: PreTrainedModel | PeftModel) -> Anatomy:
    """Discover the parts of ``model`` (a PEFT model's base model is read), with its family's table row."""
    base = model.get_base_model() if isinstance(model, PeftModel) else model
    row = architecture_of(base.config.model_type)
    modules = dict(base.named_modules())
    if row.projector is not None and row.projector not in modules:
        raise UsageError(f"{type(base).__name__} has no projector {row.projector!r} (unlearn/architectures.py)")
    language = _qualified_name(base, base.get_decoder(), "language model")
    vision = _qualified_name(base, base.get_encoder(modality="image"), "vision encoder")
    lora_layers = {name for name, module in modules.items() if isinstance(module, BaseTunerLayer)}
    # A LoRA layer already there counts as the linear layer it wraps; its own parts are not layers of the model.
    every = [name for name in modules if not any(parent in lora_layers for parent in _parents(name))]

    def linears(inside: str, outside: str | None = None) -> tuple[str, ...]:
        return tuple(
            name
            for name in every
            if isinstance(modules[name], torch.nn.Linear | BaseTunerLayer)
            and _inside(name, inside)
            and not (outside and _inside(name, outside))
        )

    return Anatomy(
        architecture=row,
        language=language,
        vision=vision,
        language_targets=linear_pattern(linears(language), language, every),
        vision_targets=linear_pattern(linears(vision, row.projector), vision, every),
        projector_targets=linear_pattern(linears(row.projector), row.projector, every) if row.projector else None,
    )


@cache
def _skeleton_anatomy(config_dir: str) -> Anatomy:
    with torch.device("meta"):
        return anatomy(AutoModelForImageTextToText.from_config(AutoConfig.from_pretrained(config_dir)))


def anatomy_of_checkpoint(path: str | Path) -> Anatomy:
    """:func:`anatomy` of the checkpoint in folder ``path``, read from a weightless copy (the meta device)."""
    return _skeleton_anatomy(str(path))


def linear_pattern(names: tuple[str, ...], prefix: str, every_module: list[str]) -> str:
    """A regex (PEFT's ``target_modules``) that matches exactly ``names`` among ``every_module``.

    Compact where it can be: ``<prefix>\\.(.*\\.)?(self_attn\\.q_proj|...)`` over the names' last two components;
    where that would also match another module, the alternation of the names themselves.
    """
    if not names:
        raise UsageError(f"no linear layers under {prefix}")
    tails = sorted({".".join(name.split(".")[-2:]) for name in names})
    compact = rf"{re.escape(prefix)}\.(.*\.)?({'|'.join(re.escape(tail) for tail in tails)})"
    if {name for name in every_module if re.fullmatch(compact, name)} == set(names):
        return compact
    return "|".join(re.escape(name) for name in names)


@dataclass(frozen=True)
class PixelBudget:
    """The image processor's pixel range for families with dynamic resolution (Qwen2-VL): an image is resized,
    keeping its aspect ratio, to between ``min_pixels`` and ``max_pixels`` pixels, and so to at most
    ``max_pixels / (patch * merge)^2`` image tokens."""

    min_pixels: int = MIN_PIXELS
    max_pixels: int = MAX_PIXELS

    def __post_init__(self) -> None:
        if not 0 < self.min_pixels <= self.max_pixels:
            raise UsageError(
                f"the pixel budget needs 0 < --min_pixels <= --max_pixels, got {self.min_pixels} and {self.max_pixels}"
            )

    def processor_options(self) -> dict[str, object]:
        """The image processor options that set the budget: ``size``, and ``min_pixels`` / ``max_pixels``, which
        override the ones a Hub checkpoint's ``preprocessor_config.json`` holds (Qwen2-VL's: up to 12.8 M pixels)."""
        return {
            "size": {"shortest_edge": self.min_pixels, "longest_edge": self.max_pixels},
            "min_pixels": self.min_pixels,
            "max_pixels": self.max_pixels,
        }
