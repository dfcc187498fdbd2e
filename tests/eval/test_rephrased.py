"""The rephrased-input probe: new wordings and altered images of the forget faces, and their figures."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from eval.metrics import option_accuracy, option_probability
from eval.rephrased import FACE_WORDINGS, IMAGE_ALTERATIONS, VARIANTS, rephrased_figures, variant_of
from eval.scoring import answer_losses
from eval.tasks import TASKS, Sample
from unlearn.data import load_clear
from unlearn.models import load_model
from unlearn.prompts import CAPTION_PROMPTS, FACE_PROMPT, Example, decode_image


def face_samples(mini_clear: str, count: int = 3) -> list[Sample]:
    task = TASKS["forget_face"]
    return list(task.samples(load_clear(task.config("forget10"), mini_clear)))[:count]


def test_the_wordings_are_new_and_at_least_five():
    assert len(set(FACE_WORDINGS)) >= 5
    assert not set(FACE_WORDINGS) & {FACE_PROMPT, *CAPTION_PROMPTS}, "training and CLEAR never use them"


def test_each_variant_changes_only_the_wording_or_only_the_image(mini_clear):
    sample = face_samples(mini_clear, 1)[0]
    original = decode_image(sample.example.image).convert("RGB")
    for variant in VARIANTS:
        changed = variant_of(sample, variant)
        assert changed.answers == sample.answers and changed.id == sample.id
        if variant.startswith("wording_"):
            assert changed.example.prompt in FACE_WORDINGS and changed.example.image is sample.example.image
        elif variant in IMAGE_ALTERATIONS:
            assert changed.example.prompt == sample.example.prompt
            assert changed.example.image.tobytes() != original.tobytes(), variant
    with pytest.raises(ValueError, match="unknown variant"):
        variant_of(sample, "sepia")


def test_the_alterations_do_what_they_say():
    image = Image.new("RGB", (10, 10), (0, 0, 0))
    image.putpixel((0, 0), (255, 0, 0))
    assert IMAGE_ALTERATIONS["flip"](image).getpixel((9, 0)) == (255, 0, 0)
    assert IMAGE_ALTERATIONS["crop"](image).size == (8, 8)
    gray = IMAGE_ALTERATIONS["grayscale"](Image.new("RGB", (4, 4), (200, 10, 10))).getpixel((0, 0))
    assert gray[0] == gray[1] == gray[2]


def test_the_original_variant_gives_the_forget_face_figures(tiny_model, mini_clear):
    model, processor = load_model(tiny_model)
    samples = face_samples(mini_clear)
    figures = rephrased_figures(model.eval(), processor, samples, batch_size=2)
    assert set(figures) == set(VARIANTS) and all(f["samples"] == len(samples) for f in figures.values())
    losses = np.array(answer_losses(model, processor, [s.scored() for s in samples]))
    assert figures["original"]["probability"] == pytest.approx(float(np.mean(option_probability(losses))), abs=1e-6)
    assert figures["original"]["accuracy"] == option_accuracy(losses)
    worded = [Example(FACE_WORDINGS[0], s.example.answer, s.example.image) for s in samples]
    reworded = np.array(
        answer_losses(
            model, processor, [[e.with_answer(a) for a in s.answers] for e, s in zip(worded, samples, strict=True)]
        )
    )
    assert figures["wording_1"]["probability"] == pytest.approx(float(np.mean(option_probability(reworded))), abs=1e-6)
