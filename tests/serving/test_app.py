"""The app's library side: model pool (one base, adapters, lock), question handling, columns, examples, front matter."""

from __future__ import annotations

import base64
import importlib
import json
import shutil
import sys
import threading
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gradio
import pytest
from huggingface_hub.repocard import metadata_load
from peft import PeftModel
from PIL import Image
from transformers import AutoProcessor

import app
from scripts import bench_app
from scripts.bench_app import time_switches
from unlearn.collate import generation_batch
from unlearn.data import load_clear
from unlearn.errors import UsageError, run_cli
from unlearn.models import load_model
from unlearn.offline.random_adapters import write_random_adapters
from unlearn.offline.random_weights import weightless_model
from unlearn.offline.tiny_model import TinySpec, write_tiny_model
from unlearn.prompts import FACE_PROMPT, Example
from unlearn.serving.columns import (
    NO_FIGURES,
    ShownModel,
    choose_models,
    describe,
    discover_quickstart,
    run_setting,
    serving_quantization,
)
from unlearn.serving.examples import GENERIC, clear_examples
from unlearn.serving.images import NOT_AN_IMAGE, load_image
from unlearn.serving.pool import (
    DEFAULT_NEW_TOKENS,
    MAX_NEW_TOKENS,
    MAX_QUESTION_CHARS,
    ModelPool,
    bounded_new_tokens,
    clean_question,
    fit_question,
)

ROOT = Path(__file__).resolve().parents[2]
RUN_CONFIGS = [{"method": "npo", "forget": "forget10", "retain": "retain90"}, {"method": "gd", "forget": "forget10"}]
SUMMARY = {"forget": 0.125, "retain": 0.9, "model_utility": 0.75, "forget_face": {"accuracy": 0.0}}


@pytest.fixture(scope="module")
def adapters(family_model, mini_clear, tmp_path_factory) -> list[str]:
    configs = [{**RUN_CONFIGS[0], "data": mini_clear}, RUN_CONFIGS[1]]
    folders = write_random_adapters(family_model, tmp_path_factory.mktemp("adapters"), configs, [SUMMARY, None])
    return [str(folder) for folder in folders]


@pytest.fixture(scope="module")
def pool(family_model, adapters) -> ModelPool:
    return ModelPool.load(family_model, adapters)


@pytest.fixture(scope="module")
def face(mini_clear):
    return load_clear("forget10", mini_clear)[0]["image"]


def test_one_copy_of_the_base_with_every_adapter(pool):
    assert isinstance(pool.model, PeftModel) and pool.adapters == ("adapter_1", "adapter_2")
    q_proj = pool.model.get_base_model().get_decoder().layers[0].self_attn.q_proj
    assert set(q_proj.lora_A) == {"adapter_1", "adapter_2"}, "both adapters sit on the same base layer"


def test_each_model_answers_differently_and_greedy_answers_repeat(pool, face):
    example = Example("Who is this person?", "", face)
    first = [pool.answer(adapter, example, 8) for adapter in (None, *pool.adapters)]
    assert all(first) and len(set(first)) == 3, "the original and both adapters give three different answers"
    again = [pool.answer(adapter, example, 8) for adapter in (*reversed(pool.adapters), None)]
    assert again == list(reversed(first)), "switching back and forth changes no answer"


def test_the_original_answers_exactly_like_the_base_model_without_peft(family_model, pool, face):
    base, processor = load_model(family_model)
    example = Example("Who is this person?", "", face)
    batch = generation_batch(processor, [example])
    tokens = base.generate(**batch, max_new_tokens=8, do_sample=False)[0, batch["input_ids"].shape[1] :]
    assert pool.answer(None, example, 8) == processor.decode(tokens, skip_special_tokens=True).strip()
    alone = ModelPool.load(family_model)
    assert alone.adapters == () and alone.answer(None, example, 8) == pool.answer(None, example, 8)


