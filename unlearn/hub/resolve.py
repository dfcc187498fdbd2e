"""Resolve model and adapter names: a local folder, a Hub repo id, or ``USER/NAME@REVISION``."""

from __future__ import annotations

import re
from pathlib import Path

from huggingface_hub import snapshot_download
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
from safetensors import SafetensorError, safe_open

from unlearn.errors import UsageError

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")
# A snapshot folder of the Hugging Face cache: ``.../models--USER--NAME/snapshots/<commit>``.
CACHE_SNAPSHOT = re.compile(r"models--(?P<owner>[\w.-]+?)--(?P<name>[\w.-]+)/snapshots/(?P<commit>[0-9a-f]{40})/?$")


def split_revision(name: str) -> tuple[str, str | None]:
    """``USER/NAME@REV`` -> (``USER/NAME``, ``REV``); without ``@`` the revision is None."""
    repo_id, _, revision = name.partition("@")
    return repo_id, revision or None


def is_repo_id(name: str) -> bool:
    """True for ``USER/NAME`` or ``USER/NAME@REVISION`` that is not an existing local folder."""
    return not name.startswith((".", "/", "~")) and bool(REPO_ID.match(name)) and not Path(name).is_dir()


def hub_id(name: str) -> str | None:
    """The Hub id that ``name`` stands for, or None for a plain local folder.

    ``USER/NAME[@REV]`` is returned as is; a snapshot folder of the Hub cache (what :func:`resolve` returns, and so
    what a model loaded from the Hub records as its path) maps back to ``USER/NAME@<commit>``.
    """
    if is_repo_id(name):
        return name
    snapshot = CACHE_SNAPSHOT.search(Path(name).as_posix())
    if snapshot is None:
        return None
    return f"{snapshot['owner']}/{snapshot['name']}@{snapshot['commit']}"


# What loading a checkpoint or adapter needs: safetensors weights, configs, tokenizer and processor files, the card.
# Pickled weights (``*.bin``, ``*.pt``) are never downloaded.
LOADABLE_FILES = ["*.safetensors", "*.json", "*.jinja", "*.txt", "*.model", "*.md"]


def resolve(name: str) -> str:
    """A local folder as is; a Hub repo id (with an optional ``@revision``) downloaded through the Hub cache.

    ``snapshot_download`` honours the cache, so after one download this also works with ``HF_HUB_OFFLINE=1``; only
    ``LOADABLE_FILES`` are fetched (no pickles).
    """
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path)
    if not is_repo_id(name):
        raise UsageError(f"folder not found and not a Hub repo id: {name}")
    repo_id, revision = split_revision(name)
    try:
        return snapshot_download(repo_id, revision=revision, allow_patterns=LOADABLE_FILES)
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as exc:
        raise UsageError(f"cannot get {name} from the Hugging Face Hub: {str(exc).strip().splitlines()[0]}") from exc


def check_weights(folder: str | Path) -> None:
    """Raise a UsageError naming the first ``*.safetensors`` file at the top of ``folder`` that is not whole.

    Opening a file reads its header and checks that the tensors it lists cover the file exactly, so a file cut
    short (a save or download killed half-way) or damaged is found without reading the weights.
    """
    for file in sorted(Path(folder).glob("*.safetensors")):
        try:
            with safe_open(str(file), framework="pt"):
                pass
        except (SafetensorError, OSError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            reason = reason.removeprefix("Error while deserializing header: ")
            raise UsageError(
                f"{file} is damaged or incomplete ({reason}): it was cut short or corrupted, e.g. by an interrupted "
                "save or download; save or download it again"
            ) from exc
