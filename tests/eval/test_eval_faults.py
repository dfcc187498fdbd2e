"""Faults survived, nothing lost, in evaluation and publishing: an evaluation killed mid-task, a truncated weights file.

The kill is a real ``SIGKILL`` of ``python -m scripts.evaluate``, sent while its progress bar shows a task half done.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import HfApi

from eval.evaluator import PARTIAL
from eval.logs import SUMMARY, read_records
from scripts import evaluate, push
from tests.hub_helpers import write_adapter
from unlearn.errors import run_cli

REPO = Path(__file__).resolve().parents[2]
CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
TASKS = ("forget_caption", "retain_caption")  # 3 then 27 samples on the test mini-CLEAR
TIMEOUT = 240  # seconds: far above an evaluation's length here, so that a hang fails instead of blocking the suite


def evaluate_argv(model: str, data: str, out: Path) -> list[str]:
    argv = ["--model", model, "--data", data, "--output_dir", str(out), "--tasks", ",".join(TASKS)]
    return [*argv, "--batch_size", "1", "--bootstrap", "100"]


def kill_during(command: list[str], task: str, at_sample: int) -> None:
    """Run ``command`` and SIGKILL it once its progress bar shows ``task`` at ``at_sample`` samples or more (and not
    done)."""
    process = subprocess.Popen(command, cwd=REPO, env=CHILD_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    bar = re.compile(rf"{task}:\s+\d+%\|[^|]*\|\s*(\d+)/(\d+)".encode())
    seen = b""
    try:
        while chunk := process.stderr.read1(4096):
            seen = (seen + chunk)[-4096:]
            counts = [(int(done), int(total)) for done, total in bar.findall(seen)]
            if counts and at_sample <= counts[-1][0] < counts[-1][1]:
                process.send_signal(signal.SIGKILL)
                break
        process.wait(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL, "the evaluation ended before the kill"


@pytest.mark.slow
def test_an_evaluation_killed_mid_task_runs_again_to_the_same_summary_and_records(tiny_model, mini_clear, tmp_path):
    straight = tmp_path / "straight"
    assert evaluate.main(evaluate_argv(tiny_model, mini_clear, straight)) == 0

    out = tmp_path / "killed"
    argv = evaluate_argv(tiny_model, mini_clear, out)
    at_sample = random.Random(5).randrange(2, 24)  # a seeded moment inside the second task (27 samples)
    kill_during([sys.executable, "-m", "scripts.evaluate", *argv], TASKS[1], at_sample)
    assert not (out / SUMMARY).exists(), "a killed evaluation leaves no summary that looks finished"
    assert (out / f"{TASKS[0]}.jsonl").is_file() and not (out / f"{TASKS[1]}.jsonl").exists()

    assert evaluate.main(argv) == 0  # the same command again
    expected = json.loads((straight / SUMMARY).read_text())
    assert json.loads((out / SUMMARY).read_text()) == expected
    for task in TASKS:
        records = read_records(out, task)
        ids = [record["id"] for record in records]
        assert len(ids) == len(set(ids)) == expected[task]["samples"], f"every {task} sample exactly once"
        assert records == read_records(straight, task)
    assert not (out / PARTIAL).exists()


def test_a_stale_summary_is_gone_once_new_records_are_written(tiny_model, mini_clear, tmp_path, monkeypatch):
    """A rerun into a finished folder that fails (or is killed) after its first task leaves no old summary.json
    beside new records."""
    import eval.evaluator as evaluator

    out = tmp_path / "run"
    argv = evaluate_argv(tiny_model, mini_clear, out) + ["--max_samples", "2"]
    assert evaluate.main(argv) == 0
    real_write = evaluator.write_task_records

    def write_then_fail(folder, task, records):
        real_write(folder, task, records)
        raise KeyboardInterrupt  # as a kill would stop it here

    monkeypatch.setattr(evaluator, "write_task_records", write_then_fail)
    with pytest.raises(KeyboardInterrupt):
        evaluate.main(argv)
    assert not (out / SUMMARY).exists()


@pytest.fixture
def truncated_adapter(tiny_model: str, tmp_path: Path) -> Path:
    folder = write_adapter(tiny_model, tmp_path / "adapter")
    weights = folder / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a save or download cut short
    return folder


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def damaged(path: Path) -> str:
    return f"error: {path} is damaged or incomplete (incomplete metadata, file not fully covered): it was cut short"


def test_a_truncated_adapter_is_one_error_line_and_exit_2_from_evaluate(
    truncated_adapter, tiny_model, mini_clear, tmp_path, capsys
):
    argv = evaluate_argv(tiny_model, mini_clear, tmp_path / "eval") + ["--adapter", str(truncated_adapter)]
    assert run_cli(evaluate.main, argv) == 2
    assert one_error_line(capsys).startswith(damaged(truncated_adapter / "adapter_model.safetensors"))
    assert not (tmp_path / "eval" / SUMMARY).exists()


def test_a_truncated_model_is_one_error_line_and_exit_2_from_evaluate(tiny_model, mini_clear, tmp_path, capsys):
    model = Path(shutil.copytree(tiny_model, tmp_path / "model"))
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1])
    assert run_cli(evaluate.main, evaluate_argv(str(model), mini_clear, tmp_path / "eval")) == 2
    assert one_error_line(capsys).startswith(damaged(weights))


def test_a_truncated_adapter_is_one_error_line_and_exit_2_from_push(truncated_adapter, tmp_path, capsys, monkeypatch):
    argv = ["--adapter", str(truncated_adapter), "--repo", "alice/tiny-npo", "--base-model-id", "alice/tiny-vanilla"]
    assert run_cli(push.main, [*argv, "--dry-run", str(tmp_path / "staged")]) == 2
    assert one_error_line(capsys).startswith(damaged(truncated_adapter / "adapter_model.safetensors"))
    assert not (tmp_path / "staged").exists()

    def refuse(*args, **kwargs):
        raise AssertionError("nothing may reach the Hub")

    for name in ("create_repo", "create_branch", "upload_folder"):
        monkeypatch.setattr(HfApi, name, refuse)
    monkeypatch.setenv("HF_TOKEN", "hf_TestTokenThatMustNeverAppear0123456789")
    assert run_cli(push.main, argv) == 2
    assert one_error_line(capsys).startswith(damaged(truncated_adapter / "adapter_model.safetensors"))