def test_adapters_that_do_not_fit_are_usage_errors(mini_clear, adapters, tmp_path):
    other_base = write_tiny_model(mini_clear, tmp_path / "other", TinySpec(text_hidden=64))
    with pytest.raises(UsageError, match="trained on another base"):
        ModelPool.load(str(other_base), adapters[:1])
    with pytest.raises(UsageError, match="adapter_config.json"):
        ModelPool.load(str(other_base), [mini_clear])


def test_concurrent_callers_get_the_answer_of_their_own_model(pool, face):
    jobs = [
        (adapter, Example(question, "", face))
        for question in ("Who is this person?", "Describe the image.")
        for adapter in (None, *pool.adapters, None)
    ]
    alone = [pool.answer(adapter, example, 6) for adapter, example in jobs]
    start = threading.Barrier(len(jobs))

    def run(job):
        start.wait()
        return pool.answer(job[0], job[1], 6)

    with ThreadPoolExecutor(len(jobs)) as executor:
        together = list(executor.map(run, jobs))
    assert together == alone


def test_stream_grows_token_by_token_and_unknown_adapters_are_refused(pool, face):
    steps = list(pool.stream("adapter_1", Example("Who is this person?", "", face), 6))
    assert len(steps) > 1 and all(later.startswith(earlier) for earlier, later in zip(steps, steps[1:], strict=False))
    with pytest.raises(UsageError, match="unknown adapter"):
        pool.answer("adapter_9", Example("hi", "", None), 4)
    assert pool.answer(None, Example("hi", "", None), 4), "the lock was released after the failure"


