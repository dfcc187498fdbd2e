"""The training scripts end to end on the tiny model: vanilla fine-tune, every method in 4-bit, errors, accelerate."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from scripts import bench_train, finetune, unlearn
from unlearn.errors import run_cli
from unlearn.models import load_model

REPO = Path(__file__).resolve().parents[2]
QUIET = ["--report_to", "none", "--disable_tqdm", "true"]
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def vanilla(tiny_model, mini_clear, tmp_path_factory) -> str:
    """The tiny model fully fine-tuned on full+tofu for a few steps by ``scripts.finetune --full``."""
    out = tmp_path_factory.mktemp("vanilla")
    argv = ["--model", tiny_model, "--data", mini_clear, "--split", "full+tofu", "--full", "--output_dir", str(out)]
    argv += ["--max_steps", "3", "--learning_rate", "2e-3", "--per_device_train_batch_size", "20", *QUIET]
    assert finetune.main(argv) == 0
    return str(out)


def test_finetune_full_gives_a_vanilla_checkpoint(vanilla):
    assert (Path(vanilla) / "config.json").is_file() and (Path(vanilla) / "model.safetensors").is_file()
    config = json.loads((Path(vanilla) / "run_config.json").read_text())
    assert config["split"] == "full+tofu" and config["full"] is True


def test_forget_modality_and_l1_reach_the_run(vanilla, mini_clear, tmp_path):
    out = tmp_path / "visual"
    argv = ["--model", vanilla, "--data", mini_clear, "--method", "ga", "--output_dir", str(out), "--max_steps", "1"]
    argv += ["--forget-modality", "visual", "--l1-lambda", "0.01", "--train-vision", "--save_strategy", "no", *QUIET]
    assert unlearn.main(argv) == 0
    config = json.loads((out / "run_config.json").read_text())
    assert (config["forget_modality"], config["l1_lambda"], config["train_vision"]) == ("visual", 0.01, True)
    assert any("vision_tower" in key for key in load_file(out / "adapter_model.safetensors"))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--method", "forgetful"], "unknown method"),
        (["--method", "ga", "--forget", "forget33"], "unknown forget split"),
        (["--method", "ga", "--retain", "full"], "overlap"),
        (["--method", "ga", "--model", "/no/such/model"], "not found"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_code_2(vanilla, mini_clear, tmp_path, capsys, extra, message):
    argv = ["--model", vanilla, "--data", mini_clear, "--output_dir", str(tmp_path / "out"), *QUIET, *extra]
    assert run_cli(unlearn.main, argv) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: ") and message in error


COUNT = "an integer in [1, 2147483647]"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        *(
            (["--method", name, "--beta", "0"], "--beta must be a finite number > 0 (got 0.0)")
            for name in ("npo", "npo_gd", "simnpo", "dpo")
        ),
        (
            ["--method", "ga", "--per_device_train_batch_size", "0"],
            f"--per_device_train_batch_size must be {COUNT} (got 0)",
        ),
        (["--method", "ga", "--lora_r", "0"], f"--lora_r must be {COUNT} (got 0)"),
    ],
)
def test_options_that_must_be_positive_are_one_error_line(tmp_path, capsys, extra, message):
    argv = ["--model", "some/model", "--output_dir", str(tmp_path / "out"), *QUIET, *extra]
    assert run_cli(unlearn.main, argv) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: {message}"]
    assert not (tmp_path / "out").exists()


def test_finetune_bad_input_is_exit_code_2(mini_clear, tmp_path, capsys):
    argv = ["--model", str(tmp_path / "missing"), "--data", mini_clear, "--output_dir", str(tmp_path / "out")]
    assert run_cli(finetune.main, argv) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert run_cli(finetune.main, [*argv, "--split", "forget99"]) == 2


def test_command_line_exit_code_and_help():
    result = subprocess.run(
        [sys.executable, "-m", "scripts.unlearn", "--model", "m/m", "--method", "nope"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=ONE_THREAD,
    )
    assert result.returncode == 2 and result.stderr.startswith("error: unknown method 'nope'")
    with pytest.raises(SystemExit) as exit_info:
        unlearn.main(["--help"])
    assert exit_info.value.code == 0


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks two CPU processes over gloo")
def test_accelerate_launch_two_cpu_processes(vanilla, mini_clear, tmp_path):
    out = tmp_path / "ddp"
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launch += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    argv = ["-m", "scripts.unlearn", "--model", vanilla, "--data", mini_clear, "--method", "npo_gd"]
    argv += ["--quantization", "4bit", "--output_dir", str(out), "--max_steps", "2", "--logging_steps", "1"]
    argv += ["--per_device_train_batch_size", "1", "--gradient_accumulation_steps", "1", "--save_strategy", "no"]
    result = subprocess.run([*launch, *argv, *QUIET], cwd=REPO, capture_output=True, text=True, env=ONE_THREAD)
    assert result.returncode == 0, result.stderr[-2000:]
    forget_examples = 7  # mini-CLEAR's forget10: 3 captions (no face naming unless asked) + 4 text questions
    steps_per_epoch = math.ceil(forget_examples / 2)  # each step takes one example on each of the 2 processes
    assert f"'epoch': '{1 / steps_per_epoch:g}'" in result.stdout, "one step covers one example per process"
    assert result.stdout.count("saved the npo_gd adapter") == 1
    load_model(vanilla, quantization="4bit", adapter=str(out))


@pytest.mark.slow
def test_bench_train_on_the_tiny_model(vanilla, mini_clear, tmp_path, capsys):
    argv = ["--model", vanilla, "--data", mini_clear, "--quantization", "4bit", "--steps", "2", "--threads", "1"]
    assert bench_train.main([*argv, "--out", str(tmp_path / "bench.json")]) == 0
    output = capsys.readouterr().out
    assert "npo/ga: peak memory" in output
    figures = json.loads((tmp_path / "bench.json").read_text())
    assert [row["method"] for row in figures] == ["ga", "npo"]
    assert all(row["peak_bytes"] > 0 and row["seconds_per_step"] > 0 for row in figures)


@pytest.mark.slow
def test_bench_train_real_config_needs_a_gpu_or_a_shrink(real_llava, mini_clear, capsys, monkeypatch):
    argv = ["--config", str(real_llava), "--random-weights", "--quantization", "4bit", "--data", mini_clear]
    if not torch.cuda.is_available():
        # as on a machine with 16 GiB free, whatever this one has: the full 7B is refused, never built
        monkeypatch.setattr(bench_train, "available_memory", lambda: 16 * 1024**3)
        assert run_cli(bench_train.main, argv) == 2
        assert "needs a CUDA GPU" in capsys.readouterr().err
        monkeypatch.undo()
    shrink = ["text_config.num_hidden_layers=2", "text_config.hidden_size=64", "text_config.intermediate_size=128"]
    shrink += ["text_config.num_attention_heads=2", "text_config.num_key_value_heads=2"]
    shrink += ["vision_config.num_hidden_layers=2", "vision_config.hidden_size=32"]
    shrink += ["vision_config.intermediate_size=64", "vision_config.num_attention_heads=2"]
    argv += ["--methods", "ga", "--steps", "1", "--threads", "1", "--override", *shrink]
    assert run_cli(bench_train.main, argv) == 0
    assert "ga" in capsys.readouterr().out
