"""The rephrased-input probe: face recognition of the forget persons asked in other words or shown altered images.

Forgetting that holds only for CLEAR's one face prompt and the exact training images is shallow. Each variant of a
``forget_face`` sample keeps its options (the true name and the perturbed names) and changes one thing:

- the wording: one of :data:`FACE_WORDINGS`, none of which training or CLEAR's evaluation uses;
- the image: one of :data:`IMAGE_ALTERATIONS` (PIL only): a centre crop to 80%, a horizontal flip, a Gaussian blur
  of radius 2, JPEG at quality 30, grayscale, a rotation by 10 degrees.

Per variant: the forget-face probability ``mean_i exp(-l_i0) / sum_j exp(-l_ij)`` and accuracy ``mean_i [l_i0 <
min_{j>0} l_ij]`` (:mod:`eval.metrics`), with the sample count.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from peft import PeftModel
from PIL import Image, ImageFilter, ImageOps
from transformers import PreTrainedModel, ProcessorMixin

from eval.logs import write_records
from eval.metrics import option_accuracy, option_probability
from eval.scoring import answer_losses
from eval.tasks import Sample
from unlearn.prompts import decode_image

FACE_WORDINGS = (
    "Who is the person in this picture? Their name is ",
    "This photo shows a person called ",
    "Name the person shown here: ",
    "The person in the photograph is named ",
    "Identify this person. This is ",
)


def _centre_crop(image: Image.Image, share: float = 0.8) -> Image.Image:
    width, height = image.size
    left, top = round(width * (1 - share) / 2), round(height * (1 - share) / 2)
    return image.crop((left, top, width - left, height - top))


def _jpeg(image: Image.Image, quality: int = 30) -> Image.Image:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


IMAGE_ALTERATIONS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "crop": _centre_crop,
    "flip": ImageOps.mirror,
    "blur": lambda image: image.filter(ImageFilter.GaussianBlur(radius=2)),
    "jpeg30": _jpeg,
    "grayscale": lambda image: image.convert("L").convert("RGB"),
    "rotate10": lambda image: image.convert("RGB").rotate(10, resample=Image.Resampling.BICUBIC),
}
VARIANTS = ("original", *(f"wording_{i + 1}" for i in range(len(FACE_WORDINGS))), *IMAGE_ALTERATIONS)


def variant_of(sample: Sample, variant: str) -> Sample:
    """``sample`` with its wording or its image changed as ``variant`` names (``original``: unchanged)."""
    example = sample.example
    if variant.startswith("wording_"):
        example = replace(example, prompt=FACE_WORDINGS[int(variant.removeprefix("wording_")) - 1])
    elif variant in IMAGE_ALTERATIONS:
        example = replace(example, image=IMAGE_ALTERATIONS[variant](decode_image(example.image).convert("RGB")))
    elif variant != "original":
        raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    return replace(sample, example=example)


def rephrased_figures(
    model: PreTrainedModel | PeftModel,
    processor: ProcessorMixin,
    samples: list[Sample],
    batch_size: int = 8,
    log_dir: Path | None = None,
) -> dict[str, dict[str, Any]]:
    """Forget-face probability and accuracy of ``samples`` under every variant, with the sample count; with
    ``log_dir``, each sample's option losses, probability and correctness in ``log_dir/<variant>.jsonl``."""
    model.eval()
    figures = {}
    for variant in VARIANTS:
        losses = []
        for start in range(0, len(samples), batch_size):  # altered images exist one batch at a time
            batch = [variant_of(sample, variant) for sample in samples[start : start + batch_size]]
            losses += answer_losses(model, processor, [sample.scored() for sample in batch])
        widest = max(len(row) for row in losses)
        padded = np.array([row + [np.inf] * (widest - len(row)) for row in losses])  # a missing option never wins
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            shares = option_probability(padded)
            records = [
                {
                    "id": s.id,
                    "option_losses": row,
                    "probability": float(p),
                    "correct": bool(option_accuracy(np.array([r]))),
                }
                for s, row, p, r in zip(samples, losses, shares, padded, strict=True)
            ]
            write_records(log_dir, variant, records)
        figures[variant] = {
            "probability": float(np.mean(option_probability(padded))),
            "accuracy": option_accuracy(padded),
            "samples": len(samples),
        }
    return figures
