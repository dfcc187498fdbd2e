"""The evaluator on the tiny model and mini-CLEAR: files, summary, batching = one-sample loop, determinism, and the
paper-code mistakes (generation without the image, random prompts, dataset-wide truth ratios, aligned forget
quality, empty ROUGE logs) shown absent."""

from __future__ import annotations

import copy
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import eval.scoring
from eval.bench import compare_records
from eval.evaluator import EvalArguments, evaluate, evaluate_checkpoint
from eval.logs import read_records, read_summary, truth_ratios
from eval.metrics import forget_quality, rouge_l_recall
from eval.scoring import answer_losses
from eval.tasks import TASKS
from unlearn.collate import training_batch
from unlearn.data import load_clear
from unlearn.errors import UsageError
from unlearn.models import LoraSettings, add_lora, load_model

SAMPLES = 5  # per task: enough for two batches of BATCH, one of them partial
BATCH = 3
OPTION_FIGURES = ["rouge_l", "probability", "truth_ratio", "accuracy"]
FIGURES = {
    "forget_caption": ["rouge_l", "probability", "truth_ratio"],
    "retain_caption": ["rouge_l", "probability", "truth_ratio"],
    "forget_face": OPTION_FIGURES,
    "retain_face": OPTION_FIGURES,
    "real_faces": OPTION_FIGURES,
    "real_world": OPTION_FIGURES,
    "forget_text": ["rouge_l", "probability"],
    "retain_text": ["rouge_l", "probability"],
}


@pytest.fixture(scope="module")
def loaded(family_model):
    return load_model(family_model)


@pytest.fixture(scope="module")
def run(loaded, mini_clear, tmp_path_factory) -> Path:
    """One batched evaluation of every task (first SAMPLES samples each)."""
    out = tmp_path_factory.mktemp("eval") / "tiny_eval"
    evaluate(*loaded, mini_clear, batch_size=BATCH, max_samples=SAMPLES, output_dir=out, progress=False)
    return out


def test_summary_has_every_task_figure_composite_interval_and_what_was_evaluated(run, family_model, mini_clear):
    summary = read_summary(run)
    for task, names in FIGURES.items():
        entry = summary[task]
        assert list(entry) == [*(key for name in names for key in (name, f"{name}_ci")), "samples"]
        assert entry["samples"] == len(read_records(run, task)) == min(SAMPLES, entry["samples"])
        for name in names:
            low, high = entry[f"{name}_ci"]
            assert 0.0 <= low <= entry[name] <= high <= 1.0 and math.isfinite(entry[name])
    for composite in ("forget", "retain", "real", "model_utility"):
        low, high = summary[f"{composite}_ci"]
        assert 0.0 <= low <= summary[composite] <= high <= 1.0
    assert "forget_quality_ks" not in summary, "no forget quality without a gold evaluation"
    assert summary["model"] == family_model and summary["adapter"] is None and summary["data"] == mini_clear
    fingerprint = summary["data_fingerprint"]
    assert len(fingerprint["content_sha256"]) == 64 and fingerprint["source"] == str(Path(mini_clear).resolve())
    assert summary["forget_split"] == "forget10"
    config = summary["config"]
    assert config["tasks"] == list(TASKS) and config["batch_size"] == BATCH and config["max_samples"] == SAMPLES
    assert set(config["max_new_tokens"]) == set(TASKS), "every task generates (ROUGE-L everywhere)"
    assert config["bootstrap"] == 1000 and config["seed"] == 0


