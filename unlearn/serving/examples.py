"""Example inputs for the app: faces of forgotten and retained persons of a CLEAR source, and a text question.

Each face is the first image of a person in the configs the evaluation's face tasks read (``{forget}_perturbed``
for ``forget_face``, ``retain_perturbed`` for ``retain_face``), with the same prompt and options (the true name,
then the decoys), and keyed by task and row (``forget_face:3``): the app's bars for it equal that sample's
``probability`` in the evaluation. Without a dataset the app falls back to generic questions.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from unlearn.data import FORGET_SPLITS, load_clear
from unlearn.errors import UsageError
from unlearn.prompts import CAPTION_PROMPTS, FACE_PROMPT, answer_options, face_example, question_example

RETAINED_PERSONS = 4
# The evaluation's face tasks (eval/tasks.py) and the configs they read.
FACE_TASKS = {"forget": ("forget_face", "{forget}_perturbed"), "retain": ("retain_face", "retain_perturbed")}


@dataclass(frozen=True)
class AppExample:
    """One example: an optional image, a question, a label (``forget · NAME``), its kind (``forget``, ``retain``
    or ``question``) and, for a CLEAR face, the options scored (true name first) and its key (``TASK:ROW``)."""

    image: Image.Image | None
    question: str
    label: str
    kind: str = "question"
    options: tuple[str, ...] = ()
    key: str = ""

    @property
    def true_name(self) -> str | None:
        """The person's name (the first option) for a CLEAR face, else None."""
        return self.options[0] if self.options else None


GENERIC = (AppExample(None, FACE_PROMPT.strip(), "question"), AppExample(None, CAPTION_PROMPTS[0], "question"))


def faces(data: str, forget: str, kind: str, persons: int | None = None) -> list[AppExample]:
    """The first face of each person (of the first ``persons``; all with None) in the config the ``kind`` face task
    reads, with that task's prompt and options."""
    task, pattern = FACE_TASKS[kind]
    rows = load_clear(pattern.format(forget=forget), data)
    first_rows: dict[str, int] = {}
    for index, name in enumerate(rows["name"]):
        first_rows.setdefault(name, index)
    examples = []
    for name, index in list(first_rows.items())[:persons]:
        row = rows[index]
        face = face_example(row)
        options = tuple(answer_options(row["name"], list(row["perturbed_names"])))
        examples.append(AppExample(face.image, face.prompt, f"{kind} · {name}", kind, options, f"{task}:{index}"))
    return examples


def clear_examples(data: str, forget: str = "forget10", retained: int = RETAINED_PERSONS) -> list[AppExample]:
    """Every forgotten person's face, ``retained`` retained persons' faces, and one text question about a
    forgotten person.

    Only small configs are read (``{forget}_perturbed``, ``retain_perturbed`` and ``{forget}+tofu``), so a Space
    pointed at the Hub dataset starts quickly.
    """
    if forget not in FORGET_SPLITS:
        raise UsageError(f"unknown forget split {forget!r}; choose one of {', '.join(FORGET_SPLITS)}")
    examples = faces(data, forget, "forget") + faces(data, forget, "retain", retained)
    rows = load_clear(f"{forget}+tofu", data)
    text_row = next((row for row in rows if row["image"] is None and row["question"]), None)
    if text_row is not None:
        examples.append(AppExample(None, question_example(text_row).prompt, "forget · text question"))
    return examples
