"""``USER/NAME[@REV]`` resolves through the Hugging Face cache offline, for models and adapters alike."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants

from tests.hub_helpers import lora_weights, write_adapter
from unlearn.errors import UsageError
from unlearn.hub.card import describe_adapter, read_checkpoint
from unlearn.hub.push import stage
from unlearn.hub.resolve import hub_id, resolve, split_revision
from unlearn.models import load_model

MAIN, V1, BASE = "a" * 40, "b" * 40, "c" * 40


def _cache(cache: Path, repo_id: str, folder: Path, commit: str, refs: tuple[str, ...]) -> None:
    """Put ``folder`` into a Hub-cache layout as ``repo_id`` at ``commit``, with branch/tag ``refs`` pointing to it."""
    storage = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(folder, storage / "snapshots" / commit, ignore=shutil.ignore_patterns("checkpoint-*"))
    for ref in refs:
        (storage / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
        (storage / "refs" / ref).write_text(commit)


@pytest.fixture(scope="module")
def adapters(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two adapters with different weights: the one on ``main`` and the one tagged ``v1``."""
    return {
        ref: write_adapter(tiny_model, tmp_path_factory.mktemp(ref), seed=i) for i, ref in enumerate(("main", "v1"))
    }


@pytest.fixture
def hub_cache(adapters, tiny_model, tmp_path, monkeypatch) -> Path:
    """A prepared Hugging Face cache holding alice/tiny (the model) and alice/tiny-npo, offline: on ``main`` the
    adapter folder as written, tagged ``v1`` the folder ``scripts.push`` would upload for the other adapter."""
    cache = tmp_path / "hub"
    _cache(cache, "alice/tiny", Path(tiny_model), BASE, ("main",))
    _cache(cache, "alice/tiny-npo", adapters["main"], MAIN, ("main",))
    pushed = stage(read_checkpoint(adapters["v1"]), tmp_path / "pushed", "alice/tiny-npo", "v1", "alice/tiny").folder
    _cache(cache, "alice/tiny-npo", pushed, V1, ("v1",))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def test_model_and_adapter_at_revisions_load_from_the_cache_offline_like_local_folders(adapters, tiny_model, hub_cache):
    local, _ = load_model(tiny_model, adapter=str(adapters["v1"]))
    hub, _ = load_model("alice/tiny", adapter="alice/tiny-npo@v1")
    expected, loaded = lora_weights(local), lora_weights(hub)
    assert expected.keys() == loaded.keys() and len(loaded) > 0
    assert all(torch.equal(expected[name], loaded[name]) for name in expected)
    assert any(weight.abs().sum() > 0 for name, weight in loaded.items() if "lora_B" in name), "non-trivial adapter"
    main, _ = load_model("alice/tiny@main", adapter="alice/tiny-npo")
    assert not all(torch.equal(expected[name], weight) for name, weight in lora_weights(main).items()), "main != v1"


def test_resolve_follows_refs_and_commits_and_fails_in_one_line_when_uncached(hub_cache):
    snapshots = hub_cache / "models--alice--tiny-npo" / "snapshots"
    assert resolve("alice/tiny-npo") == str((snapshots / MAIN).resolve())
    assert resolve("alice/tiny-npo@v1") == str((snapshots / V1).resolve())
    assert resolve(f"alice/tiny-npo@{V1}") == str((snapshots / V1).resolve())
    with pytest.raises(UsageError, match="cannot get alice/tiny-npo@v2 from the Hugging Face Hub") as error:
        resolve("alice/tiny-npo@v2")
    assert "\n" not in str(error.value)
    with pytest.raises(UsageError, match="not a Hub repo id"):
        resolve("./missing/folder")


def test_hub_id_maps_repo_ids_and_cache_snapshots_but_not_local_folders(tmp_path, monkeypatch):
    assert hub_id("alice/tiny-npo@v1") == "alice/tiny-npo@v1"
    assert hub_id(f"/root/.cache/huggingface/hub/models--alice--tiny-npo/snapshots/{MAIN}") == f"alice/tiny-npo@{MAIN}"
    assert hub_id(str(tmp_path)) is None
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs" / "vanilla").mkdir(parents=True)
    assert hub_id("outputs/vanilla") is None, "an existing folder is local even when shaped like a repo id"
    assert split_revision("alice/tiny-npo@refs/pr/1") == ("alice/tiny-npo", "refs/pr/1")


def test_a_pushed_adapter_describes_itself_with_its_hub_base(hub_cache):
    info = describe_adapter("alice/tiny-npo@v1")
    assert (info["name"], info["method"], info["forget"]) == ("alice/tiny-npo@v1", "npo_gd", "forget10")
    assert info["base_model"] == "alice/tiny", "the uploaded adapter config names the base by its Hub id"
    assert info["figures"]["forget"] == 0.2
