"""scripts.probe (membership so far): probes.json for the adapter, vanilla and gold, resuming, and bad input."""

from __future__ import annotations

import json

import pytest

from eval.evaluator import evaluate
from eval.leakage import HEADLINE, LEAKAGE_TASKS, forgotten_share
from eval.membership import MIN_GAP, recovery
from eval.probes import PRECISION_TASKS, membership_sets, spread
from eval.relearning import FIGURES, SPLITS, relearning_splits
from eval.rephrased import VARIANTS
from scripts import probe
from unlearn.data import load_clear
from unlearn.errors import run_cli
from unlearn.models import load_model
from unlearn.offline.random_adapters import write_random_adapters


@pytest.fixture(scope="module")
def setup(tiny_model, mini_clear, tmp_path_factory):
    """A gold evaluation folder (the tiny model stands in for gold) and a random adapter with its run_config."""
    root = tmp_path_factory.mktemp("probe")
    model, processor = load_model(tiny_model)
    evaluate(model, processor, mini_clear, tasks=["forget_face"], max_samples=2, bootstrap=0, output_dir=root / "gold")
    adapter = write_random_adapters(tiny_model, root / "adapters", [{"method": "npo", "forget": "forget10"}])[0]
    return root, adapter


def argv(tiny_model, mini_clear, root, adapter, *extra):
    return [
        *("--model", tiny_model, "--adapter", str(adapter), "--gold", str(root / "gold")),
        *("--data", mini_clear, "--output_dir", str(root / "out"), "--max_samples", "4", *extra),
    ]


def test_spread_picks_evenly_spaced_examples():
    assert spread(list(range(10)), 4) == [0, 3, 6, 9]
    assert spread([1, 2], 5) == [1, 2]


def test_membership_sets_are_forget_and_as_many_retain_examples(mini_clear):
    forget, retain = membership_sets(mini_clear, "forget10", max_samples=6)
    assert len(forget) == len(retain) == 6
    forget_names = set(load_clear("forget10", mini_clear)["name"])
    retain_names = set(load_clear("retain90", mini_clear)["name"])
    captions = [e for e in forget if e.image is not None]
    assert captions and all(any(name in e.answer for name in forget_names) for e in captions)
    assert not any(name in e.answer for e in retain for name in forget_names - retain_names)


