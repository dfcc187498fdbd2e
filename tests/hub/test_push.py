"""``scripts.push``: repository creation and upload arguments, dry run, the token and its absence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from huggingface_hub import CommitInfo, HfApi, constants

from scripts.push import main
from tests.hub_helpers import write_adapter
from unlearn.errors import run_cli

TOKEN = "hf_TestTokenThatMustNeverAppear0123456789"
PUBLISHED = {
    "README.md",
    "adapter_config.json",
    "adapter_model.safetensors",
    "chat_template.jinja",
    "processor_config.json",
    "run_config.json",
    "summary.json",
    "tokenizer.json",
    "tokenizer_config.json",
}


@pytest.fixture(scope="module")
def adapter(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_adapter(tiny_model, tmp_path_factory.mktemp("adapter"))


@pytest.fixture
def no_login(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No token in the environment and an empty login cache."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "login" / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "login" / "stored_tokens"))


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict]]:
    """Replace HfApi's repo creation, branch creation and upload by a recorder (with the uploaded files' bytes)."""
    recorded: list[tuple[str, dict]] = []

    def create_repo(self, repo_id, **kwargs):
        recorded.append(("create_repo", {"repo_id": repo_id, "token": self.token, **kwargs}))

    def create_branch(self, repo_id, **kwargs):
        recorded.append(("create_branch", {"repo_id": repo_id, **kwargs}))

    def upload_folder(self, **kwargs):
        files = {path.name: path.read_bytes() for path in Path(kwargs["folder_path"]).iterdir()}
        recorded.append(("upload_folder", {**kwargs, "files": files}))
        url = f"https://huggingface.co/{kwargs['repo_id']}/commit/{'0' * 40}"
        return CommitInfo(commit_url=url, commit_message=kwargs["commit_message"], commit_description="", oid="0" * 40)

    for name, function in (("create_repo", create_repo), ("create_branch", create_branch)):
        monkeypatch.setattr(HfApi, name, function)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return recorded


def _push(adapter: Path, *extra: str) -> list[str]:
    return ["--adapter", str(adapter), "--repo", "alice/tiny-npo", "--base-model-id", "alice/tiny-vanilla", *extra]


def test_push_creates_the_repo_and_branch_and_uploads_the_staged_folder(adapter, calls, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    argv = _push(adapter, "--private", "--revision", "exp1", "--commit-message", "NPO on forget10")
    assert run_cli(main, argv) == 0
    assert [name for name, _ in calls] == ["create_repo", "create_branch", "upload_folder"]
    (_, repo), (_, branch), (_, upload) = calls
    assert repo == {"repo_id": "alice/tiny-npo", "token": TOKEN, "private": True, "exist_ok": True}
    assert branch == {"repo_id": "alice/tiny-npo", "branch": "exp1", "exist_ok": True}
    assert (upload["repo_id"], upload["revision"]) == ("alice/tiny-npo", "exp1")
    assert upload["commit_message"] == "NPO on forget10"
    assert set(upload["files"]) == PUBLISHED, "no pickle, no checkpoint folder"
    assert upload["files"]["adapter_model.safetensors"] == (adapter / "adapter_model.safetensors").read_bytes()
    assert upload["files"]["summary.json"] == (adapter / "summary.json").read_bytes()
    assert json.loads(upload["files"]["adapter_config.json"])["base_model_name_or_path"] == "alice/tiny-vanilla"
    assert b"https://huggingface.co/alice/tiny-vanilla" in upload["files"]["README.md"]
    assert not Path(upload["folder_path"]).exists(), "the staging folder is removed after the upload"
    output = capsys.readouterr()
    assert "https://huggingface.co/alice/tiny-npo/commit/" in output.out
    assert all(TOKEN.encode() not in content for content in upload["files"].values())
    assert TOKEN not in output.out + output.err


def test_without_private_or_revision_the_default_visibility_and_main_are_used(adapter, calls, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert run_cli(main, _push(adapter)) == 0
    assert [name for name, _ in calls] == ["create_repo", "upload_folder"]
    assert calls[0][1]["private"] is None and calls[1][1]["revision"] is None
    assert calls[1][1]["commit_message"] == "Upload npo_gd adapter (forget10)"


def test_the_login_cache_token_is_used_and_never_written_or_printed(adapter, calls, no_login, tmp_path, capsys):
    Path(constants.HF_TOKEN_PATH).parent.mkdir()
    Path(constants.HF_TOKEN_PATH).write_text(TOKEN)
    assert run_cli(main, _push(adapter)) == 0
    assert calls[0][1]["token"] == TOKEN
    out = tmp_path / "dry"
    assert run_cli(main, _push(adapter, "--dry-run", str(out))) == 0
    assert {path.name for path in out.iterdir()} == PUBLISHED
    assert all(TOKEN.encode() not in path.read_bytes() for path in out.iterdir())
    output = capsys.readouterr()
    assert TOKEN not in output.out + output.err
    assert len(calls) == 2, "a dry run calls nothing"


def test_push_without_a_token_exits_2_with_one_line_and_calls_nothing(adapter, calls, no_login, capsys):
    assert run_cli(main, _push(adapter)) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no Hugging Face token")
    assert calls == []


def test_a_folder_holding_the_token_is_refused_without_showing_it(adapter, calls, monkeypatch, tmp_path, capsys):
    leaky = tmp_path / "leaky"
    leaky.mkdir()
    for path in adapter.iterdir():
        if path.is_file():
            (leaky / path.name).write_bytes(path.read_bytes())
    (leaky / "run_config.json").write_text(json.dumps({"method": "npo_gd", "hub_token": TOKEN}))
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert run_cli(main, _push(leaky)) == 2
    err = capsys.readouterr().err
    assert "README.md, run_config.json would publish your Hugging Face token" in err and TOKEN not in err
    assert calls == []


def test_hub_errors_and_bad_arguments_are_one_line_errors(adapter, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # the real HfApi refuses to go online
    cases = [
        (_push(adapter), "error: cannot push to alice/tiny-npo: "),
        (["--adapter", str(adapter), "--repo", "alice/tiny-npo@v1"], "error: --repo must be USER/NAME"),
        (["--adapter", str(tmp_path / "missing"), "--repo", "alice/x"], "error: --adapter must be an existing folder"),
        (_push(adapter, "--dry-run", str(adapter)), "error: "),
        (_push(adapter, "--summary", str(tmp_path / "none.json")), "error: --summary must be an existing file"),
    ]
    for argv, start in cases:
        assert run_cli(main, argv) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(start), lines
        assert TOKEN not in lines[0]