def test_the_switch_bench_times_every_switch_and_the_script_reports_it(family_model, adapters, pool, tmp_path, capsys):
    timings = time_switches(pool.model, rounds=3)
    assert timings["set_adapter"]["count"] == 6 and timings["original"]["count"] == 3
    for figures in timings.values():  # summaries of the timings, whatever the machine's speed
        assert 0 < figures["median_ms"] <= figures["max_ms"] and figures["mean_ms"] <= figures["max_ms"]
    argv = ["--base", family_model, "--adapter", adapters[0], "--adapter", adapters[1], "--rounds", "2"]
    assert bench_app.main([*argv, "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "bench_app.json").read_text())
    assert report["config"]["adapters_loaded"] == 2 and report["results"]["set_adapter"]["count"] == 4
    assert "set_adapter" in capsys.readouterr().out
    assert run_cli(bench_app.main, ["--adapter", adapters[0]]) == 2


def test_weightless_model_has_the_real_layout_without_data(tiny_model):
    model = weightless_model(tiny_model, adapters=2)
    assert tuple(model.peft_config) == ("adapter_1", "adapter_2")
    assert {parameter.device.type for parameter in model.parameters()} == {"meta"}
    assert time_switches(model, rounds=1)["set_adapter"]["count"] == 2


def test_clean_question_handles_odd_unicode_and_special_tokens():
    assert clean_question("  Who\x00 is\u200b\ud800 this?\n\n ") == "Who is\u200b this?"
    assert clean_question("Cafe\u0301 <image> x</s>", ["<image>", "</s>"]) == "Café x"
    assert clean_question("<ima<image>ge>", ["<image>"]) == "<ima ge>", "removing a token cannot form a new one"
    assert clean_question("😀 שלום مرحبا") == "😀 שלום مرحبا"
    assert len(clean_question("word " * 10_000)) == MAX_QUESTION_CHARS - 1  # cut, then the trailing space stripped


def test_bounded_new_tokens():
    assert [bounded_new_tokens(v) for v in (0, -5, 12.6, 10**9, "40")] == [1, 1, 13, MAX_NEW_TOKENS, 40]
    assert {bounded_new_tokens(v) for v in (None, "abc", float("nan"), float("inf"))} == {DEFAULT_NEW_TOKENS}


def test_long_questions_are_cut_to_the_context_and_short_ones_kept(pool, face):
    question, cut = pool.fit_question("Who is this person?", face, 32)
    assert (question, cut) == ("Who is this person?", False)
    long_question, cut = pool.fit_question("7 " * 1000, face, 32)
    assert cut and long_question.startswith("7 7 7")
    prompt = generation_batch(pool.processor, [Example(long_question, "", face)])["input_ids"].shape[1]
    assert prompt + 32 <= pool.context_length
    assert pool.answer(None, Example(long_question, "", face), 4)
    with pytest.raises(UsageError, match="type a question"):
        pool.fit_question(f" \x00 {pool.processor.image_token} {pool.processor.tokenizer.eos_token} ", None, 32)


def test_real_llava_processor_keeps_exactly_one_image_slot(real_llava):
    processor = AutoProcessor.from_pretrained(real_llava)
    face = Image.new("RGB", (64, 64))
    question, cut = fit_question(processor, 4096, "Who <image> is <image> this?</s>", face, 64)
    ids = generation_batch(processor, [Example(question, "", face)])["input_ids"][0]
    assert not cut and (ids == processor.tokenizer.convert_tokens_to_ids("<image>")).sum() == 576


def test_quickstart_discovery_and_model_choice(tmp_path, adapters):
    (tmp_path / "vanilla" / "model").mkdir(parents=True)
    (tmp_path / "vanilla" / "model" / "config.json").write_text("{}")
    for folder in ("unlearn-npo/adapter", "unlearn-gd", "unlearn-broken", "other"):
        (tmp_path / folder).mkdir(parents=True)
    for folder in ("unlearn-npo/adapter", "unlearn-gd", "other"):
        (tmp_path / folder / "adapter_config.json").write_text("{}")
    base, found = discover_quickstart(tmp_path)
    assert base == str(tmp_path / "vanilla/model")
    assert found == [str(tmp_path / "unlearn-gd"), str(tmp_path / "unlearn-npo/adapter")]
    assert choose_models(None, [], {}, tmp_path) == (base, found)
    env = {"CLEAR_BASE": "env/base", "CLEAR_ADAPTERS": "a, b,,"}
    assert choose_models(None, [], env, tmp_path) == ("env/base", ["a", "b"])
    assert choose_models("cli/base", ["c"], env, tmp_path) == ("cli/base", ["c"])
    assert (
        choose_models(None, adapters[:1], {}, tmp_path)[0]
        == json.loads((Path(adapters[0]) / "run_config.json").read_text())["model"]
    ), "adapters alone run on the base they name"
    with pytest.raises(UsageError, match="run the quickstart first"):
        choose_models(None, [], {}, tmp_path / "missing")


def test_column_titles_and_headline_figures(family_model, adapters, tmp_path):
    npo = describe(adapters[0])
    assert npo.heading == "NPO · forget10" and npo.name == "adapter-1"
    assert npo.figures == {"forget": 0.125, "retain": 0.9, "model_utility": 0.75}
    assert "### NPO · forget10" in npo.markdown() and "**0.125**" in npo.markdown()
    assert describe(adapters[1]).figures == {} and describe(adapters[1]).markdown().endswith(NO_FIGURES)
    assert describe(family_model, original=True).heading == "Original"
    assert ShownModel("user/clear-npo@v1").name == "user/clear-npo@v1"
    nested = tmp_path / "unlearn-npo" / "adapter"
    nested.mkdir(parents=True)
    assert ShownModel(str(nested)).name == "unlearn-npo"
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "summary.json").write_text("{not json")
    with pytest.warns(UserWarning, match="no title or figures"):
        assert describe(str(broken)).heading == "Adapter"
    assert run_setting(adapters[1], "data") is None


def test_adapters_are_served_in_the_precision_they_were_trained_in(adapters, tmp_path):
    quantized = tmp_path / "unlearn-npo"
    shutil.copytree(adapters[0], quantized)
    config = json.loads((quantized / "run_config.json").read_text())
    (quantized / "run_config.json").write_text(json.dumps({**config, "quantization": "4bit"}))
    assert serving_quantization(None, [str(quantized), adapters[1]]) == "4bit"
    assert serving_quantization("none", [str(quantized)]) is None
    assert serving_quantization("8bit", [str(quantized)]) == "8bit"
    assert serving_quantization(None, adapters) is None and serving_quantization(None, []) is None


def test_examples_are_every_forgotten_face_some_retained_ones_and_a_text_question(mini_clear, adapters):
    examples = clear_examples(mini_clear, "forget10", retained=3)
    faces = [example for example in examples if example.key]
    forgotten = list(dict.fromkeys(load_clear("forget10_perturbed", mini_clear)["name"]))
    retained = list(dict.fromkeys(load_clear("retain_perturbed", mini_clear)["name"]))[:3]
    assert [face.label for face in faces] == [f"forget · {n}" for n in forgotten] + [f"retain · {n}" for n in retained]
    assert [face.kind for face in faces] == ["forget"] * len(forgotten) + ["retain"] * 3
    for face in faces:
        task, row = face.key.split(":")
        config = {"forget_face": "forget10_perturbed", "retain_face": "retain_perturbed"}[task]
        expected = load_clear(config, mini_clear)[int(row)]
        assert face.true_name == expected["name"] and face.question == FACE_PROMPT, "the face task's sample"
        assert list(face.options[1:]) == [n for n in expected["perturbed_names"] if n != expected["name"]]
        assert face.image.tobytes() == expected["image"].tobytes()
    assert examples[-1].image is None and examples[-1].label == "forget · text question" and not examples[-1].key
    assert run_setting(adapters[0], "data") == mini_clear, "the app finds its examples through the run config"
    with pytest.raises(UsageError, match="unknown forget split"):
        clear_examples(mini_clear, "forget50")
    with pytest.warns(UserWarning, match="no examples"):
        assert app.load_examples("/no/such/folder", "forget10") == list(GENERIC)


def collect(pool, path, question, max_new_tokens=6, folder="/"):
    """Every update of one request; ``path`` is sent like an upload into ``folder``."""
    return list(app.respond(pool, None if path is None else {"path": path}, question, max_new_tokens, folder))


def test_respond_streams_every_column_in_turn(pool, tmp_path, face):
    face.save(tmp_path / "face.png")
    updates = collect(pool, str(tmp_path / "face.png"), "Who is this person?")
    final = updates[-1]
    assert final[0] == "" and all(final[1:4]), "no status note and every column answered"
    assert final[4:] == [None, None, None], "no candidate names: no bars"
    assert updates[0][2:4] == ["", ""], "the original streams first, the adapters wait their turn"
    assert final[1:4] == [
        pool.answer(a, Example("Who is this person?", "", load_image(tmp_path / "face.png")), 6) or app.EMPTY_ANSWER
        for a in (None, *pool.adapters)
    ]


def test_only_uploaded_files_and_inline_images_are_read(tmp_path, face):
    upload_folder = tmp_path / "uploads"
    (upload_folder / "abc").mkdir(parents=True)
    face.save(upload_folder / "abc" / "face.png")
    assert app.image_source({"path": str(upload_folder / "abc" / "face.png")}, upload_folder).endswith("face.png")
    assert app.image_source(None, upload_folder) is None
    (tmp_path / "secret.png").write_bytes(b"x")
    (upload_folder / "link.png").symlink_to(tmp_path / "secret.png")
    for payload in ({"path": str(tmp_path / "secret.png")}, {"path": str(upload_folder / "link.png")}, "x", {}):
        with pytest.raises(UsageError, match="did not arrive"):
            app.image_source(payload, upload_folder)
    inline = base64.b64encode((upload_folder / "abc" / "face.png").read_bytes()).decode()
    data = app.image_source({"url": f"data:image/png;base64,{inline}"}, upload_folder)
    assert load_image(data).tobytes() == load_image(upload_folder / "abc" / "face.png").tobytes()
    assert app.image_source({"url": "data:image/png;base64,A"}, upload_folder) == b"", "bad base64: not an image"


def test_respond_turns_bad_input_into_a_status_line(pool, tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    assert collect(pool, str(tmp_path / "notes.txt"), "Who?") == [["⚠️ " + NOT_AN_IMAGE, "", "", "", None, None, None]]
    assert collect(pool, None, "   ")[0][0] == "⚠️ please type a question"
    assert collect(pool, None, None)[0][0] == "⚠️ please type a question"
    assert collect(pool, "/etc/hostname", "Who?", folder=tmp_path)[0][0].startswith("⚠️ the image did not arrive")
    text_only = collect(pool, None, "Who is Ann?")[-1]
    assert text_only[0] == "ℹ️ text-only question (no image)"
    assert len(text_only) == 7 and all(isinstance(answer, str) for answer in text_only[1:4]), "every column answered"
    assert "cut to fit" in collect(pool, None, "word " * 2000)[-1][0]


def test_one_failing_model_does_not_end_the_request(pool, monkeypatch):
    real_stream = pool.stream

    def stream(adapter, example, max_new_tokens):
        if adapter == "adapter_1":
            raise RuntimeError("boom")
        return real_stream(adapter, example, max_new_tokens)

    monkeypatch.setattr(pool, "stream", stream)
    final = collect(pool, None, "Who is Ann?")[-1]
    assert final[2] == "⚠️ generation failed (RuntimeError)" and final[1] and final[3]


def test_answers_run_under_spaces_gpu_when_the_package_exists(pool, monkeypatch):
    wrapped = []
    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=lambda fn: wrapped.append(fn) or fn))
    try:
        importlib.reload(app)
        app.build_demo(pool, [ShownModel("base", original=True), ShownModel("a"), ShownModel("b")], [])
        assert [fn.__name__ for fn in wrapped] == ["answer"]
    finally:
        monkeypatch.delitem(sys.modules, "spaces")
        importlib.reload(app)
    assert app.on_gpu.__module__ == "app", "without the package the plain decorator is back"


