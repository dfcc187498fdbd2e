"""Prompts like CLEAR's (its caption questions, its fixed face prompt, bare option prompts) and refusal answers:
enough of them, deterministic per sample, never the forget answer."""

from __future__ import annotations

from PIL import Image

from unlearn.prompts import (
    CAPTION_PROMPTS,
    FACE_PROMPT,
    TEXT_REFUSALS,
    VISUAL_REFUSALS,
    Example,
    answer_options,
    caption_example,
    face_example,
    refusal_example,
    refusal_for,
)


def test_caption_questions_are_clears_nine_picked_by_a_stable_hash():
    assert len(CAPTION_PROMPTS) == 9 and "Describe the image in detail." in CAPTION_PROMPTS
    rows = [{"caption": f"Person {i} stands by a wall.", "image": None} for i in range(40)]
    prompts = [caption_example(row).prompt for row in rows]
    assert prompts == [caption_example(row).prompt for row in rows], "the same row always gets the same question"
    assert len(set(prompts)) > 4, "rows get different questions"


def test_the_face_prompt_is_clears_fixed_one_for_named_and_real_faces():
    assert FACE_PROMPT == "The name of the person on the image is "
    assert face_example({"name": "Ana Bel", "caption": "x", "image": None}).prompt == FACE_PROMPT
    assert face_example({"answer": "Cor Tes", "image": None}) == Example(FACE_PROMPT, "Cor Tes", None)


def test_options_get_the_true_answer_first_once_and_keep_the_rows_order():
    assert answer_options("b", ["c", "b", "a", "c"]) == ["b", "c", "a"]
    assert answer_options("b", ["c", "a"]) == ["b", "c", "a"], "CLEAR's options hold the wrong answers only"


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
