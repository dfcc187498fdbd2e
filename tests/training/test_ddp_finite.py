"""Two CPU processes (gloo, through ``accelerate launch``): a non-finite loss on one of them stops both, with the same
message, at the same step, and nothing is saved as final."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
FINAL = ("adapter_config.json", "adapter_model.safetensors", "run_config.json")

# The child each process runs: scripts.unlearn with GA's loss turned NaN on process 1 only, at step 1 (a finite
# step 0 first, so both processes are well into training).
ONE_RANK_NAN = """
import os, sys
from unlearn.errors import run_cli
from unlearn.methods import get_method
from scripts import unlearn

ga = get_method("ga")
ga_loss = ga.loss

def loss(self, model, batches, step):
    value, logs = ga_loss(self, model, batches, step)
    if step == 1 and os.environ["RANK"] == "1":
        value = value * float("nan")
    return value, logs

ga.loss = loss
sys.exit(run_cli(unlearn.main, sys.argv[1:]))
"""


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks two CPU processes over gloo")
def test_a_nan_loss_on_one_process_stops_every_process_with_the_same_message(tiny_model, mini_clear, tmp_path):
    child = tmp_path / "child.py"
    child.write_text(ONE_RANK_NAN)
    out = tmp_path / "ddp"
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launch += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(child)]
    argv = ["--model", tiny_model, "--data", mini_clear, "--method", "ga", "--output_dir", str(out)]
    argv += ["--max_steps", "3", "--per_device_train_batch_size", "1", "--gradient_accumulation_steps", "1"]
    argv += ["--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    # Before the check was agreed on by both processes, process 0 waited in the next all-reduce until the launcher
    # noticed process 1 had died; the timeout fails such a hang instead of blocking the suite.
    result = subprocess.run([*launch, *argv], cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    expected = (
        "error: the loss is nan at step 1 on process 1 of 2: training diverged and was stopped, nothing was saved "
        "as final; try a lower --learning_rate"
    )
    assert errors == [expected, expected], result.stderr[-3000:]
    assert not any((out / name).exists() for name in FINAL)