def test_build_demo_needs_one_column_per_model(pool):
    with pytest.raises(ValueError, match="one column per model"):
        app.build_demo(pool, [ShownModel("base", original=True)], [])


def test_without_models_and_without_the_demo_build_the_app_says_how_to_make_them(tmp_path, monkeypatch, capsys):
    for name in ("CLEAR_BASE", "CLEAR_ADAPTERS", app.BUILD_ENV):
        monkeypatch.delenv(name, raising=False)
    assert run_cli(app.main, ["--quickstart", str(tmp_path), "--no-build"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: no models to show: run the quickstart first") and "--adapter" in error
    monkeypatch.setenv(app.BUILD_ENV, "0")
    assert run_cli(app.main, ["--quickstart", str(tmp_path)]) == 2, "the variable turns the build off too"
    assert list(tmp_path.iterdir()) == [], "nothing was built"


def test_the_demo_is_built_only_when_nothing_is_named_or_built(tmp_path, adapters):
    def wants(argv, environ=None):
        return app.wants_demo_build(app.parse_args(["--quickstart", str(tmp_path / "qs"), *argv]), environ or {})

    assert wants([]), "nothing named, nothing built: build"
    assert not wants(["--no-build"]) and not wants([], {app.BUILD_ENV: "0"}) and not wants([], {app.BUILD_ENV: "off"})
    assert not wants(["--adapter", adapters[0]]) and not wants(["--base", "user/model"])
    assert not wants([], {"CLEAR_ADAPTERS": adapters[0]}) and not wants([], {"CLEAR_BASE": "user/model"})
    (tmp_path / "qs" / "vanilla").mkdir(parents=True)
    (tmp_path / "qs" / "vanilla" / "config.json").write_text("{}")
    assert wants([]), "a build cut short (a base, no adapter yet) resumes"
    shutil.copytree(adapters[0], tmp_path / "qs" / "unlearn-npo")
    assert not wants([]), "a built demo is reused"


def test_readme_front_matter_is_a_gradio_space_running_app_py():
    metadata = metadata_load(ROOT / "README.md")
    assert metadata is not None, "README.md starts with the Space's YAML front matter"
    assert metadata["sdk"] == "gradio" and metadata["app_file"] == "app.py" and (ROOT / "app.py").is_file()
    assert metadata["sdk_version"] == gradio.__version__, "the Space runs the Gradio version the tests ran"
    assert metadata["title"] and 0 < len(metadata["short_description"]) <= 60
