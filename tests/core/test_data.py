"""Split examples (captions, optional face naming, text answers) and the fingerprints that pin a run's data."""

from __future__ import annotations

import shutil

import pytest

from unlearn.data import data_fingerprint, load_clear, same_data, split_examples, world_examples
from unlearn.errors import UsageError
from unlearn.prompts import CAPTION_PROMPTS, FACE_PROMPT


def test_captions_and_text_are_trained_and_face_naming_only_when_asked(mini_clear):
    images = len(load_clear("forget10", mini_clear))
    texts = sum(1 for row in load_clear("forget10+tofu", mini_clear) if row["image"] is None and row["question"])
    plain = split_examples(mini_clear, "forget10")
    assert len(plain) == images + texts and not any(e.prompt == FACE_PROMPT for e in plain)
    assert all(e.prompt in CAPTION_PROMPTS for e in plain if e.image is not None), "CLEAR's caption questions"
    named = split_examples(mini_clear, "forget10", face_naming=True)
    faces = [e for e in named if e.prompt == FACE_PROMPT]
    assert len(faces) == images and {e.answer for e in faces} == set(load_clear("forget10", mini_clear)["name"])


def test_a_folder_is_pinned_by_its_content(mini_clear, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(mini_clear, copy)
    ours, theirs = data_fingerprint(mini_clear), data_fingerprint(str(copy))
    assert ours["content_sha256"] == theirs["content_sha256"] and len(ours["content_sha256"]) == 64
    assert same_data(ours, theirs), "the same bytes in another folder are the same data"
    (copy / "README.md").write_text((copy / "README.md").read_text() + " ")
    assert not same_data(ours, data_fingerprint(str(copy)))


def test_a_hub_id_is_pinned_by_its_cached_revision(tmp_path, monkeypatch):
    monkeypatch.setattr("unlearn.data.HF_HUB_CACHE", str(tmp_path))
    assert data_fingerprint("therem/CLEAR") == {"source": "therem/CLEAR", "revision": None, "content_sha256": None}
    refs = tmp_path / "datasets--therem--CLEAR" / "refs"
    refs.mkdir(parents=True)
    (refs / "main").write_text("0123abcd" * 5)
    pinned = data_fingerprint("therem/CLEAR")
    assert pinned["revision"] == "0123abcd" * 5
    assert same_data(pinned, dict(pinned)) and not same_data(pinned, {**pinned, "revision": "f" * 40})


def test_world_examples_are_the_true_answers_of_the_real_world_sets(mini_clear):
    faces, world = load_clear("real_faces", mini_clear), load_clear("real_world", mini_clear)
    examples = world_examples(mini_clear, ["real_faces", "real_world"])
    assert [e.answer for e in examples] == [*faces["answer"], *world["answer"]]
    assert all(e.prompt == FACE_PROMPT for e in examples[: len(faces)])
    assert [e.prompt for e in examples[len(faces) :]] == list(world["question"]), "bare questions, no options"


def test_a_hub_revision_is_loaded_and_pinned_by_its_commit(tmp_path, monkeypatch):
    monkeypatch.setattr("unlearn.data.HF_HUB_CACHE", str(tmp_path))
    commit = "4567cdef" * 5
    assert data_fingerprint(f"therem/CLEAR@{commit}") == {
        "source": "therem/CLEAR",
        "revision": commit,
        "content_sha256": None,
    }, "a commit pins itself"
    assert data_fingerprint("therem/CLEAR@v1")["revision"] == "v1", "an uncached ref is recorded as asked"
    refs = tmp_path / "datasets--therem--CLEAR" / "refs"
    refs.mkdir(parents=True)
    (refs / "v1").write_text(commit)
    (refs / "main").write_text(commit)
    assert data_fingerprint("therem/CLEAR@v1")["revision"] == commit
    assert same_data(data_fingerprint("therem/CLEAR@v1"), data_fingerprint("therem/CLEAR")), "one commit, two names"
    asked = []

    def fake_load_dataset(name, config, split, revision):
        asked.append((name, config, split, revision))
        raise FileNotFoundError("offline")

    monkeypatch.setattr("unlearn.data.datasets.load_dataset", fake_load_dataset)
    with pytest.raises(UsageError, match="therem/CLEAR@v1"):
        load_clear("forget10", "therem/CLEAR@v1")
    assert asked == [("therem/CLEAR", "forget10", "train", "v1")]
