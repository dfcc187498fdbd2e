"""Publish a checkpoint folder to the Hugging Face Hub: stage exactly what is uploaded, then upload it in one commit."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import CommitInfo, HfApi, get_token
from huggingface_hub.errors import HfHubHTTPError

from unlearn.errors import UsageError
from unlearn.figures import dumps_strict
from unlearn.hub.card import Checkpoint, model_card, read_checkpoint
from unlearn.hub.resolve import REPO_ID, split_revision

# Top-level files published from a checkpoint folder: weights (safetensors only), configs, processor files.
PUBLISHED_SUFFIXES = (".safetensors", ".json", ".jinja", ".txt", ".model")
REPLACED = ("README.md", "summary.json")  # the card is generated; the summary may come from elsewhere


@dataclass
class Staged:
    """A staged upload: the folder, the files in it and the names of the source's files left out."""

    folder: Path
    files: list[str]
    left_out: list[str]


def check_repo_id(repo_id: str) -> None:
    """Raise a UsageError unless ``repo_id`` is ``USER/NAME`` (a branch goes to --revision, not after ``@``)."""
    if not REPO_ID.match(repo_id) or "@" in repo_id:
        raise UsageError(f"--repo must be USER/NAME (branch with --revision), not {repo_id!r}")


def _place(source: Path, target: Path, link: bool) -> None:
    """Copy ``source`` to ``target``; with ``link``, hard-link it where possible (no second copy of large weights)."""
    if link:
        try:
            os.link(source, target)
            return
        except OSError:
            pass
    shutil.copy2(source, target)


def _staging_folder(near: Path) -> tempfile.TemporaryDirectory:
    """A temporary folder beside ``near`` (same file system, so files can be hard-linked), else in the temp dir."""
    try:
        return tempfile.TemporaryDirectory(prefix=".push-", dir=near.parent)
    except OSError:
        return tempfile.TemporaryDirectory(prefix="push-")


def _adapter_config_for_hub(checkpoint: Checkpoint, base: str) -> str:
    """adapter_config.json naming the base by its Hub id and revision instead of a local path."""
    base_repo, base_revision = split_revision(base)
    config = {**checkpoint.adapter_config, "base_model_name_or_path": base_repo, "revision": base_revision}
    return dumps_strict(config, indent=2, sort_keys=True) + "\n"


def stage(
    checkpoint: Checkpoint,
    out: str | Path,
    repo_id: str,
    revision: str | None = None,
    base_model_id: str | None = None,
    license: str | None = None,
    link: bool = False,
) -> Staged:
    """Write into the empty (or new) folder ``out`` exactly what a push uploads.

    That is the folder's top-level weights, configs and processor files (PUBLISHED_SUFFIXES; no pickles, no
    sub-folders such as checkpoints), summary.json, the generated README.md, and for adapters an
    adapter_config.json whose base is the Hub id. ``link`` hard-links files instead of copying them.
    Raises a UsageError if a staged file (weights aside) holds the user's Hugging Face token.
    """
    check_repo_id(repo_id)
    copied: dict[str, Path] = {}
    left_out = []
    for path in sorted(checkpoint.path.iterdir()):
        if path.is_file() and path.suffix in PUBLISHED_SUFFIXES and path.name not in REPLACED:
            copied[path.name] = path
        elif path.name not in REPLACED:
            left_out.append(path.name + "/" * path.is_dir())
    if checkpoint.summary_path is not None:
        copied["summary.json"] = checkpoint.summary_path
    written = {"README.md": str(model_card(checkpoint, repo_id, revision, base_model_id, license))}
    if checkpoint.kind == "adapter":
        del copied["adapter_config.json"]
        written["adapter_config.json"] = _adapter_config_for_hub(checkpoint, checkpoint.base_model(base_model_id))
    _refuse_token(copied, written)
    folder = Path(out)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UsageError(f"{out} exists and is not an empty folder")
    folder.mkdir(parents=True, exist_ok=True)
    for name, path in copied.items():
        _place(path, folder / name, link)
    for name, text in written.items():
        (folder / name).write_text(text, encoding="utf-8")
    return Staged(folder, sorted([*copied, *written]), left_out)


def _refuse_token(copied: dict[str, Path], written: dict[str, str]) -> None:
    """Raise a UsageError naming the files to publish (weights aside) that contain the token, never the token."""
    token = get_token()
    if not token:
        return
    leaking = [name for name, text in written.items() if token in text]
    leaking += [
        name for name, path in copied.items() if path.suffix != ".safetensors" and token.encode() in path.read_bytes()
    ]
    if leaking:
        raise UsageError(
            f"{', '.join(sorted(leaking))} would publish your Hugging Face token; remove it from the source"
        )


def push(
    source: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    base_model_id: str | None = None,
    summary: str | Path | None = None,
    license: str | None = None,
) -> tuple[CommitInfo, Staged]:
    """Create ``repo_id`` if needed (private if asked), the branch ``revision`` if needed, and upload the staged folder.

    The token comes from ``HF_TOKEN`` or the login cache; without one nothing is called. Hub and network errors
    become one-line UsageErrors.
    """
    token = get_token()
    if not token:
        raise UsageError("no Hugging Face token: set HF_TOKEN or log in with `hf auth login`")
    check_repo_id(repo_id)
    checkpoint = read_checkpoint(source, summary)
    api = HfApi(token=token)
    with _staging_folder(checkpoint.path) as tmp:
        staged = stage(checkpoint, Path(tmp) / "upload", repo_id, revision, base_model_id, license, link=True)
        message = commit_message or default_commit_message(checkpoint)
        try:
            api.create_repo(repo_id, private=private or None, exist_ok=True)
            if revision and revision != "main":
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            info = api.upload_folder(
                repo_id=repo_id, folder_path=staged.folder, revision=revision, commit_message=message
            )
        except (OSError, ValueError, HfHubHTTPError) as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UsageError(f"cannot push to {repo_id}: {first_line}") from exc
    return info, staged


def default_commit_message(checkpoint: Checkpoint) -> str:
    """``Upload npo_gd adapter (forget10)``, ``Upload gold model (retain90+tofu)``..."""
    if checkpoint.kind == "adapter":
        return f"Upload {checkpoint.method or 'unlearned'} adapter ({checkpoint.forget or 'CLEAR'})"
    return f"Upload {checkpoint.kind} model" + (f" ({checkpoint.trained_split})" if checkpoint.trained_split else "")
