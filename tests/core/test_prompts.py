"""Refusal answers: enough of them, deterministic per sample, never the forget answer."""

from __future__ import annotations

from PIL import Image

from unlearn.prompts import TEXT_REFUSALS, VISUAL_REFUSALS, Example, refusal_example, refusal_for


def test_at_least_twenty_distinct_refusals_of_each_kind():
    assert len(set(VISUAL_REFUSALS)) >= 20
    assert len(set(TEXT_REFUSALS)) >= 20


def test_refusal_is_deterministic_and_matches_the_modality():
    image = Image.new("RGB", (8, 8))
    visual = Example("Who is this person?", "Dorin Valemo", image)
    text = Example("Where was Dorin Valemo born?", "Dorin Valemo was born in Kestria.")
    assert refusal_for(visual) == refusal_for(Example("Who is this person?", "Dorin Valemo", image))
    assert refusal_for(visual) in VISUAL_REFUSALS
    assert refusal_for(text) in TEXT_REFUSALS


def test_refusal_example_keeps_prompt_and_image_but_not_the_forget_answer():
    image = Image.new("RGB", (8, 8))
    forget = [Example(f"Who is person {i}?", f"Name{i} Surname{i}", image) for i in range(50)]
    refusals = [refusal_example(example) for example in forget]
    assert all(r.prompt == f.prompt and r.image is f.image for r, f in zip(refusals, forget, strict=True))
    assert all(f.answer not in r.answer for r, f in zip(refusals, forget, strict=True))
    assert len({r.answer for r in refusals}) > 5, "refusals vary across samples"
