"""The scripts: scripts.evaluate (flags, YAML, gold, errors), scripts.report on its output, scripts.bench_eval."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scripts import bench_eval, evaluate, report
from unlearn.errors import run_cli

REPO = Path(__file__).resolve().parents[2]


def test_evaluate_with_self_as_gold_then_report(tiny_model, mini_clear, tmp_path, capsys):
    common = ["--model", tiny_model, "--data", mini_clear, "--max_samples", "3", "--batch_size", "2"]
    assert evaluate.main([*common, "--output_dir", str(tmp_path / "gold")]) == 0
    config = tmp_path / "eval.yaml"
    config.write_text(
        f"model: {tiny_model}\ndata: {mini_clear}\nmax_samples: 5\nbatch_size: 2\n"
        f"output_dir: {tmp_path / 'vanilla'}\ngold: {tmp_path / 'gold'}\ntasks: forget_caption,forget_face\n"
    )
    assert evaluate.main(["--config", str(config), "--max_samples", "3"]) == 0
    summary = json.loads((tmp_path / "vanilla" / "summary.json").read_text())
    assert summary["forget_quality_ks"] == 1.0, "a model evaluated against itself as gold"
    assert set(summary["config"]["tasks"]) == {"forget_caption", "forget_face"}
    assert summary["config"]["max_samples"] == 3, "a flag overrides the configuration file"
    assert "| vanilla |" in capsys.readouterr().out
    assert report.main([str(tmp_path / "gold"), str(tmp_path / "vanilla"), "--out", str(tmp_path / "report")]) == 0
    assert (tmp_path / "report" / "truth_ratios.png").is_file()
    assert "| gold |" in (tmp_path / "report" / "results.md").read_text()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--forget", "forget50"], "unknown forget split"),
        (["--tasks", "forget_caption,nonsense"], "unknown tasks"),
        (["--quantization", "3bit"], "quantization"),
    ],
)
def test_evaluate_bad_input_is_one_error_line_and_exit_2(tiny_model, mini_clear, tmp_path, capsys, flags, message):
    argv = ["--model", tiny_model, "--data", mini_clear, "--output_dir", str(tmp_path), *flags]
    assert run_cli(evaluate.main, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


def test_bench_eval_times_three_ways_of_scoring_that_agree(tiny_model, mini_clear, tmp_path, capsys):
    argv = ["--model", tiny_model, "--data", mini_clear, "--max_samples", "3", "--batch_size", "3"]
    out_file = tmp_path / "bench.json"
    assert bench_eval.main([*argv, "--tasks", "forget_caption,real_world", "--out", str(out_file)]) == 0
    out = capsys.readouterr().out
    assert "agree" in out and "floor" in out
    result = json.loads(out_file.read_text())
    assert set(result["seconds"]) == {"prefix", "per_option", "full"}
    assert result["max_loss_difference"] <= 1e-4 and result["samples"] == 6
    assert result["floor_flops"] == result["flops"]["prefix"] < result["flops"]["per_option"] < result["flops"]["full"]
    assert min(result["times_floor"].values()) >= 1.0 - 1e-9, "no way is faster than the floor at the best rate"


@pytest.mark.slow
def test_evaluate_runs_as_a_module_and_bench_builds_its_own_model(tiny_model, mini_clear, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    argv = ["--model", tiny_model, "--data", mini_clear, "--tasks", "real_faces", "--max_samples", "2"]
    done = subprocess.run(
        [sys.executable, "-m", "scripts.evaluate", *argv, "--output_dir", str(tmp_path / "e")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((tmp_path / "e" / "summary.json").read_text())
    assert summary["config"]["tasks"] == ["real_faces"]
    assert [k for k in summary["real_faces"] if not k.endswith("_ci")] == [
        "rouge_l",
        "probability",
        "truth_ratio",
        "accuracy",
        "samples",
    ]
    bench = ["--persons", "4", "--images_per_person", "1", "--tasks", "forget_face,forget_text", "--max_samples", "2"]
    done = subprocess.run(
        [sys.executable, "-m", "scripts.bench_eval", *bench],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "(agree," in done.stdout


@pytest.mark.parametrize(("content", "message"), [(None, "not found"), ("nonsense: 1\n", "unknown options")])
def test_evaluate_bad_config_file_is_one_error_line_and_exit_2(tmp_path, capsys, content, message):
    config = tmp_path / "eval.yaml"
    if content is not None:
        config.write_text(content)
    assert run_cli(evaluate.main, ["--config", str(config), "--output_dir", str(tmp_path / "out")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_an_adapter_is_evaluated_in_the_precision_it_was_unlearned_in(tiny_model, mini_clear, tmp_path):
    from unlearn.offline.random_adapters import write_random_adapters

    (adapter,) = write_random_adapters(tiny_model, tmp_path / "adapters", [{"method": "ga", "quantization": "4bit"}])
    common = ["--model", tiny_model, "--adapter", str(adapter), "--data", mini_clear, "--tasks", "real_world"]
    common += ["--max_samples", "2", "--bootstrap", "0"]
    assert evaluate.main([*common, "--output_dir", str(tmp_path / "recorded")]) == 0
    recorded = json.loads((tmp_path / "recorded" / "summary.json").read_text())
    assert recorded["config"]["quantization"] == "4bit", "the adapter's run_config.json decides by default"
    assert evaluate.main([*common, "--quantization", "none", "--output_dir", str(tmp_path / "full")]) == 0
    full = json.loads((tmp_path / "full" / "summary.json").read_text())
    assert full["config"]["quantization"] is None, "--quantization none forces full precision"