def test_every_composite_is_recomputed_from_the_jsonl_logs_by_hand(run):
    """CLEAR's composites from the per-sample logs alone: probabilities from the losses, truth ratios
    R = exp(mean perturbed loss - paraphrased/true loss), min(R, 1/R) on forget tasks, max(0, 1 - 1/R) elsewhere."""

    def by_hand(task: str) -> dict[str, float]:
        records = read_records(run, task)
        forget = task.startswith("forget")
        if "option_losses" in records[0]:
            losses = [r["option_losses"] for r in records]
            probability = [math.exp(-row[0]) / sum(math.exp(-x) for x in row) for row in losses]
            ratios = [math.exp(np.mean(row[1:]) - row[0]) for row in losses]
        else:
            probability = [math.exp(-r["loss"]) for r in records]
            ratios = [math.exp(np.mean(r["perturbed_losses"]) - r["paraphrased_loss"]) for r in records]
        scores = [min(r, 1 / r) if forget else max(0.0, 1 - 1 / r) for r in ratios]
        rouge = [rouge_l_recall(r["generation"], r["reference"]) for r in records]
        return {"rouge_l": np.mean(rouge), "probability": np.mean(probability), "truth_ratio": np.mean(scores)}

    def hmean(values: list[float]) -> float:
        return 0.0 if min(values) == 0 else len(values) / sum(1 / v for v in values)

    figures = {task: by_hand(task) for task in TASKS if task not in ("forget_text", "retain_text")}
    summary = read_summary(run)
    for task, values in figures.items():
        for name, value in values.items():
            assert summary[task][name] == pytest.approx(value, rel=1e-9), (task, name)

    def pr_tr(*tasks: str) -> list[float]:
        return [figures[t][f] for t in tasks for f in ("probability", "truth_ratio")]

    assert summary["forget"] == pytest.approx(hmean(pr_tr("forget_caption", "forget_face")))
    assert summary["retain"] == pytest.approx(hmean(pr_tr("retain_caption", "retain_face")))
    assert summary["real"] == pytest.approx(hmean(pr_tr("real_faces", "real_world")))
    utility = [figures[t][f] for t in ("real_faces", "real_world", "retain_caption", "retain_face") for f in figures[t]]
    assert len(utility) == 12 and summary["model_utility"] == pytest.approx(hmean(utility))


def test_each_task_writes_one_record_per_sample_with_losses_and_metrics(run, mini_clear):
    for task in TASKS:
        records = read_records(run, task)
        samples = list(TASKS[task].samples(load_clear(TASKS[task].config("forget10"), mini_clear)))
        assert [r["id"] for r in records] == [sample.id for sample in samples[:SAMPLES]]
        for r in records:
            assert r["prompt"] and r["reference"]
            if "option_losses" in r:
                assert r["options"][0] == r["reference"] and len(r["option_losses"]) == len(r["options"]) >= 2
                assert len(set(r["options"])) == len(r["options"]), "the true answer once, no duplicates"
                assert r["correct"] == (r["prediction"] == r["reference"])
            else:
                assert r["loss"] > 0 and r["probability"] == pytest.approx(math.exp(-r["loss"]))


def test_rouge_logs_hold_the_generation_reference_and_score(run):
    """The paper's code left its ROUGE logs empty: here each record can be rescored from its own texts."""
    for task in TASKS:
        records = read_records(run, task)
        assert records
        for r in records:
            assert isinstance(r["generation"], str) and r["generation"]
            assert r["rouge_l"] == rouge_l_recall(r["generation"], r["reference"])
        assert read_summary(run)[task]["rouge_l"] == pytest.approx(np.mean([r["rouge_l"] for r in records]))


def test_logged_truth_ratios_are_per_sample_and_recomputable(run, loaded, mini_clear, tmp_path):
    records = read_records(run, "forget_caption")
    for r in records:
        assert len(r["perturbed_losses"]) == len(r["perturbed"]) >= 1
        assert r["truth_ratio"] == pytest.approx(math.exp(np.mean(r["perturbed_losses"]) - r["paraphrased_loss"]))
    alone = evaluate(*loaded, mini_clear, tasks=["forget_caption"], max_samples=1, output_dir=tmp_path, progress=False)
    assert alone["config"]["max_samples"] == 1
    # alone and in a padded batch, losses agree to float rounding (1e-5), so the ratio does to the same relative size
    assert read_records(tmp_path, "forget_caption")[0]["truth_ratio"] == pytest.approx(
        records[0]["truth_ratio"], rel=1e-5
    )


def test_batched_equals_one_sample_loop(run, loaded, mini_clear, tmp_path):
    """Right padding for scoring and left padding for generation give the loop's losses (1e-5) and texts."""
    processor = loaded[1]
    prompts = [r["prompt"] for r in read_records(run, "real_world")[:BATCH]]
    lengths = {len(processor.tokenizer(p)["input_ids"]) for p in prompts}
    assert len(lengths) > 1, "the first batch mixes prompt lengths, so padding is exercised"
    evaluate(*loaded, mini_clear, max_samples=SAMPLES, loop=True, output_dir=tmp_path, progress=False)
    for task in TASKS:
        assert compare_records(read_records(tmp_path, task), read_records(run, task), atol=1e-5) == [], task


