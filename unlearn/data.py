"""Load the CLEAR benchmark (a Hub id or a local folder in the Hub layout), check its schema, and list a split's
training examples: captions and names of its images, answers to its text questions."""

from __future__ import annotations

from pathlib import Path

import datasets

from unlearn.errors import UsageError
from unlearn.prompts import Example, caption_example, face_example, question_example

CLEAR_SOURCE = "therem/CLEAR"

_NAMED = ("image", "caption", "name")
_TOFU = ("image", "caption", "question", "answer")
_PERTURBED = ("image", "caption", "name", "perturbed_captions", "paraphrased_caption", "perturbed_names")

MODALITIES = ("both", "visual", "text")
FORGET_SPLITS = ("forget01", "forget05", "forget10")
RETAIN_OF = {"forget01": "retain99", "forget05": "retain95", "forget10": "retain90"}

CLEAR_CONFIGS: dict[str, tuple[str, ...]] = {
    **{c: _NAMED for c in ("default", "full", *FORGET_SPLITS, *RETAIN_OF.values())},
    **{f"{c}+tofu": _TOFU for c in ("full", *FORGET_SPLITS, *RETAIN_OF.values())},
    **{f"{c}_perturbed": _PERTURBED for c in (*FORGET_SPLITS, "retain")},
    "real_faces": ("image", "answer", "options"),
    "real_world": ("question", "answer", "image", "prompt", "options"),
}


def check_config(config: str) -> None:
    """Raise a UsageError naming the valid configs when ``config`` is not one of CLEAR's."""
    if config not in CLEAR_CONFIGS:
        raise UsageError(f"unknown CLEAR config {config!r}; valid configs: {', '.join(CLEAR_CONFIGS)}")


def load_clear(config: str, source: str = CLEAR_SOURCE) -> datasets.Dataset:
    """Load one CLEAR config (train split) from a Hub dataset id or a local folder in the same layout.

    Both go through ``datasets.load_dataset(source, config, split="train")``; the columns are then checked
    against CLEAR's published schema, so a wrong folder fails here with one clear line, not later. Extra columns
    (an index column a conversion added, say) are dropped: the result has exactly CLEAR's columns, in its order.
    """
    check_config(config)
    local = Path(source).expanduser()
    looks_local = source.startswith((".", "/", "~")) or local.exists() or source.count("/") != 1
    if looks_local and not local.is_dir():
        raise UsageError(f"dataset folder not found: {source}")
    try:
        dataset = datasets.load_dataset(str(local) if looks_local else source, config, split="train")
    except Exception as exc:  # datasets raises many types; the user needs one line
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"cannot load CLEAR config {config!r} from {source}: {first_line}") from exc
    missing = [column for column in CLEAR_CONFIGS[config] if column not in dataset.column_names]
    if missing:
        raise UsageError(f"{source} config {config!r} does not match CLEAR's schema: missing columns {missing}")
    return dataset.select_columns(list(CLEAR_CONFIGS[config]))


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
