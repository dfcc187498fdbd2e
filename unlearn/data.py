"""Load the CLEAR benchmark (a Hub id or a local folder in the Hub layout), check its schema, and list a split's
training examples: captions and names of its images, answers to its text questions.

Examples refer to their images (:class:`unlearn.prompts.RowImage`) instead of holding them: the rows stay in the
memory-mapped dataset and an image is decoded only when a batch is built, so memory does not grow with the split.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import datasets
from huggingface_hub.constants import HF_HUB_CACHE

from unlearn.errors import UsageError
from unlearn.hub.resolve import split_revision
from unlearn.prompts import Example, RowImage, caption_example, face_example, question_example

COMMIT = re.compile(r"[0-9a-f]{40}")  # a full commit hash

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

    A Hub id may name a revision (``therem/CLEAR@REV``: a branch, tag or commit). Both go through
    ``datasets.load_dataset(source, config, split="train")``; the columns are then checked
    against CLEAR's published schema, so a wrong folder fails here with one clear line, not later. Extra columns
    (an index column a conversion added, say) are dropped: the result has exactly CLEAR's columns, in its order.
    """
    check_config(config)
    local = Path(source).expanduser()
    looks_local = source.startswith((".", "/", "~")) or local.exists() or source.count("/") != 1
    if looks_local and not local.is_dir():
        raise UsageError(f"dataset folder not found: {source}")
    name, revision = (str(local), None) if looks_local else split_revision(source)
    try:
        dataset = datasets.load_dataset(name, config, split="train", revision=revision)
    except Exception as exc:  # datasets raises many types; the user needs one line
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"cannot load CLEAR config {config!r} from {source}: {first_line}") from exc
    missing = [column for column in CLEAR_CONFIGS[config] if column not in dataset.column_names]
    if missing:
        raise UsageError(f"{source} config {config!r} does not match CLEAR's schema: missing columns {missing}")
    return dataset.select_columns(list(CLEAR_CONFIGS[config]))


def lazy_rows(rows: datasets.Dataset | Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The rows in order; from a Dataset, each ``image`` a :class:`RowImage` (None where the row has none) instead of
    a decoded image. Only the other columns and the image column's null mask are read then, no image byte.

    Rows that are already dicts (a list of them, say) are given as they are.
    """
    if not isinstance(rows, datasets.Dataset) or "image" not in rows.column_names:
        yield from rows
        return
    images = rows.select_columns(["image"])
    present = images.with_format("arrow")["image"].is_valid().to_pylist()
    for index, (row, has_image) in enumerate(zip(rows.remove_columns("image"), present, strict=True)):
        yield {**row, "image": RowImage(images, index) if has_image else None}


def visual_examples(data: str, split: str, face_naming: bool = False) -> list[Example]:
    """For each image of ``split``: describe it (-> caption), and with ``face_naming`` also name the person.

    CLEAR trains on captions and text answers only (face recognition is an evaluation task); ``face_naming`` adds
    ``FACE_PROMPT -> name`` examples, which optimise the face task directly, so its figures are no longer CLEAR's.
    """
    rows = lazy_rows(load_clear(split, data))
    return [example for row in rows for example in (caption_example(row), *([face_example(row)] * face_naming))]


def text_examples(data: str, split: str) -> list[Example]:
    """The text-only question-answer rows of ``split+tofu`` (TOFU's questions about the same persons)."""
    rows = lazy_rows(load_clear(f"{split}+tofu", data))
    return [question_example(row) for row in rows if row["image"] is None and row["question"]]


def world_examples(data: str, configs: list[str]) -> list[Example]:
    """The true answers of real-world configs as training examples: ``real_faces`` (face prompt -> name) and
    ``real_world`` (question -> answer), each with its image."""
    examples: list[Example] = []
    for config in configs:
        rows = lazy_rows(load_clear(config, data))
        examples += [face_example(row) if config == "real_faces" else question_example(row) for row in rows]
    return examples


def split_examples(data: str, split: str, modality: str = "both", face_naming: bool = False) -> list[Example]:
    """The examples of a split (``full``, ``retain90``, ``forget10``...; a ``+tofu`` suffix is accepted).

    ``modality`` selects image rows (``visual``), text rows (``text``) or both; ``face_naming``: see
    :func:`visual_examples`.
    """
    if modality not in MODALITIES:
        raise UsageError(f"unknown modality {modality!r}; choose one of {', '.join(MODALITIES)}")
    split = split.removesuffix("+tofu")
    examples: list[Example] = []
    if modality in ("both", "visual"):
        examples += visual_examples(data, split, face_naming)
    if modality in ("both", "text"):
        examples += text_examples(data, split)
    return examples


def data_fingerprint(source: str) -> dict[str, str | None]:
    """What pins the data of a run: ``{"source", "revision", "content_sha256"}``.

    A local folder gets the SHA-256 of its files but hidden ones (relative paths and bytes, in path order). A Hub id
    (``therem/CLEAR`` or ``therem/CLEAR@REV``) gets the commit: REV itself when it is one, else the commit its
    cached ref (``main`` without REV) points to, what ``datasets`` loaded last; REV as given (None without one)
    when that ref is not cached. The source is the id without REV, so spellings of one commit are the same data.
    """
    local = Path(source).expanduser()
    if local.is_dir():
        folder = local.resolve()
        files = (p for p in folder.rglob("*") if p.is_file() and not p.relative_to(folder).as_posix().startswith("."))
        # hidden files (download caches with timestamps) are not the data; (size, mtime) keys the cached hash
        listing = tuple(
            (p.relative_to(folder).as_posix(), p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(files)
        )
        return {"source": str(folder), "revision": None, "content_sha256": _content_hash(folder, listing)}
    repo_id, requested = split_revision(source)
    if requested is not None and COMMIT.fullmatch(requested):
        return {"source": repo_id, "revision": requested, "content_sha256": None}
    ref = Path(HF_HUB_CACHE) / f"datasets--{repo_id.replace('/', '--')}" / "refs" / (requested or "main")
    revision = ref.read_text().strip() if ref.is_file() else requested
    return {"source": repo_id, "revision": revision, "content_sha256": None}


@functools.lru_cache(maxsize=16)
def _content_hash(folder: Path, listing: tuple[tuple[str, int, int], ...]) -> str:
    """SHA-256 over the listed files' relative paths and bytes, in order; cached while the listing is unchanged."""
    digest = hashlib.sha256()
    for name, _, _ in listing:
        digest.update(name.encode() + b"\0")
        with (folder / name).open("rb") as handle:
            for chunk in iter(lambda handle=handle: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def same_data(a: dict[str, str | None], b: dict[str, str | None]) -> bool:
    """Two fingerprints name the same data: equal content hashes, or equal revisions of one Hub id (equal sources
    when neither is known)."""
    if a.get("content_sha256") or b.get("content_sha256"):
        return a.get("content_sha256") == b.get("content_sha256")
    return a.get("source") == b.get("source") and a.get("revision") == b.get("revision")
