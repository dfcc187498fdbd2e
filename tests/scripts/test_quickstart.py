"""The quickstart pipeline: every stage writes its outputs, and a rerun skips the finished stages."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.quickstart import ProtocolSettings, check_settings, run_protocol
from tests.strict_json import nonfinite_fields, strict_parse_tree
from unlearn.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]


def _small(out: Path) -> ProtocolSettings:
    return ProtocolSettings(
        out=out,
        methods=["npo_gd", "ga"],
        persons=4,
        images_per_person=2,
        finetune_epochs=2,
        unlearn_epochs=1,
    )


@pytest.mark.slow
def test_every_stage_writes_its_outputs_and_a_rerun_skips_them(tmp_path, capsys):
    out = tmp_path / "quickstart"
    table = run_protocol(_small(out))
    for folder in ("vanilla", "gold"):
        assert (out / folder / "config.json").is_file() and (out / folder / "model.safetensors").is_file()
        assert (out / folder / "summary.json").is_file()
    for method in ("npo_gd", "ga"):
        adapter = out / f"unlearn-{method}"
        assert (adapter / "adapter_model.safetensors").is_file() and (adapter / "adapter_config.json").is_file()
        summary = json.loads((adapter / "summary.json").read_text())
        assert summary["adapter"] == str(adapter) and "forget_quality_ks" in summary
        assert json.loads((adapter / "run_config.json").read_text())["quantization"] == "4bit"
    for name in ("results.md", "results.csv", "forget_vs_utility.png"):
        assert (out / "report" / name).is_file()
    assert json.loads((out / "gold" / "summary.json").read_text())["forget_quality_ks"] == 1.0
    for name in ("vanilla-4bit", "gold-4bit"):  # the baselines at the adapters' precision, against the 4-bit gold
        summary = json.loads((out / name / "summary.json").read_text())
        assert summary["config"]["quantization"] == "4bit"
        assert summary["config"]["gold"] == str((out / "gold-4bit").resolve())
    assert json.loads((out / "unlearn-ga" / "summary.json").read_text())["config"]["gold"].endswith("gold-4bit")
    for name in ("vanilla (full)", "gold (full)", "vanilla-4bit (4bit)", "unlearn-npo_gd (4bit)", "unlearn-ga (4bit)"):
        assert f"| {name} |" in table, "rows of mixed precisions carry their precision"
    assert "_ci" not in table and " [" in table, "figures come with their intervals"

    stamps = {path: path.stat().st_mtime_ns for path in out.rglob("*") if path.is_file() and "report" not in path.parts}
    capsys.readouterr()
    assert run_protocol(_small(out)) == table
    printed = capsys.readouterr().out
    assert printed.count("skipped") == 12, printed  # data, base, 2 fine-tunes, 4 evaluations, 2 x 2 per method
    assert {path: path.stat().st_mtime_ns for path in stamps} == stamps, "a rerun rewrote finished outputs"

    probed = run_protocol(_small(out), probes=True)
    for method in ("npo_gd", "ga"):
        probes = json.loads((out / f"unlearn-{method}" / "probes.json").read_text())
        assert set(probes) == {"relearning", "precision", "rephrased", "cross_modal", "membership"}
        assert set(probes["cross_modal"]["rows"]) == {"both", "visual", "text"}, "the one-modality variants fill it"
        assert f"Robustness of unlearn-{method}" in probed
    assert probed.startswith(table)
    report = (out / "report" / "results.md").read_text()
    assert "## Robustness" in report
    for name in ("relearning_curves.png", "precision.png", "leakage.png"):
        assert (out / "report" / name).is_file()
    _every_file_is_strict_json(out)


def _every_file_is_strict_json(out: Path) -> None:
    """Every *.json and *.jsonl the run wrote parses with a strict parser (no NaN, no Infinity); each truth ratio is
    a number where ``exp(log R)`` fits a float and null with reason ``inf`` where it overflows (after gradient
    ascent it can; whether this small run gets one is up to its seed)."""
    parsed = strict_parse_tree(out)
    names = {path.name for path in parsed}
    assert {"summary.json", "run_config.json", "probes.json", "settings.json", "forget_caption.jsonl"} <= names
    expected, checked = [], 0
    for path, values in parsed.items():
        if path.suffix != ".jsonl":
            continue
        for record in values:
            if "log_truth_ratio" not in record:
                continue
            checked += 1
            overflows = record["log_truth_ratio"] > math.log(sys.float_info.max)
            if overflows:
                expected.append((str(path.relative_to(out)), "truth_ratio", "inf"))
            else:
                assert isinstance(record["truth_ratio"], float) and "truth_ratio_nonfinite" not in record, path
    assert checked > 100, "every evaluation's caption and option records carry log R"
    found = nonfinite_fields(parsed, out)
    assert [field for field in found if field[1] == "truth_ratio"] == expected
    assert all(key != "log_truth_ratio" for _, key, _ in found), "log R is finite for finite losses"


def test_unknown_method_exits_2_with_one_line_before_any_work(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "scripts.quickstart", "--out", str(tmp_path / "q"), "--methods", "npo_gd,forgetful"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: unknown method 'forgetful'; choose from " + ", ".join(sorted(_method_names()))
    ]
    assert not (tmp_path / "q").exists()


def _method_names() -> list[str]:
    from unlearn.methods import METHODS

    return list(METHODS)


def test_an_output_folder_made_with_other_settings_is_refused(tmp_path):
    check_settings(ProtocolSettings(out=tmp_path, persons=20, methods=["npo_gd"]))
    check_settings(ProtocolSettings(out=tmp_path, persons=20, methods=["npo_gd", "idk"]))  # more methods: fine
    with pytest.raises(UsageError, match="persons 20 -> 40"):
        check_settings(ProtocolSettings(out=tmp_path, persons=40))


def test_the_family_is_a_setting_and_an_older_folder_without_it_is_llava(tmp_path):
    check_settings(ProtocolSettings(out=tmp_path, methods=["npo_gd"]))
    stamp = tmp_path / "settings.json"
    recorded = json.loads(stamp.read_text())
    assert recorded["family"] == "llava" and recorded["method_options"] == {}
    del recorded["family"]  # a folder made before --family existed
    stamp.write_text(json.dumps(recorded))
    check_settings(ProtocolSettings(out=tmp_path, methods=["npo_gd"]))
    with pytest.raises(UsageError, match="family 'llava' -> 'qwen2_vl'"):
        check_settings(ProtocolSettings(out=tmp_path, family="qwen2_vl"))
    assert ProtocolSettings(out=tmp_path, family="qwen2_vl").method_options == {"npo_gd": {"beta": 0.15}}
    with pytest.raises(UsageError, match="unknown family 'gpt9'"):
        ProtocolSettings(out=tmp_path, family="gpt9")