def test_answer_loss_matches_the_models_own_loss_for_one_example(loaded, mini_clear, run):
    model, processor = loaded
    sample = next(TASKS["retain_caption"].samples(load_clear("retain_perturbed", mini_clear)))
    example = sample.scored()[0]
    with torch.no_grad():
        expected = model(**training_batch(processor, [example])).loss.item()
    assert answer_losses(model, processor, [[example]])[0][0] == pytest.approx(expected, abs=1e-5)
    assert read_records(run, "retain_caption")[0]["loss"] == pytest.approx(expected, abs=1e-5)


def test_two_evaluations_of_one_model_are_identical(run, loaded, mini_clear, tmp_path):
    evaluate(*loaded, mini_clear, batch_size=BATCH, max_samples=SAMPLES, output_dir=tmp_path, progress=False)
    for name in [f"{task}.jsonl" for task in TASKS] + ["summary.json"]:
        assert (tmp_path / name).read_bytes() == (run / name).read_bytes(), name


def test_two_models_get_the_same_prompts(run, loaded, mini_clear, tmp_path):
    """The paper's code drew prompts at random per model; here they depend on the row alone."""
    other = copy.deepcopy(loaded[0])
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in other.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    tasks = ["forget_caption", "retain_face", "real_faces", "forget_text"]
    evaluate(other, loaded[1], mini_clear, tasks=tasks, max_samples=SAMPLES, output_dir=tmp_path, progress=False)
    for task in tasks:
        mine, theirs = read_records(run, task), read_records(tmp_path, task)
        assert [r["prompt"] for r in mine] == [r["prompt"] for r in theirs]
        losses = "option_losses" if "option_losses" in mine[0] else "loss"
        assert [r[losses] for r in mine] != [r[losses] for r in theirs], "the two models do differ"


def test_generation_input_contains_the_image(loaded, mini_clear, tmp_path, monkeypatch):
    """The paper's code rebuilt the generation prompt without the image."""
    model, processor = loaded
    seen = []
    generate = model.generate

    def spy(**inputs):
        seen.append(inputs)
        return generate(**inputs)

    monkeypatch.setattr(model, "generate", spy)
    tasks = ["forget_caption", "forget_text"]
    evaluate(model, processor, mini_clear, tasks=tasks, batch_size=BATCH, output_dir=tmp_path, progress=False)
    image_token, tokens_per_image = model.config.image_token_id, 16
    caption_calls = [i for i in seen if "pixel_values" in i]
    assert caption_calls and len(caption_calls) < len(seen), "captions generate with images, text questions without"
    for inputs in caption_calls:
        rows = inputs["input_ids"].shape[0]
        images = inputs["image_grid_thw"] if "image_grid_thw" in inputs else inputs["pixel_values"]  # Qwen: grids
        assert images.shape[0] == rows
        assert ((inputs["input_ids"] == image_token).sum(dim=1) == tokens_per_image).all()
        assert (inputs["attention_mask"][:, -1] == 1).all(), "generation prompts are padded on the left"


def test_an_image_is_encoded_once_per_sample_and_sharing_changes_nothing(loaded, mini_clear, run, monkeypatch):
    model, processor = loaded
    samples = list(TASKS["retain_face"].samples(load_clear("retain_perturbed", mini_clear)))
    groups = [s.scored() for s in samples[:2]]
    encoded = []

    def count(module, args, kwargs, output):  # images per call: Qwen2-VL passes one grid per image
        encoded.append(kwargs["grid_thw"].shape[0] if "grid_thw" in kwargs else args[0].shape[0])

    hook = model.get_encoder(modality="image").register_forward_hook(count, with_kwargs=True)
    try:
        shared = answer_losses(model, processor, groups, scoring="per_option")
    finally:
        hook.remove()
    assert encoded == [2], f"2 samples x {len(groups[0])} options need 2 image encodings, got {encoded}"
    monkeypatch.setattr(eval.scoring, "shares_image_features", lambda model: False)
    np.testing.assert_allclose(answer_losses(model, processor, groups, scoring="per_option"), shared, atol=1e-5)


def test_self_as_gold_gives_forget_quality_one(run, loaded, mini_clear, tmp_path):
    summary = evaluate(
        *loaded,
        mini_clear,
        tasks=["forget_caption"],
        max_samples=SAMPLES,
        gold_dir=str(run),
        output_dir=tmp_path,
        progress=False,
    )
    assert summary["forget_quality_ks"] == 1.0 and summary["forget_quality_js"] == 1.0
    forget_captions = len(read_records(run, "forget_caption"))
    assert summary["forget_quality_samples"] == {"model": forget_captions, "gold": forget_captions}
    assert summary["config"]["gold"] == str(run.resolve())
    assert forget_quality(truth_ratios(tmp_path), truth_ratios(run)) == summary["forget_quality_ks"]


