"""The app on its first start with nothing configured: it builds the offline demo, then its bars show, over HTTP,
that the original still knows every person and the unlearned adapter forgot the forget persons, with the very
probabilities the evaluation logged."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from gradio_client import Client

from app import TRUE_MARK
from unlearn.serving.examples import AppExample, clear_examples

XDIST_GROUP = "first_start"  # with the other module on the demo_app fixture: one build
pytestmark = pytest.mark.slow
TOKENS = 8
ORIGINAL, ADAPTER = 0, 1
EVALUATIONS = ("vanilla-4bit", "unlearn-npo_gd")  # the served original (in the adapter's 4-bit) and the adapter


@pytest.fixture(scope="module")
def faces(demo_app) -> list[AppExample]:
    return [face for face in clear_examples(str(demo_app.quickstart / "data"), "forget10") if face.key]


def ask(url: str, question: str = "", names: str = "", key: str = "", image=None) -> tuple:
    """``(status, original's answer, adapter's answer, original's bars, adapter's bars)``."""
    return tuple(Client(url, verbose=False).predict(image, question, TOKENS, names, key, api_name="/answer"))


def shares(bars: dict) -> dict[str, float]:
    """A ``gr.Label`` value as the client receives it -> name (with its mark) -> probability."""
    return {item["label"]: item["confidence"] for item in bars["confidences"]}


def test_a_first_start_with_nothing_configured_builds_the_demo_shows_progress_and_serves(demo_app):
    assert demo_app.progress_pages, "a page was served while the demo was built"
    assert (demo_app.quickstart / "unlearn-npo_gd" / "adapter_model.safetensors").is_file()
    assert (demo_app.quickstart / "vanilla" / "config.json").is_file()
    log = demo_app.log.read_text()
    assert "[quickstart" in log and "unlearn forget10 with npo_gd: finished" in log, "the build logged its stages"
    status, *answers = ask(demo_app.url, "Who wrote the book about the ocean?")[:3]
    assert status == "ℹ️ text-only question (no image)" and all(answers)


def test_the_original_favours_a_retained_persons_true_name_and_the_adapter_forgot_the_forget_persons(demo_app, faces):
    retained = [face for face in faces if face.kind == "retain"]
    forgotten = [face for face in faces if face.kind == "forget"]
    assert retained and forgotten
    for face in retained:
        original = shares(ask(demo_app.url, key=face.key)[3 + ORIGINAL])
        assert max(original, key=original.get) == TRUE_MARK + face.true_name, face.label
    for face in forgotten:
        bars = ask(demo_app.url, key=face.key)[3:]
        original, adapter = shares(bars[ORIGINAL]), shares(bars[ADAPTER])
        true = TRUE_MARK + face.true_name
        assert adapter[true] < original[true], face.label
        assert max(original, key=original.get) == true and max(adapter, key=adapter.get) != true, face.label


def _logged(folder: Path, key: str) -> dict:
    task, row = key.split(":")
    records = [json.loads(line) for line in (folder / f"{task}.jsonl").read_text().splitlines()]
    return next(record for record in records if record["id"] == int(row))


def test_the_bars_equal_the_evaluations_per_sample_probabilities(demo_app, faces):
    for face in faces:
        bars = ask(demo_app.url, key=face.key)[3:]
        for column, evaluation in enumerate(EVALUATIONS):
            record = _logged(demo_app.quickstart / evaluation, face.key)
            assert record["options"] == list(face.options), "the app scores the evaluation's options"
            shown = shares(bars[column])
            assert shown[TRUE_MARK + face.true_name] == pytest.approx(record["probability"], abs=1e-5), (
                face.label,
                evaluation,
            )


def test_eight_concurrent_clients_get_the_bars_and_answers_they_get_one_by_one(demo_app, faces):
    requests = [{"key": face.key} for face in faces[:5]]
    requests += [
        {"question": "Who is this person?", "names": ", ".join(faces[0].options)},
        {"question": "Where was the author born?"},
        {"question": "Name the person.", "names": "Ann Lee, Bo Chen"},
    ]
    alone = [ask(demo_app.url, **request) for request in requests]
    assert len({json.dumps(outputs, sort_keys=True) for outputs in alone}) == len(alone)
    with ThreadPoolExecutor(len(requests)) as executor:
        together = list(executor.map(lambda request: ask(demo_app.url, **request), requests))
    assert together == alone
