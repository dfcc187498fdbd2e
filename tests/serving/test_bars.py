"""The app's bars (how sure each model is of each name), its opening view, a broken adapter's column, the results
panel's runs and the progress page of the first start."""

from __future__ import annotations

import io
import json
import math
import shutil
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

import app
from eval.candidates import candidate_probabilities
from eval.metrics import option_probability
from eval.scoring import answer_losses
from eval.served import original_figures, original_folder, served_plot, served_runs
from tests.app_servers import free_port
from unlearn.errors import UsageError
from unlearn.offline.random_adapters import write_random_adapters
from unlearn.prompts import Example
from unlearn.serving.building import BUILDING_TITLE, SHOWN_LINES, Transcript, run_with_progress_page
from unlearn.serving.columns import ShownModel, describe
from unlearn.serving.examples import clear_examples
from unlearn.serving.pool import ModelPool

CONFIGS = [{"method": "npo", "forget": "forget10"}, {"method": "gd", "forget": "forget10"}]


@pytest.fixture(scope="module")
def adapters(tiny_model, mini_clear, tmp_path_factory) -> list[str]:
    configs = [{**config, "data": mini_clear} for config in CONFIGS]
    return [str(folder) for folder in write_random_adapters(tiny_model, tmp_path_factory.mktemp("bars"), configs)]


@pytest.fixture(scope="module")
def pool(tiny_model, adapters) -> ModelPool:
    return ModelPool.load(tiny_model, adapters)


@pytest.fixture(scope="module")
def faces(mini_clear):
    return {face.key: face for face in clear_examples(mini_clear, "forget10") if face.key}


def test_candidate_probabilities_are_the_softmax_of_minus_the_mean_answer_losses(pool, faces):
    face = next(iter(faces.values()))
    example = Example(face.question, "", face.image)
    groups = [[example.with_answer(name) for name in face.options]]
    losses = pool.run(None, lambda model, processor: answer_losses(model, processor, groups)[0])
    by_hand = [math.exp(-loss) / sum(math.exp(-other) for other in losses) for loss in losses]
    shares = pool.run(None, lambda model, processor: candidate_probabilities(model, processor, example, face.options))
    assert shares == pytest.approx(by_hand, abs=1e-12) and sum(shares) == pytest.approx(1.0)
    assert shares[0] == pytest.approx(option_probability(np.array([losses]))[0], abs=1e-15), "the evaluation's p"
    assert candidate_probabilities(pool.model, pool.processor, example, []) == []


def collect(pool, faces, **request):
    values = {"image_payload": None, "question": "", "max_new_tokens": 4, "upload_folder": "/", **request}
    return list(app.respond(pool, examples=faces, **values))


def test_a_gallery_face_gets_each_models_bars_with_the_true_name_marked_then_its_answer(pool, faces):
    key, face = next(iter(faces.items()))
    updates = collect(pool, faces, example_key=key, question="ignored: the example's own question is asked")
    final = updates[-1]
    example = Example(face.question, "", face.image)
    for column, slot in enumerate((None, *pool.adapters)):
        shares = pool.run(slot, lambda m, p: candidate_probabilities(m, p, example, face.options))
        assert final[4 + column] == app.bar_values(face.options, shares, face.true_name)
        assert f"{app.TRUE_MARK}{face.true_name}" in final[4 + column] and len(final[4 + column]) == len(face.options)
        expected = pool.answer(slot, Example(face.question.strip(), "", face.image), 4) or app.EMPTY_ANSWER
        assert final[1 + column] == expected
    assert updates[0][4] is not None and updates[0][1] == "", "a column's bars come before its answer streams"
    assert len({json.dumps(bars, sort_keys=True) for bars in final[4:]}) == 3, "each model has its own bars"


def test_typed_candidate_names_get_bars_without_a_true_mark_and_bad_lists_a_status_line(pool, faces):
    final = collect(pool, faces, question="Who is this?", candidates="Ann Lee, Bo Chen ,, Ann Lee,  Cy Dunn")[-1]
    assert final[0] == "ℹ️ text-only question (no image)"
    assert all(list(bars) == ["Ann Lee", "Bo Chen", "Cy Dunn"] for bars in final[4:]), "cleaned, duplicates dropped"
    assert all(sum(bars.values()) == pytest.approx(1.0) for bars in final[4:])
    assert collect(pool, faces, question="Who?", candidates="Only One") == [
        ["⚠️ give at least two candidate names, separated by commas", "", "", "", None, None, None]
    ]
    many = ", ".join(f"Name {i}" for i in range(app.MAX_CANDIDATES + 1))
    assert collect(pool, faces, question="Who?", candidates=many)[0][0].startswith("⚠️ give at most")
    assert collect(pool, faces, question="Who?", example_key="forget_face:999")[0][0].startswith("⚠️ unknown example")
    assert collect(pool, faces, question="Who?", candidates=12)[-1][4:] == [None] * 3, "not text: no names"


