"""Resolve model and adapter names: a local folder, a Hub repo id, or ``USER/NAME@REVISION``."""

from __future__ import annotations

import re
from pathlib import Path

from huggingface_hub import snapshot_download
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

from unlearn.errors import UsageError

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")


def split_revision(name: str) -> tuple[str, str | None]:
    """``USER/NAME@REV`` -> (``USER/NAME``, ``REV``); without ``@`` the revision is None."""
    repo_id, _, revision = name.partition("@")
    return repo_id, revision or None


def resolve(name: str) -> str:
    """A local folder as is; a Hub repo id (with an optional ``@revision``) downloaded through the Hub cache.

    ``snapshot_download`` honours the cache, so after one download this also works with ``HF_HUB_OFFLINE=1``.
    """
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path)
    if name.startswith((".", "/", "~")) or not REPO_ID.match(name):
        raise UsageError(f"folder not found and not a Hub repo id: {name}")
    repo_id, revision = split_revision(name)
    try:
        return snapshot_download(repo_id, revision=revision)
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as exc:
        raise UsageError(f"cannot get {name} from the Hugging Face Hub: {str(exc).strip().splitlines()[0]}") from exc
