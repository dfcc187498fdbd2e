"""Strict JSON: non-finite numbers are written as null with a reason, read back as the floats they were, and every
figure computed from the records is the same whether the records are in memory or read back from the files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from eval.logs import (
    log_truth_ratio_of,
    read_records,
    read_summary,
    truth_ratio_of,
    truth_ratios,
    truth_ratios_of,
    write_records,
    write_summary,
)
from eval.metrics import distribution_similarity, forget_quality
from eval.tasks import TASKS
from tests.strict_json import nonfinite_fields, strict_parse_tree
from unlearn.figures import dumps_strict, finite_json, jsonl_strict, loads_strict, restored, write_json_strict

LN2, LN4 = math.log(2.0), math.log(4.0)


def test_finite_json_writes_null_with_the_reason_beside_each_non_finite_number():
    value = {
        "truth_ratio": math.inf,
        "loss": 1.5,
        "perturbed_losses": [1.0, math.nan, -math.inf],
        "nested": {"x": np.float64(-np.inf), "y": np.float32(0.5)},
        "rows": [{"r": math.inf}],
        "n": 3,
        "flag": True,
        "name": "inf",
        "none": None,
    }
    assert finite_json(value) == {
        "truth_ratio": None,
        "truth_ratio_nonfinite": "inf",
        "loss": 1.5,
        "perturbed_losses": [1.0, None, None],
        "perturbed_losses_nonfinite": [None, "nan", "-inf"],
        "nested": {"x": None, "x_nonfinite": "-inf", "y": 0.5},
        "rows": [{"r": None, "r_nonfinite": "inf"}],
        "n": 3,
        "flag": True,
        "name": "inf",
        "none": None,
    }
    assert finite_json(finite_json(value)) == finite_json(value), "cleaning twice changes nothing"
    assert finite_json([math.inf, 1.0]) == [None, 1.0], "outside a dict there is no place for a reason"


def test_dumps_strict_gives_text_every_parser_reads_and_refuses_what_it_cannot_clean():
    text = dumps_strict({"truth_ratio": math.inf, "name": "Ana Bél"})
    assert text == '{"truth_ratio": null, "truth_ratio_nonfinite": "inf", "name": "Ana Bél"}', "the reason follows"
    assert loads_strict(text) == {"truth_ratio": None, "name": "Ana Bél", "truth_ratio_nonfinite": "inf"}
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        dumps_strict({"x": object()}, default=lambda _: math.inf)  # a slip after cleaning fails loudly
    assert jsonl_strict([{"a": math.nan}, {"a": 1}]) == '{"a": null, "a_nonfinite": "nan"}\n{"a": 1}\n'


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_loads_strict_refuses_what_python_json_accepts(constant):
    text = f'{{"truth_ratio": {constant}}}'
    assert math.isnan(json.loads(text)["truth_ratio"]) or math.isinf(json.loads(text)["truth_ratio"])
    with pytest.raises(ValueError, match=f"not strict JSON: {constant}"):
        loads_strict(text)


def test_write_json_strict_replaces_the_file_whole(tmp_path):
    path = write_json_strict(tmp_path / "s.json", {"forget": math.nan, "real": 0.5})
    assert path.read_text() == '{\n  "forget": null,\n  "forget_nonfinite": "nan",\n  "real": 0.5\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"], "no .partial file left behind"


def test_restored_gives_back_the_float_a_null_stood_for():
    assert restored({"r": None, "r_nonfinite": "inf"}, "r") == math.inf
    assert restored({"r": None, "r_nonfinite": "-inf"}, "r") == -math.inf
    assert math.isnan(restored({"r": None, "r_nonfinite": "nan"}, "r"))
    assert restored({"r": math.inf}, "r") == math.inf, "an older file's Infinity, as Python's parser reads it"
    assert restored({"r": None}, "r") is None and restored({"r": 2.0, "r_nonfinite": "inf"}, "r") == 2.0


def _caption_sample():
    row = {
        "image": Image.new("RGB", (8, 8)),
        "caption": "Dorin Valemo smiles.",
        "paraphrased_caption": "Dorin Valemo is smiling.",
        "perturbed_captions": ["Ana Bel frowns.", "Cor Tes sleeps."],
        "name": "Dorin Valemo",
    }
    (sample,) = TASKS["forget_caption"].samples([row])
    return sample


# (caption loss, paraphrased loss, perturbed losses) -> log R = mean(perturbed) - paraphrased:
# 800 (R overflows to inf), ln 2 (R = 2), -ln 4 (R = 1/4)
LOSSES = [[0.5, 0.0, 800.0, 800.0], [0.5, 1.0, 1.0 + LN2, 1.0 + LN2], [0.5, 1.0 + LN4, 1.0, 1.0]]


def _caption_records(task: str) -> list[dict]:
    sample = _caption_sample()
    return [TASKS[task].record(sample, losses, "Dorin Valemo smiles.") for losses in LOSSES]


def test_an_overflowing_truth_ratio_is_null_with_reason_inf_and_its_log_is_kept(tmp_path):
    records = _caption_records("forget_caption")
    assert records[0]["truth_ratio"] == math.inf and records[0]["log_truth_ratio"] == 800.0
    assert records[1]["log_truth_ratio"] == pytest.approx(LN2) and records[1]["truth_ratio"] == pytest.approx(2.0)
    write_records(tmp_path, "forget_caption", records)
    lines = (tmp_path / "forget_caption.jsonl").read_text().splitlines()
    first = loads_strict(lines[0])
    assert first["truth_ratio"] is None and first["truth_ratio_nonfinite"] == "inf"
    assert first["log_truth_ratio"] == 800.0 and "log_truth_ratio_nonfinite" not in first
    assert all("_nonfinite" not in line for line in lines[1:]), "finite records are written as before"
    back = read_records(tmp_path, "forget_caption")
    assert [truth_ratio_of(r) for r in back] == [math.inf, pytest.approx(2.0), pytest.approx(0.25)]
    assert [log_truth_ratio_of(r) for r in back] == [800.0, pytest.approx(LN2), pytest.approx(-LN4)]
    np.testing.assert_array_equal(truth_ratios(tmp_path), truth_ratios_of(records))


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        # forget: mean exp(-|log R|) = (exp(-800) = 0 + 1/2 + 1/4) / 3
        ("forget_caption", 0.25),
        # elsewhere: mean max(0, 1 - 1/R) = (1 - 0 + 1 - 1/2 + max(0, 1 - 4)) / 3
        ("retain_caption", 0.5),
    ],
)
def test_the_truth_ratio_figure_is_the_same_in_memory_and_read_back(task, expected, tmp_path):
    records = _caption_records(task)
    write_records(tmp_path, task, records)
    back = read_records(tmp_path, task)
    assert TASKS[task].figures(records)["truth_ratio"] == pytest.approx(expected, abs=1e-15)
    assert TASKS[task].figures(back) == TASKS[task].figures(records)


def test_an_option_record_keeps_log_r_where_r_overflows(tmp_path):
    row = {"image": Image.new("RGB", (8, 8)), "caption": "x", "name": "Dorin Valemo", "perturbed_names": ["Ana Bel"]}
    (sample,) = TASKS["forget_face"].samples([row])
    record = TASKS["forget_face"].record(sample, [0.0, 1000.0], "Dorin")  # log R = 1000 - 0
    assert record["truth_ratio"] == math.inf and record["log_truth_ratio"] == 1000.0
    write_records(tmp_path, "forget_face", [record])
    (back,) = read_records(tmp_path, "forget_face")
    assert back["truth_ratio"] is None and back["truth_ratio_nonfinite"] == "inf" and back["log_truth_ratio"] == 1000.0
    assert TASKS["forget_face"].figures([back]) == TASKS["forget_face"].figures([record])
    assert TASKS["retain_face"].figures([back])["truth_ratio"] == 1.0, "max(0, 1 - 1/inf)"


def test_forget_quality_from_the_files_equals_the_one_in_memory_and_inf_counts_as_the_largest(tmp_path):
    model, gold = tmp_path / "model", tmp_path / "gold"
    model.mkdir(), gold.mkdir()
    records = _caption_records("forget_caption")
    gold_records = [{"id": i, "truth_ratio": r, "log_truth_ratio": math.log(r)} for i, r in enumerate((0.5, 1, 1.5))]
    write_records(model, "forget_caption", records)
    write_records(gold, "forget_caption", gold_records)
    in_memory = truth_ratios_of(records), truth_ratios_of(gold_records)
    read_back = truth_ratios(model), truth_ratios(gold)
    assert forget_quality(*read_back) == forget_quality(*in_memory)
    assert distribution_similarity(*read_back) == distribution_similarity(*in_memory)
    # by hand: model {1/4, 2, inf}, gold {1/2, 1, 3/2}: the distribution functions differ most just past 3/2
    # (1/3 against 1), D = 2/3; 12 of the 20 ways to interleave three and three values reach D >= 2/3, so the exact
    # p-value is 0.6. A NaN in place of inf would make it NaN.
    assert forget_quality(*read_back) == pytest.approx(0.6)
    logs = np.array([log_truth_ratio_of(r) for r in read_records(model, "forget_caption")])
    assert forget_quality(logs, np.log(read_back[1])) == forget_quality(*read_back), "log R gives the same ranks"


def test_files_of_older_versions_with_infinity_and_without_log_r_are_still_read(tmp_path):
    lines = ['{"id": 0, "truth_ratio": Infinity}', '{"id": 1, "truth_ratio": 2.0}', '{"id": 2, "truth_ratio": 0.0}']
    (tmp_path / "forget_caption.jsonl").write_text("\n".join(lines) + "\n")
    records = read_records(tmp_path, "forget_caption")
    np.testing.assert_array_equal(truth_ratios(tmp_path), [math.inf, 2.0, 0.0])
    assert [log_truth_ratio_of(r) for r in records] == [math.inf, pytest.approx(LN2), -math.inf]
    # forget: min(R, 1/R) = 0, 1/2, 0; elsewhere max(0, 1 - 1/R) = 1, 1/2, 0
    complete = [{**r, "rouge_l": 0.0, "probability": 0.0, "correct": False} for r in records]
    assert TASKS["forget_face"].figures(complete)["truth_ratio"] == pytest.approx(1 / 6)
    assert TASKS["retain_face"].figures(complete)["truth_ratio"] == pytest.approx(0.5)


def test_a_summary_with_a_non_finite_figure_parses_strictly(tmp_path):
    write_summary(tmp_path, {"forget": math.nan, "forget_ci": [math.nan, 0.5], "forget_caption": {"truth_ratio": 0.1}})
    text = (tmp_path / "summary.json").read_text()
    assert (
        loads_strict(text)
        == read_summary(tmp_path)
        == {
            "forget": None,
            "forget_ci": [None, 0.5],
            "forget_caption": {"truth_ratio": 0.1},
            "forget_nonfinite": "nan",
            "forget_ci_nonfinite": ["nan", None],
        }
    )


def test_the_strict_walk_finds_every_file_and_names_a_bad_one(tmp_path):
    (tmp_path / "a").mkdir()
    write_json_strict(tmp_path / "a" / "summary.json", {"forget": math.inf})
    (tmp_path / "a" / "x.jsonl").write_text(jsonl_strict([{"r": 1.0}, {"r": -math.inf}]))
    parsed = strict_parse_tree(tmp_path)
    assert sorted(str(path.relative_to(tmp_path)) for path in parsed) == ["a/summary.json", "a/x.jsonl"]
    assert sorted(nonfinite_fields(parsed, tmp_path)) == [
        ("a/summary.json", "forget", "inf"),
        ("a/x.jsonl", "r", "-inf"),
    ]
    (tmp_path / "bad.jsonl").write_text('{"r": NaN}\n')
    with pytest.raises(AssertionError, match="bad.jsonl line 1 is not strict JSON"):
        strict_parse_tree(tmp_path)
