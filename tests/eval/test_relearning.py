"""The relearning probe's splits and recovery, against hand-computed values."""

from __future__ import annotations

import pytest

from eval.relearning import FIGURES, image_halves, relearning_splits, with_recovery
from unlearn.data import load_clear, text_examples
from unlearn.prompts import FACE_PROMPT


def test_image_halves_alternate_within_each_person():
    names = ["a", "a", "b", "a", "b", "b", "a"]
    # a: rows 0, 1, 3, 6 -> 0 and 3 relearned, 1 and 6 probed; b: rows 2, 4, 5 -> 2 and 5 relearned, 4 probed
    assert image_halves(names) == ([0, 2, 3, 5], [1, 4, 6])


@pytest.mark.parametrize("face_naming", [False, True])
def test_the_image_split_relearns_half_of_each_persons_images_and_probes_the_other_half(mini_clear, face_naming):
    rows = load_clear("forget10_perturbed", mini_clear)
    splits = relearning_splits(mini_clear, "forget10", face_naming)
    image = splits["image"]
    captions = [e for e in image.examples if e.prompt != FACE_PROMPT]
    names = [e for e in image.examples if e.prompt == FACE_PROMPT]
    relearned, probed = image_halves(list(rows["name"]))
    assert [e.answer for e in captions] == [rows[i]["caption"] for i in relearned]
    assert len(names) == (len(relearned) if face_naming else 0)
    for task in ("forget_face", "forget_caption"):
        assert [s.id for s in image.samples[task]] == probed, "only the images not relearned are probed"
    assert set(rows.select(relearned)["name"]) == set(rows.select(probed)["name"]), "every person on both sides"


def test_the_text_split_relearns_the_text_answers_and_probes_every_image(mini_clear):
    text = relearning_splits(mini_clear, "forget10", face_naming=False)["text"]
    assert [e.answer for e in text.examples] == [e.answer for e in text_examples(mini_clear, "forget10")]
    assert all(e.image is None for e in text.examples)
    rows = load_clear("forget10_perturbed", mini_clear)
    assert [s.id for s in text.samples["forget_face"]] == list(range(len(rows)))


def test_recovery_is_the_share_of_the_removed_figure_brought_back():
    vanilla = {"face_probability": 0.9, "caption_rouge_l": 0.5}
    points = [
        {"steps": 0, "face_probability": 0.1, "caption_rouge_l": 0.5},
        {"steps": 5, "face_probability": 0.5, "caption_rouge_l": 0.7},
        {"steps": 20, "face_probability": 0.9, "caption_rouge_l": 0.6},
    ]
    curve = with_recovery(points, vanilla)
    assert [p["recovery"]["face_probability"] for p in curve] == pytest.approx([0.0, 0.5, 1.0])  # 0.4/0.8, 0.8/0.8
    assert [p["recovery"]["caption_rouge_l"] for p in curve] == [None, None, None], "no gap: undefined, not a number"
    assert set(curve[0]["recovery"]) == set(FIGURES)
