"""Example inputs for the app: faces and questions about forgotten and retained persons of a CLEAR source.

Clicking a forget example shows what the adapters forgot (the original still names the person); a retain example
shows what they kept. Without a dataset the app falls back to generic questions.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from unlearn.data import FORGET_SPLITS, load_clear
from unlearn.errors import UsageError
from unlearn.prompts import CAPTION_PROMPTS, FACE_PROMPT, face_example, question_example


@dataclass(frozen=True)
class AppExample:
    """One clickable example: an optional image, a question and a short label (``forget · NAME``)."""

    image: Image.Image | None
    question: str
    label: str


GENERIC = (AppExample(None, FACE_PROMPT.strip(), "question"), AppExample(None, CAPTION_PROMPTS[0], "question"))


def faces(data: str, config: str, kind: str, persons: int) -> list[AppExample]:
    """The first image of each of the first ``persons`` persons of a config, asked who they are."""
    examples: list[AppExample] = []
    seen: set[str] = set()
    for row in load_clear(config, data):
        if len(examples) == persons:
            break
        if row["name"] not in seen:
            seen.add(row["name"])
            face = face_example(row)
            examples.append(AppExample(face.image, face.prompt, f"{kind} · {row['name']}"))
    return examples


def clear_examples(data: str, forget: str = "forget10", persons: int = 2) -> list[AppExample]:
    """Faces of ``persons`` forgotten and ``persons`` retained persons, and one text question about a forgotten one.

    Only small configs are read (the forget split, its ``+tofu`` questions and ``retain_perturbed``), so a Space
    pointed at the Hub dataset starts quickly.
    """
    if forget not in FORGET_SPLITS:
        raise UsageError(f"unknown forget split {forget!r}; choose one of {', '.join(FORGET_SPLITS)}")
    examples = faces(data, forget, "forget", persons) + faces(data, "retain_perturbed", "retain", persons)
    rows = load_clear(f"{forget}+tofu", data)
    text_row = next((row for row in rows if row["image"] is None and row["question"]), None)
    if text_row is not None:
        examples.append(AppExample(None, question_example(text_row).prompt, "forget · text question"))
    return examples
