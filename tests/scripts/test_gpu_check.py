"""The prepared GPU check's CPU form: the same code as on a GPU, on the real LLaVA-1.5 configuration shrunk in width
(576 image tokens, its tokenizer and processor kept), so the one command is known to run before a GPU's minutes go
to it."""

from __future__ import annotations

import json
import math

import pytest

from scripts import gpu_check

SHRUNK = [
    "text_config.hidden_size=64",
    "text_config.intermediate_size=128",
    "text_config.num_attention_heads=2",
    "text_config.num_key_value_heads=2",
    "vision_config.hidden_size=32",
    "vision_config.intermediate_size=64",
    "vision_config.num_hidden_layers=2",
    "vision_config.num_attention_heads=2",
    "vision_config.projection_dim=32",
]


@pytest.mark.slow
def test_the_cpu_form_writes_every_figure(real_llava, tmp_path, capsys):
    argv = ["--out", str(tmp_path), "--config", str(real_llava), "--override", *SHRUNK]
    assert gpu_check.main([*argv, "--steps", "2", "--samples", "1", "--eval_samples", "1", "--threads", "1"]) == 0
    figures = json.loads((tmp_path / "gpu_check.json").read_text())
    assert figures["build"]["layers"] == 1, "the CPU form builds the 1-layer scale model"
    for method in ("ga", "npo"):
        run = figures["training"][method]
        assert run["train_peak_bytes"] > 0 and run["load_peak_bytes"] > 0 and run["seconds_per_step"] > 0
    assert figures["training"]["npo_over_ga_peak"] > 0
    scoring = figures["scoring"]
    assert scoring["agree"] and set(scoring["seconds"]) == {"prefix", "per_option", "full"}
    assert scoring["prompt_tokens"] > 576, "the prompt holds LLaVA-1.5's 576 image tokens"
    evaluation = figures["evaluation"]
    assert evaluation["finite"] and all(count == 1 for count in evaluation["samples"].values())
    assert all(math.isfinite(evaluation[key]) for key in ("forget", "retain", "real", "model_utility"))
    assert set(figures["goals"]) == set(gpu_check.GOALS)
    assert all(goal["met"] is None for goal in figures["goals"].values()), "a CPU run judges no GPU goal"
    assert "wrote" in capsys.readouterr().out


def test_bad_counts_are_one_error_line(tmp_path):
    with pytest.raises(gpu_check.UsageError, match="at least 1"):
        gpu_check.main(["--out", str(tmp_path), "--samples", "0"])
