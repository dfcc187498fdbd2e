"""Refusal answers ("I don't know") for questions about forgotten persons, used by IDK and DPO.

The refusal for a sample is chosen by a stable hash of its prompt and answer, so it is the same on every run and
never depends on the forget answer's wording beyond that choice: a refusal never contains the forget answer.
"""

from __future__ import annotations

from unlearn.prompts import Example, stable_choice

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
