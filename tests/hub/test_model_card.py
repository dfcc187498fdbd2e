"""Model cards: the dry-run card parses and carries the metadata and figures; vanilla / gold cards say what they are."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import save_file

from scripts.push import main
from tests.hub_helpers import SUMMARY, run_config, write_adapter
from tests.robustness_probes import PROBES
from unlearn.errors import UsageError
from unlearn.figures import HEADLINE
from unlearn.hub.card import Checkpoint, describe_adapter, model_card, read_checkpoint
from unlearn.hub.push import stage
from unlearn.hub.robustness import GUIDE, robustness_table

FIGURES = ("forget", "retain", "real", "model_utility", "forget_quality_ks", "forget_quality_js")


@pytest.fixture(scope="module")
def adapter(family_model: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_adapter(family_model, tmp_path_factory.mktemp("adapter"))


def _model_folder(tiny_model: str, folder: Path, run_config: dict | None) -> Path:
    shutil.copytree(tiny_model, folder)
    if run_config is not None:
        (folder / "run_config.json").write_text(json.dumps(run_config))
    return folder


def test_dry_run_card_parses_with_every_metadata_field_and_the_summary_figures(adapter, tmp_path):
    out = tmp_path / "out"
    options = {"--repo": "alice/tiny-npo", "--base-model-id": "alice/tiny-vanilla@v1", "--revision": "exp1"}
    main(["--adapter", str(adapter), "--dry-run", str(out), *[item for pair in options.items() for item in pair]])
    card = ModelCard.load(out / "README.md")
    data = card.data
    assert data.library_name == "peft"
    assert data.base_model == "alice/tiny-vanilla"
    assert data.datasets == ["therem/CLEAR"]
    assert {"unlearning", "clear", "lora", "npo_gd"} <= set(data.tags)
    assert data.license == "unknown", "no card below the adapter names a license: never a made-up one"
    assert data.model_name == "tiny-npo"
    figures = {result.metric_type: result.metric_value for result in data.eval_results}
    assert figures == {key: SUMMARY[key] for key in FIGURES}
    assert {result.dataset_type for result in data.eval_results} == {"therem/CLEAR"}
    assert {result.dataset_config for result in data.eval_results} == {"forget10"}
    text = card.text
    assert "the persons of the CLEAR split `forget10`" in text and "`retain90`" in text
    assert "the unlearning method `npo_gd`" in text
    assert "| Forget quality (KS p) | 0.9 | – |" in text and "| Forget | 0.2 | [0.1, 0.3] |" in text
    assert "| forget_caption | 12 | – | 0.25 | 0.31 | 0.62 |" in text, "per task: samples, then its figures"
    assert "compares 12 forget-caption truth ratios with the gold model's 12" in text
    assert "| beta | `0.5` |" in text, "the method's settings"
    assert 'PeftModel.from_pretrained(base, "alice/tiny-npo", revision="exp1")' in text
    assert 'from_pretrained("alice/tiny-vanilla", revision="v1")' in text
    assert "--adapter alice/tiny-npo@exp1" in text, "how to open it in the app"
    assert "[alice/tiny-vanilla@v1](https://huggingface.co/alice/tiny-vanilla)" in text, "links the model below"


def test_forget_split_prefers_run_config_and_a_numeric_top_level_forget_is_a_figure():
    summary = {"forget": 0.25, "forget_split": "forget05", "config": {"forget": "forget01"}}
    assert Checkpoint(Path("."), "adapter", {"forget": "forget10"}, summary).forget == "forget10"
    assert Checkpoint(Path("."), "adapter", {}, summary).forget == "forget05", "the evaluator's forget_split"
    assert Checkpoint(Path("."), "adapter", {}, {"config": {"forget": "forget01"}}).forget == "forget01"
    assert Checkpoint(Path("."), "adapter", {}, summary).figures == {"forget": 0.25}
    assert Checkpoint(Path("."), "adapter", {}, summary).retain == "retain95"
    split_at_top = Checkpoint(Path("."), "adapter", {}, {"forget": "forget01", "retain": 0.7, "real": None})
    assert split_at_top.forget == "forget01" and split_at_top.figures == {"retain": 0.7}


def test_settings_show_the_project_options_and_fold_the_other_training_arguments(adapter, tmp_path):
    folder = tmp_path / "adapter"
    shutil.copytree(adapter, folder)
    run_config = json.loads((folder / "run_config.json").read_text())
    (folder / "run_config.json").write_text(json.dumps({**run_config, "adam_beta1": 0.9, "target": "a|b"}))
    text = model_card(read_checkpoint(folder), "alice/x", base_model_id="alice/v").text
    settings, others = text.split("<details>")
    assert "| beta | `0.5` |" in settings and "| learning_rate | `0.001` |" in settings
    assert "| target | `a\\|b` |" in settings, "a pipe in a value does not break the table"
    assert "adam_beta1" not in settings and "| adam_beta1 | `0.9` |" in others


def test_base_model_comes_from_the_option_a_hub_id_or_a_hub_cache_snapshot_and_a_local_one_is_refused():
    commit = "a" * 40
    from_cache = {"base_model_name_or_path": f"/cache/hub/models--alice--vanilla/snapshots/{commit}"}
    assert Checkpoint(Path("."), "adapter", adapter_config=from_cache).base_model() == f"alice/vanilla@{commit}"
    local_first = Checkpoint(Path("."), "adapter", {"model": "/data/vanilla"}, {}, from_cache)
    assert local_first.base_model() == f"alice/vanilla@{commit}", "a Hub id found anywhere wins over a local path"
    local = Checkpoint(Path("."), "adapter", {"model": "/data/vanilla"})
    with pytest.raises(UsageError, match="--base-model-id"):
        local.base_model()
    assert local.base_model("bob/vanilla@v2") == "bob/vanilla@v2"
    with pytest.raises(UsageError, match="Hub id"):
        local.base_model("/data/vanilla")


def test_vanilla_and_gold_cards_say_what_they_are_and_link_their_base(tiny_model, tmp_path):
    base = "llava-hf/llava-1.5-7b-hf"
    vanilla = read_checkpoint(_model_folder(tiny_model, tmp_path / "v", {"split": "full+tofu", "model": base}))
    gold = read_checkpoint(_model_folder(tiny_model, tmp_path / "g", {"split": "retain90+tofu", "model": base}))
    assert (vanilla.kind, gold.kind) == ("vanilla", "gold")
    assert gold.forget == "forget10", "the persons the gold model never saw"
    for checkpoint, words in ((vanilla, "knows every person"), (gold, "never saw the persons of `forget10`")):
        card = ModelCard(str(model_card(checkpoint, f"alice/{checkpoint.kind}")))
        assert card.data.library_name == "transformers" and card.data.base_model == base
        assert checkpoint.kind in card.data.tags and words in card.text
        assert f"[{base}](https://huggingface.co/{base})" in card.text
        assert card.data.eval_results is None and "## Evaluation" not in card.text, "no summary, no figures"


def test_a_model_without_run_config_needs_no_base(tiny_model, tmp_path):
    checkpoint = read_checkpoint(_model_folder(tiny_model, tmp_path / "base", None))
    card = ModelCard(str(model_card(checkpoint, "alice/tiny")))
    assert checkpoint.kind == "model" and card.data.base_model is None and "Model stack" not in card.text


def test_folders_without_safetensors_weights_or_with_bad_json_are_refused(tmp_path):
    with pytest.raises(UsageError, match="neither a PEFT adapter"):
        read_checkpoint(tmp_path)
    (tmp_path / "adapter_config.json").write_text("{}")
    (tmp_path / "adapter_model.bin").write_bytes(b"pickle")
    with pytest.raises(UsageError, match="no adapter_model.safetensors"):
        read_checkpoint(tmp_path)
    (tmp_path / "adapter_model.safetensors").write_bytes(b"weights")
    (tmp_path / "run_config.json").write_text("[1, 2]")
    with pytest.raises(UsageError, match="JSON object"):
        read_checkpoint(tmp_path)
    (tmp_path / "run_config.json").write_text("{")
    with pytest.raises(UsageError, match="not valid JSON"):
        read_checkpoint(tmp_path)


def test_describe_adapter_gives_the_app_its_title_and_figures(adapter, family_model):
    info = describe_adapter(str(adapter))
    assert info["name"] == str(adapter) and info["path"] == str(adapter)
    assert (info["kind"], info["method"], info["forget"]) == ("adapter", "npo_gd", "forget10")
    assert info["base_model"] == family_model, "a local base is named by its folder"
    assert info["figures"] == {key: SUMMARY[key] for key in FIGURES}
    assert list(info["figures"]) == [key for key in HEADLINE if key in FIGURES], "in HEADLINE's order"


def test_license_and_architecture_come_from_the_base_and_are_unknown_otherwise(family_model, tmp_path):
    base = tmp_path / "base"
    shutil.copytree(family_model, base)
    (base / "README.md").write_text("---\nlicense: apache-2.0\n---\n# a base model\n")
    adapter = tmp_path / "adapter"
    write_adapter(str(base), adapter)
    checkpoint = read_checkpoint(adapter)
    assert checkpoint.license == "apache-2.0", "an adapter inherits its base's license"
    architecture = json.loads((base / "config.json").read_text())["architectures"][0]
    assert checkpoint.architecture == architecture and architecture.endswith("ForConditionalGeneration")
    text = str(model_card(checkpoint, "alice/x", base_model_id="alice/base"))
    assert "license: apache-2.0" in text and f"Architecture: `{architecture}`; license: `apache-2.0`" in text
    assert "license: mit" in str(model_card(checkpoint, "alice/x", base_model_id="alice/base", license="mit"))
    (base / "README.md").unlink()
    (base / "config.json").unlink()
    bare = read_checkpoint(adapter)
    assert (bare.license, bare.architecture) == ("unknown", "unknown")


def _fake_adapter(folder: Path, probes: dict | None) -> Path:
    """An adapter folder as read_checkpoint and stage see it (whole safetensors weights, one tensor, no model
    behind them), with probes.json when ``probes`` is given."""
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "alice/vanilla"}))
    save_file({"lora": torch.zeros(1)}, str(folder / "adapter_model.safetensors"))
    (folder / "run_config.json").write_text(json.dumps(run_config("alice/vanilla")))
    (folder / "summary.json").write_text(json.dumps(SUMMARY))
    if probes is not None:
        (folder / "probes.json").write_text(json.dumps(probes))
    return folder


def test_a_card_gets_a_robustness_section_only_when_the_folder_holds_probes_json(tmp_path):
    plain = read_checkpoint(_fake_adapter(tmp_path / "plain", None))
    probed = read_checkpoint(_fake_adapter(tmp_path / "probed", PROBES))
    assert plain.probes is None and probed.probes == PROBES
    without = model_card(plain, "alice/npo").text
    text = model_card(probed, "alice/npo").text
    assert "## Robustness" not in without and "probes.json" not in without
    before, rest = text.split("## Robustness\n")
    section, after = rest.split("## How to load")
    assert before + "## How to load" + after == without, "the rest of the card is the same"
    assert robustness_table(PROBES) in section and GUIDE in section
    assert "| 8bit | 0.021 | 0.021 | 0.832 | 0.832 | 0.600 | 0.980 | LOST | 30/30/40/40 |" in section
    assert "**Recovery**" in section and "**Gap from gold**" in section and "docs/evaluation.md" in section


def test_push_publishes_probes_json_beside_the_card(tmp_path):
    checkpoint = read_checkpoint(_fake_adapter(tmp_path / "probed", PROBES))
    staged = stage(checkpoint, tmp_path / "upload", "alice/npo")
    assert "probes.json" in staged.files
    assert json.loads((tmp_path / "upload" / "probes.json").read_text()) == PROBES
    assert "## Robustness" in (tmp_path / "upload" / "README.md").read_text()


def test_null_figures_are_n_a_on_the_card_and_left_out_of_its_metadata(tmp_path):
    """A summary written by dumps_strict holds a non-finite figure as null beside its reason, an older one may hold
    NaN itself: the card's table says n/a (why), the model-index and the app get finite numbers only."""
    folder = _fake_adapter(tmp_path / "npo", None)
    summary = {**SUMMARY, "forget": None, "forget_nonfinite": "nan", "forget_ci": [None, 0.3], "real": float("nan")}
    summary["forget_caption"] = {**SUMMARY["forget_caption"], "truth_ratio": None, "truth_ratio_nonfinite": "inf"}
    (folder / "summary.json").write_text(json.dumps(summary))  # Python's dumps writes the NaN as NaN
    checkpoint = read_checkpoint(folder)
    assert checkpoint.nonfinite_figures == {"forget": "nan", "real": "nan"}
    assert set(checkpoint.figures) == set(FIGURES) - {"forget", "real"}
    assert "truth_ratio" not in checkpoint.task_figures["forget_caption"]
    card = ModelCard(str(model_card(checkpoint, "alice/npo")))
    assert {result.metric_type for result in card.data.eval_results} == set(FIGURES) - {"forget", "real"}
    assert "| Forget | n/a (nan) | [–, 0.3] |" in card.text and "| Real | n/a (nan) | – |" in card.text
    assert "| forget_caption | 12 | – | 0.25 | 0.31 | – |" in card.text
    assert "NaN" not in str(card.data.to_dict()) and "nan" not in str(card.data.to_yaml())
    assert set(describe_adapter(str(folder))["figures"]) == set(FIGURES) - {"forget", "real"}
