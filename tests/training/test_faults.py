"""Faults survived, nothing lost: training killed with SIGKILL between checkpoints or during the final save.

Each kill is a real ``SIGKILL`` of a child process (no product-code hook): ``scripts.unlearn`` itself, or a child
that patches a write function *in the child* so that it stops half-way and waits to be killed.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import re
import signal
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from scripts import unlearn as unlearn_script
from unlearn.errors import UsageError
from unlearn.hub.card import read_checkpoint
from unlearn.models import load_model
from unlearn.training.trainer import (
    CHECKPOINT_STATE,
    FINAL_TMP,
    RUN_CONFIG,
    checkpoints,
    resume_checkpoint,
    save_final,
    save_folder_atomically,
    write_run_config,
)

REPO = Path(__file__).resolve().parents[2]
# One thread, like the test process itself (tests/conftest.py): the same float operations in every run. The child
# prints unbuffered, so the parent sees each step's log line when it is printed.
CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}
FINAL = ("adapter_config.json", "adapter_model.safetensors", RUN_CONFIG)
TIMEOUT = 240  # seconds: far above a run's length here, so that a hang fails instead of blocking the suite


def unlearn_argv(model: str, data: str, out: Path, *extra: str) -> list[str]:
    """An NPO+GD run on the 4-bit tiny model (as the protocol unlearns): 8 steps of 2 pairs, 4 steps per epoch."""
    argv = ["--model", model, "--data", data, "--method", "npo_gd", "--quantization", "4bit", "--output_dir", str(out)]
    argv += ["--max_steps", "8", "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1"]
    argv += ["--learning_rate", "1e-3", "--logging_steps", "1", "--report_to", "none", "--disable_tqdm", "true"]
    return [*argv, *extra]


def adapter_weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "adapter_model.safetensors")


def kill_after(command: list[str], stop: re.Pattern[str], times: int = 1) -> tuple[str, str]:
    """Start ``command``, SIGKILL it as soon as its stdout has printed ``times`` lines matching ``stop``; its
    stdout up to then and its whole stderr."""
    process = subprocess.Popen(
        command, cwd=REPO, env=CHILD_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    seen, lines = 0, []
    try:
        for line in process.stdout:
            lines.append(line)
            seen += bool(stop.search(line))
            if seen == times:
                process.send_signal(signal.SIGKILL)
                break
        process.wait(timeout=TIMEOUT)
        _, stderr = process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL, f"the run ended by itself before the kill:\n{stderr[-2000:]}"
    return "".join(lines), stderr


@pytest.mark.slow
def test_a_run_killed_between_checkpoints_resumes_with_the_same_command_to_the_same_adapter(
    tiny_model, mini_clear, tmp_path
):
    # Checkpoints after steps 3 and 6; the kill comes at a random step between them (seeded: the same each run),
    # right after that step's log line, while the next step computes.
    kill_at = random.Random(17).choice([4, 5])
    straight = tmp_path / "straight"
    assert unlearn_script.main(unlearn_argv(tiny_model, mini_clear, straight, "--save_steps", "3")) == 0

    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "scripts.unlearn", *unlearn_argv(tiny_model, mini_clear, killed)]
    command += ["--save_steps", "3"]
    kill_after(command, re.compile(r"^\{'loss'"), times=kill_at)
    assert not any((killed / name).exists() for name in FINAL), "a killed run left final files"
    newest = checkpoints(killed, recorded=True)[-1]
    assert newest.name in ("checkpoint-3", "checkpoint-6")  # -6 only if the kill came late on a loaded machine

    again = subprocess.run(command, cwd=REPO, env=CHILD_ENV, capture_output=True, text=True, timeout=TIMEOUT)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"resuming from {newest}" in again.stderr, "the same command resumes from the newest checkpoint"
    expected, found = adapter_weights(straight), adapter_weights(killed)
    assert expected.keys() == found.keys()
    # Exactly equal: the resumed run restores the weights, optimiser, scheduler, RNG and data position of the
    # checkpoint, and one CPU thread computes the same floats in the same order.
    assert all(torch.equal(expected[key], found[key]) for key in expected)
    assert not (killed / FINAL_TMP).exists()


# Child scripts that stop a save half-way and wait to be killed. Each prints ``READY`` once it waits.
HALF_WRITTEN_PEFT_SAVE = """
import sys, time
from pathlib import Path
import peft.peft_model
real_save = peft.peft_model.safe_save_file