def test_the_gold_model_can_be_its_own_gold_in_one_run(loaded, mini_clear, tmp_path):
    """gold_dir = output_dir: no earlier evaluation needed; the run's own truth ratios are the gold."""
    summary = evaluate(
        *loaded,
        mini_clear,
        tasks=["forget_caption"],
        max_samples=2,
        gold_dir=str(tmp_path),
        output_dir=tmp_path,
        progress=False,
    )
    assert summary["forget_quality_ks"] == 1.0 and summary["forget_quality_js"] == 1.0


def test_gold_of_another_forget_split_or_without_truth_ratios_is_refused(run, loaded, mini_clear, tmp_path):
    with pytest.raises(UsageError, match="forget05"):
        evaluate(*loaded, mini_clear, forget="forget05", gold_dir=str(run), output_dir=tmp_path)
    with pytest.raises(UsageError, match="forget_caption"):
        evaluate(*loaded, mini_clear, tasks=["forget_face"], gold_dir=str(run), output_dir=tmp_path)
    with pytest.raises(UsageError, match="summary.json"):
        evaluate(*loaded, mini_clear, gold_dir=str(tmp_path / "missing"), output_dir=tmp_path)


def test_a_gold_run_of_other_data_samples_or_ids_is_refused_before_any_work(run, loaded, mini_clear, tmp_path):
    """Forget quality compares the same samples of the same data; a gold run of anything else is one clear error."""
    other_data = tmp_path / "other-data"
    shutil.copytree(mini_clear, other_data)
    with (other_data / "README.md").open("a") as card:
        card.write("\n")  # other bytes: another content hash
    options = {"tasks": ["forget_caption"], "gold_dir": str(run), "progress": False}
    with pytest.raises(UsageError, match="other data"):
        evaluate(*loaded, str(other_data), max_samples=SAMPLES, output_dir=tmp_path / "a", **options)
    with pytest.raises(UsageError, match="max_samples 5, this one 3"):
        evaluate(*loaded, mini_clear, max_samples=3, output_dir=tmp_path / "b", **options)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists(), "refused before any work"
    tampered = tmp_path / "tampered-gold"
    shutil.copytree(run, tampered)
    records = read_records(tampered, "forget_caption")
    records[0]["id"] = 99
    (tampered / "forget_caption.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    options["gold_dir"] = str(tampered)
    with pytest.raises(UsageError, match="other forget-caption samples"):
        evaluate(*loaded, mini_clear, max_samples=SAMPLES, output_dir=tmp_path / "c", **options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tasks": ["forget_everything"]}, "unknown tasks"),
        ({"forget": "forget50"}, "unknown forget split"),
        ({"batch_size": 0}, "batch_size"),
        ({"max_samples": 0}, "max_samples"),
    ],
)
def test_bad_options_are_usage_errors(loaded, mini_clear, tmp_path, options, message):
    with pytest.raises(UsageError, match=message):
        evaluate(*loaded, mini_clear, output_dir=tmp_path, **options)
    assert not (tmp_path / "summary.json").exists()


def test_lora_adapter_and_4bit_checkpoint_evaluate(loaded, family_model, mini_clear, run, tmp_path):
    """A fresh LoRA adapter (B = 0) changes nothing; a 4-bit load goes through the wrapper and is recorded."""
    peft_model = add_lora(copy.deepcopy(loaded[0]), LoraSettings(projector=True, vision=True))
    evaluate(
        peft_model,
        loaded[1],
        mini_clear,
        tasks=["forget_face"],
        max_samples=SAMPLES,
        output_dir=tmp_path / "lora",
        progress=False,
    )
    assert compare_records(read_records(tmp_path / "lora", "forget_face"), read_records(run, "forget_face")) == []
    args = EvalArguments(
        model=family_model,
        data=mini_clear,
        output_dir=str(tmp_path / "q4"),
        tasks="real_world",
        max_samples=2,
        quantization="4bit",
    )
    summary = evaluate_checkpoint(args, progress=False)
    assert summary["config"]["quantization"] == "4bit" and "truth_ratio" in summary["real_world"]
    assert json.loads((tmp_path / "q4" / "summary.json").read_text())["model"] == family_model