def test_probes_json_holds_model_vanilla_and_gold_with_counts_and_resumes(tiny_model, mini_clear, setup, capsys):
    root, adapter = setup
    assert probe.main(argv(tiny_model, mini_clear, root, adapter, "--probes", "membership")) == 0
    assert "**Membership inference**" in capsys.readouterr().out, "the robustness table is printed"
    figures = json.loads((root / "out" / "probes.json").read_text())
    membership = figures["membership"]
    for name in ("model", "vanilla", "gold"):
        assert membership[name]["samples"] == {"forget": 4, "retain": 4}
        assert set(membership[name]["auc"]) == {"loss", "zlib", "min_k", "min_k_plus_plus"}
        assert all(0.0 <= auc <= 1.0 for auc in membership[name]["auc"].values())
    assert membership["model"]["auc"] != membership["vanilla"]["auc"], "the random adapter changes the scores"
    assert membership["vanilla"]["auc"] == membership["gold"]["auc"], "the tiny model is both vanilla and gold here"
    assert set(membership["gap_from_gold"]) == set(membership["model"]["auc"])
    logged = [json.loads(line) for line in (root / "out" / "probes" / "membership" / "model" / "forget.jsonl").open()]
    assert len(logged) == 4 and set(logged[0]) == {"prompt", "answer", "loss", "zlib", "min_k", "min_k_plus_plus"}
    capsys.readouterr()
    before = (root / "out" / "probes.json").read_bytes()
    assert probe.main(argv(tiny_model, mini_clear, root, adapter, "--probes", "membership")) == 0
    assert "already in" in capsys.readouterr().out and (root / "out" / "probes.json").read_bytes() == before


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--probes": "relearn"}, "unknown probes"),
        ({"--relearn_lr": "0"}, "--relearn_lr"),
        ({"--gold": "nowhere"}, "not found"),
        ({"--k": "0"}, "--k"),
        ({"--forget": "forget05"}, "unlearned forget10, not forget05"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(tiny_model, mini_clear, setup, tmp_path, capsys, change, message):
    root, adapter = setup
    args = argv(tiny_model, mini_clear, root, adapter)
    for flag, value in change.items():
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    assert run_cli(probe.main, args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_an_adapter_without_its_run_config_is_refused(tiny_model, mini_clear, setup, tmp_path, capsys):
    root, _ = setup
    assert run_cli(probe.main, argv(tiny_model, mini_clear, root, tmp_path)) == 2
    assert "run_config.json" in capsys.readouterr().err


def test_the_precision_probe_really_loads_4bit_8bit_and_merged_models(tiny_model, mini_clear, setup, tmp_path):
    root, adapter = setup
    out = tmp_path / "precision"
    args = argv(tiny_model, mini_clear, root, adapter, "--probes", "precision", "--max_samples", "2")
    args[args.index("--output_dir") + 1] = str(out)
    assert probe.main(args) == 0
    figures = json.loads((out / "probes.json").read_text())["precision"]
    stored = {"4bit": ["uint8"], "8bit": ["int8"], "merged": ["float32"]}  # NF4 packs two weights per byte
    for precision, dtypes in stored.items():
        for name in ("model", "vanilla"):
            run = figures[precision][name]
            assert run["language_weight_dtypes"] == dtypes, (precision, name)
            assert run["samples"] == dict.fromkeys(PRECISION_TASKS, 2)
        with_adapter = figures[precision]["model"]["lora_layers"]
        assert (with_adapter == 0) == (precision == "merged"), "merged: the adapter is in the weights, no LoRA layer"
        assert figures[precision]["vanilla"]["lora_layers"] == 0
        assert isinstance(figures[precision]["lost"], bool)
    assert figures["lost_at"] == [p for p in ("4bit", "8bit", "merged") if figures[p]["lost"]]


def test_the_rephrased_probe_covers_every_variant_for_adapter_and_vanilla(tiny_model, mini_clear, setup, tmp_path):
    root, adapter = setup
    args = argv(tiny_model, mini_clear, root, adapter, "--probes", "rephrased", "--max_samples", "2")
    args[args.index("--output_dir") + 1] = str(tmp_path)
    assert probe.main(args) == 0
    figures = json.loads((tmp_path / "probes.json").read_text())["rephrased"]
    for name in ("model", "vanilla"):
        assert set(figures[name]) == set(VARIANTS)
        assert all(v["samples"] == 2 and 0 <= v["probability"] <= 1 for v in figures[name].values())
    assert figures["model"] != figures["vanilla"]
    assert set(figures["gold"]) == set(VARIANTS), "gold is probed beside them"
    logged = [json.loads(line) for line in (tmp_path / "probes" / "rephrased" / "model" / "grayscale.jsonl").open()]
    assert len(logged) == 2 and all(set(r) == {"id", "option_losses", "probability", "correct"} for r in logged)
    assert sum(r["probability"] for r in logged) / 2 == pytest.approx(figures["model"]["grayscale"]["probability"])


def probe_into(tiny_model, mini_clear, root, adapter, out, *extra):
    args = argv(tiny_model, mini_clear, root, adapter, *extra)
    args[args.index("--output_dir") + 1] = str(out)
    assert probe.main(args) == 0
    return json.loads((out / "probes.json").read_text())


def test_the_relearning_probe_records_both_splits_for_adapter_and_gold(tiny_model, mini_clear, setup, tmp_path):
    root, adapter = setup
    extra = ("--probes", "relearning", "--max_samples", "2", "--relearn_steps", "2,1", "--relearn_lr", "1e-2")
    figures = probe_into(tiny_model, mini_clear, root, adapter, tmp_path, *extra)["relearning"]
    assert figures["steps"] == [1, 2] and figures["learning_rate"] == 1e-2
    splits = relearning_splits(mini_clear, "forget10", face_naming=False)
    for split in SPLITS:
        entry = figures[split]
        probed = {task: min(2, len(samples)) for task, samples in splits[split].samples.items()}
        assert entry["samples"] == probed and entry["relearn_examples"] == len(splits[split].examples)
        for name in ("model", "gold"):
            assert [point["steps"] for point in entry[name]] == [0, 1, 2]
            for point in entry[name]:
                for figure in FIGURES:
                    expected = recovery(point[figure], entry[name][0][figure], entry["vanilla"][figure])
                    assert point["recovery"][figure] == pytest.approx(expected, nan_ok=True)
            assert (tmp_path / "probes" / "relearning" / split / name / "step-2" / "forget_face.jsonl").is_file()
        assert entry["model"][2] != entry["model"][0], "relearning moved the adapter's figures"


def test_relearning_an_adapter_that_forgot_nothing_has_an_undefined_recovery(tiny_model, mini_clear, setup, tmp_path):
    root, _ = setup
    # lora_B = 0: the adapter leaves vanilla as it is, so there is nothing to recover
    untouched = write_random_adapters(tiny_model, tmp_path / "untouched", [{"method": "npo"}], std=0.0)[0]
    extra = ("--probes", "relearning", "--max_samples", "2", "--relearn_steps", "2", "--relearn_lr", "1e-2")
    figures = probe_into(tiny_model, mini_clear, root, untouched, tmp_path / "out", *extra)["relearning"]
    for split in SPLITS:
        start = figures[split]["model"][0]
        assert {figure: start[figure] for figure in FIGURES} == pytest.approx(figures[split]["vanilla"], abs=MIN_GAP)
        assert all(value is None for point in figures[split]["model"] for value in point["recovery"].values())
    text = (tmp_path / "out" / "probes.json").read_text()
    assert '"face_probability": null' in text and "NaN" not in text and "Infinity" not in text


def test_the_cross_modal_probe_fills_a_row_per_modality_unlearned(tiny_model, mini_clear, setup, tmp_path):
    root, adapter = setup
    configs = [{"method": "npo", "forget": "forget10", "forget_modality": m} for m in ("visual", "text")]
    visual, text = write_random_adapters(tiny_model, tmp_path / "modal", configs, seed=1)
    extra = ("--probes", "cross_modal", "--max_samples", "2", "--modality_adapters", str(visual), str(text))
    figures = probe_into(tiny_model, mini_clear, root, adapter, tmp_path / "out", *extra)["cross_modal"]
    assert set(figures["rows"]) == {"both", "visual", "text"}
    assert figures["samples"] == dict.fromkeys(LEAKAGE_TASKS, 2)
    assert figures["rows"]["visual"]["adapter"] == str(visual)
    for row in figures["rows"].values():
        for modality, key in HEADLINE.items():
            expected = forgotten_share(row["figures"][key], figures["vanilla"][key], figures["gold"][key])
            assert row["forgotten"][modality] == (None if expected is None else pytest.approx(expected))
    assert figures["rows"]["visual"]["figures"] != figures["rows"]["text"]["figures"]


def test_two_adapters_of_one_modality_and_another_forget_split_are_refused(
    tiny_model, mini_clear, setup, tmp_path, capsys
):
    root, adapter = setup
    configs = [{"method": "npo", "forget": "forget10"}, {"method": "npo", "forget": "forget05"}]
    same, other_split = write_random_adapters(tiny_model, tmp_path, configs)
    for extra, message in (((str(same),), "same modality"), ((str(other_split),), "unlearned forget05")):
        args = argv(tiny_model, mini_clear, root, adapter, "--modality_adapters", *extra)
        capsys.readouterr()
        assert run_cli(probe.main, args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0]


def test_a_gold_evaluation_of_another_forget_split_is_refused(tiny_model, mini_clear, setup, tmp_path, capsys):
    root, adapter = setup
    model, processor = load_model(tiny_model)
    gold = tmp_path / "gold05"
    evaluate(model, processor, mini_clear, "forget05", ["forget_face"], max_samples=1, bootstrap=0, output_dir=gold)
    args = argv(tiny_model, mini_clear, root, adapter)
    args[args.index("--gold") + 1] = str(gold)
    capsys.readouterr()
    assert run_cli(probe.main, args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is on forget05, not forget10" in err[0]