def half_save(tensors, filename, metadata=None):
    real_save(tensors, filename, metadata=metadata)
    data = Path(filename).read_bytes()
    Path(filename).write_bytes(data[: len(data) // 2])  # as if the process died half-way through the write
    print("READY", filename, flush=True)
    time.sleep(600)

peft.peft_model.safe_save_file = half_save
from scripts import unlearn
from unlearn.errors import run_cli
sys.exit(run_cli(unlearn.main, sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_run_killed_while_writing_the_final_adapter_leaves_nothing_that_loads_and_reruns(
    tiny_model, mini_clear, tmp_path
):
    out = tmp_path / "run"
    child = tmp_path / "child.py"
    child.write_text(HALF_WRITTEN_PEFT_SAVE)
    argv = unlearn_argv(tiny_model, mini_clear, out, "--max_steps", "2", "--save_strategy", "no")
    stdout, _ = kill_after([sys.executable, str(child), *argv], re.compile("^READY"))
    written = Path(stdout.split("READY ", 1)[1].split()[0])
    assert written.parent == out / FINAL_TMP, "the adapter is written beside the final place, not into it"
    assert not any((out / name).exists() for name in FINAL)
    with pytest.raises(UsageError, match="holds no adapter_config.json"):
        load_model(tiny_model, quantization="4bit", adapter=str(out))
    with pytest.raises(UsageError, match="neither a PEFT adapter"):
        read_checkpoint(out)

    assert unlearn_script.main(argv) == 0  # the same command again: the leftover temporary folder is replaced
    assert not (out / FINAL_TMP).exists()
    load_model(tiny_model, quantization="4bit", adapter=str(out))


SAVED = ("tokenizer.json", "adapter_model.safetensors", "adapter_config.json")


def _stopped_save(target: Path, how: str, renames: int, ready: Connection) -> None:
    """In a forked child: ``save_final`` or ``save_folder_atomically`` with ``os.replace`` stopping (and telling
    ``ready``) before rename number ``renames + 1``, to be killed there."""
    real_replace, done = os.replace, []

    def replace(src: str | Path, dst: str | Path) -> None:
        if len(done) == renames:
            ready.send("READY")
            time.sleep(600)
        real_replace(src, dst)
        done.append(dst)

    os.replace = replace  # in this child only

    def write(folder: Path) -> None:
        for name in SAVED:
            (folder / name).write_text(f"new {name}")

    (save_final if how == "final" else save_folder_atomically)(target, write)


@pytest.mark.parametrize(
    ("how", "renames"),
    [("final", 0), ("final", 1), ("final", 2), ("folder", 0), ("folder", 1)],
    ids=["final-before-renames", "final-after-one", "final-before-the-config", "folder-kept", "folder-swapping"],
)
def test_a_save_killed_between_its_renames_leaves_the_old_folder_or_none_never_a_mix(tmp_path, how, renames):
    target = tmp_path / "adapter"
    old = {name: f"old {name}" for name in SAVED}
    if how == "folder":  # an earlier complete folder that the new one replaces
        target.mkdir()
        for name, text in old.items():
            (target / name).write_text(text)
    # A forked child (it starts at once, with everything imported) runs the save and is SIGKILLed mid-way.
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_stopped_save, args=(target, how, renames, send))
    child.start()
    try:
        assert receive.poll(60) and receive.recv() == "READY"
        os.kill(child.pid, signal.SIGKILL)
        child.join(60)
    finally:
        if child.is_alive():
            child.kill()
    assert child.exitcode == -signal.SIGKILL
    files = {path.name: path.read_text() for path in target.iterdir() if path.is_file()} if target.is_dir() else {}
    if how == "final":  # files renamed one by one, each whole; the loadable config comes last
        assert len(files) == renames and "adapter_config.json" not in files
        assert all(text == f"new {name}" for name, text in files.items())
    else:  # the folder is renamed as a whole: the old one, or none while the new one takes its place
        assert files == (old if renames == 0 else {})


def test_auto_resume_takes_the_newest_checkpoint_written_to_the_end_of_the_same_configuration(tmp_path, capsys):
    values = {"learning_rate": 0.001, "local_rank": 0, "output_dir": str(tmp_path), "seed": 1}
    for step, complete in ((2, True), (4, True), (6, False)):  # checkpoint-6 was being written when killed
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / RUN_CONFIG).write_text('{"learning_rate": 0.001, "local_rank": 1, "output_dir": "x", "seed": 1}')
        if complete:
            (folder / CHECKPOINT_STATE).write_text("{}")
    assert resume_checkpoint(None, tmp_path, values) == str(tmp_path / "checkpoint-4")
    assert "resuming from" in capsys.readouterr().err
    assert resume_checkpoint("true", tmp_path, values) == str(tmp_path / "checkpoint-4")
    assert resume_checkpoint("false", tmp_path, values) is None
    with pytest.raises(UsageError, match="checkpoint-6 is incomplete"):
        resume_checkpoint(str(tmp_path / "checkpoint-6"), tmp_path, values)
    with pytest.raises(UsageError, match=r"another configuration \(learning_rate 0.001 there, 0.002 now\)"):
        resume_checkpoint(None, tmp_path, {**values, "learning_rate": 0.002})
    (tmp_path / "adapter_config.json").write_text("{}")
    assert resume_checkpoint(None, tmp_path, values) is None, "a finished run is refused, not resumed"


def test_no_checkpoint_written_to_the_end_is_nothing_to_resume(tmp_path):
    assert resume_checkpoint(None, tmp_path / "missing", {"seed": 1}) is None
    (tmp_path / "checkpoint-3").mkdir()
    assert resume_checkpoint(None, tmp_path, {"seed": 1}) is None
    with pytest.raises(
        UsageError, match=r"no checkpoint-\* folder to resume from .* \(checkpoint-3 not written to the end"
    ):
        resume_checkpoint("true", tmp_path, {"seed": 1})


def test_run_config_is_strict_json(tmp_path):
    write_run_config(tmp_path, {"beta": 0.5})
    assert (tmp_path / RUN_CONFIG).read_text() == '{\n  "beta": 0.5\n}\n'
    with pytest.raises(UsageError, match="cannot record the configuration"):
        write_run_config(tmp_path, {"beta": float("nan")})