def test_the_page_opens_on_the_first_forgotten_face_already_answered(pool, faces):
    face = next(iter(faces.values()))
    opened = app.first_view(lambda *request: app.respond(pool, *request[:3], "/", *request[3:], faces), [face])
    assert opened == collect(pool, faces, example_key=face.key, max_new_tokens=app.DEFAULT_NEW_TOKENS)[-1]
    assert app.first_view(lambda *request: iter([]), [face]) is None, "a failed first answer opens an empty page"
    assert app.first_view(lambda *request: iter([[1]]), []) is None


def test_a_broken_adapter_gets_its_error_in_its_column_and_the_others_serve(tiny_model, adapters, faces, tmp_path):
    broken = Path(shutil.copytree(adapters[0], tmp_path / "broken"))
    weights = broken / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(UsageError, match="broken"):
        ModelPool.load(tiny_model, [adapters[1], str(broken)])
    pool = ModelPool.load(tiny_model, [str(broken), adapters[1]], keep_going=True)
    assert pool.slots == ("adapter_1", "adapter_2") and pool.adapters == ("adapter_2",)
    assert list(pool.failed) == ["adapter_1"] and "\n" not in pool.failed["adapter_1"]
    assert str(broken) in pool.failed["adapter_1"]
    final = collect(pool, faces, question="Who is Ann?")[-1]
    assert final[2] == f"⚠️ not loaded: {pool.failed['adapter_1']}" and final[1] and final[3]
    columns = [describe(tiny_model, original=True), ShownModel(str(broken), error=pool.failed["adapter_1"])]
    assert "⚠️ could not be loaded" in columns[1].markdown()
    app.build_demo(pool, [*columns, describe(adapters[1])], [])  # the page builds with the broken column


def _summary(folder: Path, quantization: str | None, **extra) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    summary = {"forget": 0.1, "model_utility": 0.8, "config": {"quantization": quantization, **extra}}
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def test_the_results_panel_shows_the_adapters_their_gold_and_the_original_at_the_served_precision(tmp_path):
    gold = _summary(tmp_path / "gold-4bit", "4bit")
    adapter = _summary(tmp_path / "unlearn-npo", "4bit", gold=str(gold))
    (adapter / "adapter_config.json").write_text("{}")
    vanilla = _summary(tmp_path / "vanilla", None)
    _summary(tmp_path / "vanilla-4bit", "4bit")
    runs = served_runs(str(vanilla), [str(adapter)], "4bit")
    assert [run.name for run in runs] == ["unlearn-npo", "gold-4bit", "vanilla-4bit"]
    assert [run.name for run in served_runs(str(vanilla), [str(adapter)], None)][-1] == "vanilla"
    assert original_folder(str(vanilla), "8bit") is None, "no evaluation in the served precision: no row"
    assert original_figures(str(vanilla), "4bit") == {"forget": 0.1, "model_utility": 0.8}
    assert original_figures(str(vanilla), "8bit") is None
    assert served_runs(str(tmp_path / "none"), [], None) == []
    plot = served_plot(runs, tmp_path / "plot" / "tradeoff.png")
    assert plot is not None and plot.stat().st_size > 0
    assert served_plot([], tmp_path / "empty.png") is None


def test_the_transcript_writes_through_and_keeps_the_last_complete_lines():
    terminal = io.StringIO()
    transcript = Transcript(terminal)
    transcript.write("first line\nsecond ")
    assert transcript.text() == "first line", "a partial line waits for its end"
    for i in range(SHOWN_LINES + 3):
        transcript.write(f"line {i}\n")
    assert transcript.text().splitlines()[0] == "line 3" and len(transcript.text().splitlines()) == SHOWN_LINES
    assert terminal.getvalue().startswith("first line\nsecond line 0\n"), "everything reaches the terminal"


def test_the_progress_page_is_served_while_the_job_runs_and_closed_after():
    port = free_port()
    seen = {}

    def job() -> str:
        print("stage one ...")
        print("stage one: finished")
        seen["page"] = httpx.get(f"http://127.0.0.1:{port}/", timeout=10).text
        return "built"

    assert run_with_progress_page(job, "making the demo", "127.0.0.1", port) == ("built", port)
    assert f'og:title" content="{BUILDING_TITLE}"' in seen["page"] and "window.location.reload" in seen["page"]
    assert not isinstance(sys.stdout, Transcript), "stdout is given back"
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
