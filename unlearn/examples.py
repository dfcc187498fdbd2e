"""The training examples of a CLEAR split: captions and names of its images, answers to its text questions."""

from __future__ import annotations

from unlearn.data import load_clear
from unlearn.errors import UsageError
from unlearn.prompts import Example, caption_example, face_example, question_example

MODALITIES = ("both", "visual", "text")


def visual_examples(data: str, split: str) -> list[Example]:
    """For each image of ``split``: describe it (-> caption) and name the person (-> name)."""
    rows = load_clear(split, data)
    return [example for row in rows for example in (caption_example(row), face_example(row))]


def text_examples(data: str, split: str) -> list[Example]:
    """The text-only question-answer rows of ``split+tofu`` (TOFU's questions about the same persons)."""
    rows = load_clear(f"{split}+tofu", data)
    return [question_example(row) for row in rows if row["image"] is None and row["question"]]


def split_examples(data: str, split: str, modality: str = "both") -> list[Example]:
    """The examples of a split (``full``, ``retain90``, ``forget10``...; a ``+tofu`` suffix is accepted).

    ``modality`` selects image rows (``visual``), text rows (``text``) or both.
    """
    if modality not in MODALITIES:
        raise UsageError(f"unknown modality {modality!r}; choose one of {', '.join(MODALITIES)}")
    split = split.removesuffix("+tofu")
    examples: list[Example] = []
    if modality in ("both", "visual"):
        examples += visual_examples(data, split)
    if modality in ("both", "text"):
        examples += text_examples(data, split)
    return examples
