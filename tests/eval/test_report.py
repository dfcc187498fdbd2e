"""Reports from evaluation folders written by hand: tables, CSV, plots, run names, script and errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from eval.report import format_value, load_runs, results_table, task_table, write_report
from eval.robustness import robustness_table
from scripts.report import main
from tests.robustness_probes import PROBES
from unlearn.errors import UsageError, run_cli

PNG = b"\x89PNG\r\n\x1a\n"


def write_run(folder: Path, forget: float, ratios: list[float], gold: Path | None = None) -> Path:
    """An evaluation folder as scripts.evaluate leaves it (summary and forget-caption records only)."""
    folder.mkdir(parents=True)
    summary = {
        "forget_caption": {"rouge_l": forget, "probability": 0.5, "truth_ratio": 0.8},
        "retain_face": {"accuracy": 1.0, "probability": 0.9},
        "real_world": {"accuracy": 0.75, "probability": 0.6},
        "forget": forget,
        "retain": 0.947,
        "real": 0.667,
        "model_utility": 0.8,
        "model": "tiny",
        "adapter": None,
        "data": "mini",
        "forget_split": "forget10",
        "config": {"gold": str(gold) if gold else None},
    }
    if gold:
        summary.update(forget_quality_ks=0.00001234, forget_quality_js=0.9)
    (folder / "summary.json").write_text(json.dumps(summary))
    lines = [json.dumps({"id": i, "truth_ratio": r}) for i, r in enumerate(ratios)]
    (folder / "forget_caption.jsonl").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    gold = write_run(tmp_path / "gold", 0.1, [0.9, 1.0, 1.1, 1.2])
    write_run(tmp_path / "vanilla", 0.9, [0.2, 0.3, 0.4, 0.35])
    write_run(tmp_path / "npo", 0.2, [0.8, 1.0, 1.3], gold=gold)
    return tmp_path


def test_results_table_has_one_row_per_run_and_the_headline_figures_in_order(runs_dir):
    runs = load_runs([runs_dir / "vanilla", runs_dir / "npo"])
    assert [run.name for run in runs] == ["vanilla", "npo"]
    lines = results_table(runs).splitlines()
    assert lines[0] == (
        "| Run | Real | Retain | Forget | Forget quality (KS p) | Forget quality (1-JS) | Model utility "
        "| Forget quality samples (model/gold) |"
    )
    assert lines[2] == "| vanilla | 0.667 | 0.947 | 0.900 | - | - | 0.800 | - |"
    assert lines[3] == "| npo | 0.667 | 0.947 | 0.200 | 1.23e-05 | 0.900 | 0.800 | - |"


def test_task_table_lists_every_figure_in_task_order(runs_dir):
    table = task_table(load_runs([runs_dir / "vanilla", runs_dir / "npo"])).splitlines()
    assert table[0] == "| Task | Figure | vanilla | npo |"
    assert table[2] == "| forget_caption | rouge_l | 0.900 | 0.200 |"
    assert [row.split(" | ")[0] for row in table[2:]] == ["| forget_caption"] * 3 + ["| retain_face"] * 2 + [
        "| real_world"
    ] * 2


def test_write_report_writes_markdown_csv_and_plots(runs_dir, tmp_path):
    runs = load_runs([runs_dir / "gold", runs_dir / "vanilla", runs_dir / "npo"])
    files = write_report(runs, tmp_path / "report")
    names = {path.name for path in files}
    assert names == {"results.md", "results.csv", "forget_vs_utility.png", "tasks.png", "truth_ratios.png"}
    for path in files:
        if path.suffix == ".png":
            assert path.read_bytes().startswith(PNG) and path.stat().st_size > 5000
    markdown = (tmp_path / "report" / "results.md").read_text()
    assert results_table(runs) in markdown and "![truth_ratios](truth_ratios.png)" in markdown
    rows = list(csv.DictReader((tmp_path / "report" / "results.csv").open()))
    assert [row["run"] for row in rows] == ["gold", "vanilla", "npo"]
    assert float(rows[2]["forget_quality_ks"]) == 0.00001234 and rows[1]["forget_quality_ks"] == ""
    assert float(rows[1]["forget_caption/rouge_l"]) == 0.9


def test_without_gold_there_is_no_histogram_and_the_report_says_so(runs_dir, tmp_path):
    files = write_report(load_runs([runs_dir / "vanilla"]), tmp_path / "report")
    assert "truth_ratios.png" not in {path.name for path in files}
    assert "No truth-ratio histograms" in (tmp_path / "report" / "results.md").read_text()


def test_runs_with_the_same_folder_name_get_their_parent_in_the_name(tmp_path):
    write_run(tmp_path / "a" / "eval", 0.5, [1.0])
    write_run(tmp_path / "b" / "eval", 0.5, [1.0])
    assert [run.name for run in load_runs([tmp_path / "a" / "eval", tmp_path / "b" / "eval"])] == ["a/eval", "b/eval"]


def test_format_value():
    assert [format_value(v) for v in (None, 0.0, 0.12345, 1.0, 0.000123)] == [
        "-",
        "0.000",
        "0.123",
        "1.000",
        "1.23e-04",
    ]


def test_a_folder_without_summary_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="summary.json"):
        load_runs([tmp_path])


def test_report_script_prints_the_table_and_reports_bad_input(runs_dir, tmp_path, capsys):
    assert main([str(runs_dir / "vanilla"), str(runs_dir / "npo"), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "| npo | 0.667 | 0.947 | 0.200 |" in out and "results.md" in out
    assert run_cli(main, [str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "summary.json" in err[0]


def test_intervals_samples_and_mixed_precisions_are_shown(tmp_path):
    for name, quantization in (("vanilla", None), ("vanilla-4bit", "4bit")):
        folder = write_run(tmp_path / name, 0.5, [1.0, 2.0])
        summary = json.loads((folder / "summary.json").read_text())
        summary["config"]["quantization"] = quantization
        summary.update(forget_ci=[0.25, 0.75], forget_quality_samples={"model": 30, "gold": 29})
        summary["forget_caption"].update(rouge_l_ci=[0.125, 0.625], samples=30)
        (folder / "summary.json").write_text(json.dumps(summary))
    runs = load_runs([tmp_path / "vanilla", tmp_path / "vanilla-4bit"])
    rows = results_table(runs).splitlines()
    assert rows[2].startswith("| vanilla (full) |") and rows[3].startswith("| vanilla-4bit (4bit) |")
    assert "| 0.500 [0.250, 0.750] |" in rows[2] and rows[2].endswith("| 30/29 |")
    table = task_table(runs).splitlines()
    assert "| forget_caption | samples | 30 | 30 |" in table
    assert "| forget_caption | rouge_l | 0.500 [0.125, 0.625] | 0.500 [0.125, 0.625] |" in table
    assert load_runs([tmp_path / "vanilla"])[0].name == "vanilla", "one precision: names stay as they are"
    assert results_table(load_runs([tmp_path / "vanilla"])).splitlines()[2].startswith("| vanilla |")


def test_a_report_of_runs_without_task_figures_is_written(tmp_path):
    folder = tmp_path / "headline-only"
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps({"forget": 0.3, "model_utility": 0.6, "config": {}}))
    written = write_report(load_runs([folder]), tmp_path / "report")
    assert (tmp_path / "report" / "tasks.png").read_bytes().startswith(PNG) and written


def test_runs_with_probes_json_get_a_robustness_section_and_the_report_is_unchanged_without(runs_dir, tmp_path):
    runs = load_runs([runs_dir / "vanilla", runs_dir / "npo"])
    without = write_report(runs, tmp_path / "without")
    plain = (tmp_path / "without" / "results.md").read_text()
    assert "Robustness" not in plain
    assert {p.name for p in without} == {
        "results.md",
        "results.csv",
        "forget_vs_utility.png",
        "tasks.png",
        "truth_ratios.png",
    }
    (runs_dir / "npo" / "probes.json").write_text(json.dumps(PROBES))
    files = write_report(runs, tmp_path / "with")
    markdown = (tmp_path / "with" / "results.md").read_text()
    assert markdown.startswith(plain), "the section comes after the report as it was"
    section = markdown[len(plain) :]
    assert section.startswith("\n## Robustness\n") and "### npo\n\n" + robustness_table(PROBES) in section
    assert "### vanilla" not in section, "a run without probes.json gets no table"
    robustness = {"relearning_curves.png", "precision.png", "leakage.png"}
    assert robustness <= {path.name for path in files}
    for name in robustness:
        assert f"![{name[:-4]}]({name})" in section and (tmp_path / "with" / name).read_bytes().startswith(PNG)


def test_a_robustness_section_has_only_the_plots_of_the_probes_present(runs_dir, tmp_path):
    (runs_dir / "npo" / "probes.json").write_text(json.dumps({"membership": PROBES["membership"]}))
    files = write_report(load_runs([runs_dir / "npo"]), tmp_path / "report")
    section = (tmp_path / "report" / "results.md").read_text().split("## Robustness")[1]
    assert "**Membership inference**" in section and "![" not in section
    assert not {"relearning_curves.png", "precision.png", "leakage.png"} & {path.name for path in files}


def test_null_figures_with_a_reason_are_shown_as_n_a_and_the_report_is_written(runs_dir, tmp_path):
    """A summary written by dumps_strict: a non-finite figure is null beside its ``<figure>_nonfinite`` reason,
    and so may be an interval's bound; the tables say n/a (why), the plots leave the value out."""
    folder = runs_dir / "npo"
    summary = json.loads((folder / "summary.json").read_text())
    summary.update(forget=None, forget_nonfinite="nan", forget_ci=[None, None], forget_ci_nonfinite=["nan", "nan"])
    summary["model_utility_ci"] = [None, 0.9]
    summary["forget_caption"].update(truth_ratio=None, truth_ratio_nonfinite="inf")
    summary["real_world"]["probability_ci"] = [0.5, None]
    (folder / "summary.json").write_text(json.dumps(summary))
    lines = [json.dumps({"id": 0, "truth_ratio": None, "truth_ratio_nonfinite": "inf", "log_truth_ratio": 800.0})]
    lines += [json.dumps({"id": i, "truth_ratio": r}) for i, r in enumerate((1.0, 1.3), start=1)]
    (folder / "forget_caption.jsonl").write_text("\n".join(lines) + "\n")
    runs = load_runs([runs_dir / "vanilla", folder])
    assert runs[1].reason("forget") == "nan" and runs[1].reason("forget_caption/truth_ratio") == "inf"
    assert runs[1].reason("retain") is None and runs[0].reason("forget_caption/truth_ratio") is None
    assert (
        results_table(runs).splitlines()[3]
        == "| npo | 0.667 | 0.947 | n/a (nan) | 1.23e-05 | 0.900 | 0.800 [-, 0.900] | - |"
    )
    assert "| forget_caption | truth_ratio | 0.800 | n/a (inf) |" in task_table(runs).splitlines()
    assert "| real_world | probability | 0.600 | 0.600 [0.500, -] |" in task_table(runs).splitlines()
    files = write_report(runs, tmp_path / "report")
    assert {path.name for path in files} >= {"forget_vs_utility.png", "tasks.png", "truth_ratios.png"}
    rows = list(csv.DictReader((tmp_path / "report" / "results.csv").open()))
    assert rows[1]["forget"] == "" and rows[1]["forget_caption/truth_ratio"] == ""


def test_format_value_of_non_finite_numbers_and_reasons():
    assert format_value(None, "inf") == "n/a (inf)" and format_value(None) == "-"
    assert format_value(float("nan")) == "n/a (nan)", "a float of an older file, never formatted as a number"
    assert format_value(float("-inf")) == "n/a (-inf)"
