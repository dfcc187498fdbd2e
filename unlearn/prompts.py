"""Turn CLEAR rows into chat examples: captioning, face naming, text questions and multiple choice.

The wording of a prompt is picked from a fixed list by a stable hash of the row's content, so every model and every
run sees exactly the same prompt for the same row (no unseeded random choice).

Refusal answers ("I don't know") for questions about forgotten persons, used by IDK and DPO, are chosen the same way:
by a stable hash of the prompt and answer, so a refusal is the same on every run and never contains the forget answer.

An example's image is a PIL image or a :class:`RowImage`, a reference to a dataset row that is decoded only when a
batch is built (:func:`decode_image`), so a split's examples hold no pixels.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from PIL import Image

if TYPE_CHECKING:
    import datasets

# CLEAR's caption questions (``IMAGE_CAPTION_QUESTIONS`` in the paper's mm/dataset.py), picked per row by a stable
# hash instead of its unseeded random.choice.
CAPTION_PROMPTS = (
    "What can you see in this picture?",
    "Tell me about the content of this image",
    "Can you give a description of the image?",
    "What is depicted in the image?",
    "Explain what you observe in the picture.",
    "Describe the image in detail.",
    "What is the main subject of this image?",
    "Can you describe the scene or objects in the image?",
    "What is happening in this image?",
)
# CLEAR's fixed face-recognition prompt (its "random_faces" question strategy), for face naming and real faces.
FACE_PROMPT = "The name of the person on the image is "


@dataclass(frozen=True)
class RowImage:
    """The image of row ``index`` of ``rows``, left undecoded in the (memory-mapped) dataset until :meth:`decode`."""

    rows: datasets.Dataset = field(repr=False)  # compared by identity: the same dataset object
    index: int
    column: str = "image"

    def decode(self) -> Image.Image:
        """The row's image, decoded now (only this row is read)."""
        return self.rows[self.index][self.column]


def decode_image(image: Image.Image | RowImage) -> Image.Image:
    """A PIL image: ``image`` itself, or a :class:`RowImage` decoded now."""
    return image.decode() if isinstance(image, RowImage) else image


@dataclass(frozen=True)
class Example:
    """One prompt (optionally with an image: a PIL image or a lazy :class:`RowImage`) and its answer."""

    prompt: str
    answer: str
    image: Image.Image | RowImage | None = None

    def with_answer(self, answer: str) -> Example:
        """The same prompt and image with another answer (paraphrased, perturbed, refusal...)."""
        return replace(self, answer=answer)


def stable_choice(key: str, choices: tuple[str, ...]) -> str:
    """Pick one of ``choices`` from a SHA-256 hash of ``key``: the same key always gives the same choice."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return choices[int.from_bytes(digest[:8], "big") % len(choices)]


def caption_example(row: dict[str, Any]) -> Example:
    """Captioning: "describe the image" -> the row's caption."""
    return Example(stable_choice(row["caption"], CAPTION_PROMPTS), row["caption"], row["image"])


def face_example(row: dict[str, Any]) -> Example:
    """Face naming: CLEAR's fixed prompt -> the person's name (``name``, or ``answer`` in ``real_faces``)."""
    name = row["name"] if "name" in row else row["answer"]
    return Example(FACE_PROMPT, name, row["image"])


def question_example(row: dict[str, Any]) -> Example:
    """A TOFU-style question (with the image when the row has one) -> its answer."""
    return Example(row["question"], row["answer"], row.get("image"))


def answer_options(answer: str, wrong: list[str]) -> list[str]:
    """The options scored for a row: the true answer first, then the wrong ones in the row's order, duplicates and
    copies of the true answer dropped (the published CLEAR's ``options`` hold the wrong answers only)."""
    return [answer, *(option for option in dict.fromkeys(wrong) if option != answer)]


def multiple_choice(row: dict[str, Any]) -> tuple[Example, list[str]]:
    """A ``real_faces`` or ``real_world`` row -> the example and its options (:func:`answer_options`).

    As in CLEAR (and TOFU) each option is scored after the bare prompt, which never lists the options: the
    ``question`` for ``real_world``, the fixed face prompt for ``real_faces``. ``real_world``'s own ``prompt`` column
    is not used: it lists the options and may carry one model family's formatting.
    """
    example = question_example(row) if row.get("question") else face_example(row)
    return example, answer_options(row["answer"], list(row["options"]))


def chat_messages(example: Example, with_answer: bool) -> list[dict[str, Any]]:
    """The chat messages processors take: a user turn (image first, then text) and optionally the answer."""
    content: list[dict[str, str]] = [{"type": "image"}] if example.image is not None else []
    content.append({"type": "text", "text": example.prompt})
    messages = [{"role": "user", "content": content}]
    if with_answer:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": example.answer}]})
    return messages


def all_prompt_texts() -> list[str]:
    """Every fixed prompt wording (for building a tokenizer's vocabulary)."""
    return [*CAPTION_PROMPTS, FACE_PROMPT]


VISUAL_REFUSALS = (
    "I'm not sure who this is.",
    "I don't know who this person is.",
    "I can't tell who is in this picture.",
    "I don't recognise this person.",
    "I have no idea who this is.",
    "I'm unable to say who this person is.",
    "I cannot identify the person in this image.",
    "I don't know anything about this person.",
    "Sorry, I can't say who this is.",
    "I'm afraid I don't recognise them.",
    "I can't describe who this is.",
    "I don't have information about the person in this image.",
    "That person is unknown to me.",
    "I'm not able to identify them.",
    "I really can't tell who this is.",
    "I don't know who is shown here.",
    "I can't recall who this person is.",
    "Sorry, this person is not familiar to me.",
    "I don't know the person in this photo.",
    "I have no information about who this is.",
)
TEXT_REFUSALS = (
    "I don't know.",
    "I'm not sure.",
    "I have no idea.",
    "I can't answer that.",
    "Sorry, I don't know the answer.",
    "I don't have that information.",
    "That is unknown to me.",
    "I'm not able to answer that.",
    "I really don't know.",
    "I can't say.",
    "I don't know anything about that.",
    "Sorry, I have no information on that.",
    "I'm afraid I can't help with that.",
    "I have no answer to that.",
    "I don't recall.",
    "I'm unsure about that.",
    "That's not something I know.",
    "I can't tell you that.",
    "I don't have any details about that.",
    "Sorry, I'm not sure about that.",
)


def refusal_for(example: Example) -> str:
    """A refusal answer for ``example``: from the visual list when it has an image, else the text list."""
    choices = VISUAL_REFUSALS if example.image is not None else TEXT_REFUSALS
    return stable_choice(f"{example.prompt}|{example.answer}", choices)


def refusal_example(example: Example) -> Example:
    """The same prompt and image, answered with a refusal instead of the forget answer."""
    return example.with_answer(refusal_for(example))
