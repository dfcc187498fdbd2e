"""bench_train --layers: the memory model of the real-width LLaVA-1.5 with k language layers (fit, projection,
analytic estimate) and the CPU's memory checks; the formulas against hand-computed values."""

import json
import sys

import pytest
import torch

from scripts import bench_train
from unlearn.errors import UsageError, run_cli
from unlearn.offline import random_weights
from unlearn.offline.memory import (
    GIB,
    ModelShape,
    ResidentPeak,
    analytic_estimate,
    analytic_per_layer,
    linear_fit,
    model_shape,
    resident_memory,
)
from unlearn.offline.random_weights import load_config

# The real width's 4096/11008 layers shrunk to tiny widths; the vocabulary (the real tokenizer's) and the 336 px
# image (576 image tokens) stay.
SHRINK = [
    "text_config.hidden_size=64",
    "text_config.intermediate_size=128",
    "text_config.num_attention_heads=2",
    "text_config.num_key_value_heads=2",
    "vision_config.num_hidden_layers=2",
    "vision_config.hidden_size=32",
    "vision_config.intermediate_size=64",
    "vision_config.num_attention_heads=2",
]


def test_linear_fit_is_least_squares():
    assert linear_fit([1, 2, 4], [5, 7, 11]) == pytest.approx((3, 2))
    # mean x 2, mean y 5/3; cov 1, var 2: b = 1/2, a = 5/3 - 1
    assert linear_fit([1, 2, 3], [1, 2, 2]) == pytest.approx((2 / 3, 1 / 2))
    with pytest.raises(ValueError, match="two distinct"):
        linear_fit([2, 2], [1, 3])


def test_analytic_estimate_against_hand_computed_values():
    shape = ModelShape(quantized=16384, full_precision=1000, lora=100, layers=2, hidden=8, intermediate=16, vocab=10)
    estimate = analytic_estimate(shape, tokens=5, dtype_bytes=2)
    assert estimate.weights_4bit == 8192 + 256 + 4  # 16384 * (1/2 + 1/64 + 4/16384)
    assert estimate.full_precision == 2000
    assert estimate.lora == 1600  # 100 * (4 + 4 + 4 + 4)
    assert estimate.activations == 160 + 2080 + 500  # 5*2*2*8 + 5*2*(16*8 + 5*16) + 5*10*(2 + 8)
    assert estimate.total == 14792
    assert analytic_per_layer(shape, tokens=5, dtype_bytes=2) == pytest.approx((8452 + 1600) / 2 + 80)


def test_model_shape_of_the_real_llava(real_llava):
    shape = model_shape(load_config(real_llava, []))
    layer = 4 * 4096 * 4096 + 3 * 4096 * 11008  # q, k, v, o and gate, up, down
    assert shape.quantized == 32 * layer
    assert shape.quantized + shape.full_precision == 7_063_427_072  # LLaVA-1.5-7B
    assert shape.lora == 32 * 8 * (4 * (4096 + 4096) + 3 * (4096 + 11008))
    # 7B in bf16: NF4 weights 3.11 GiB, frozen bf16 weights 1.09, LoRA with AdamW 0.30, activations 0.52
    assert analytic_estimate(shape).total / GIB == pytest.approx(5.02, abs=0.01)


def test_an_oversized_model_is_refused_with_the_reason(real_llava, monkeypatch, capsys):
    if torch.cuda.is_available():
        pytest.skip("on a GPU the model is built there, without a CPU memory check")
    monkeypatch.setattr(bench_train, "available_memory", lambda: 4 * GIB)
    argv = ["--config", str(real_llava), "--random-weights", "--quantization", "4bit", "--layers", "1,2"]
    assert run_cli(bench_train.main, argv) == 2
    error = capsys.readouterr().err
    assert "with 2 language layers needs about" in error and "4.0 GiB is available" in error
    assert error.count("\n") == 1
    monkeypatch.setattr(random_weights, "available_memory", lambda: GIB)
    with pytest.raises(UsageError, match="needs about 3.9 GiB"):  # 0.79 B parameters * 4 bytes = 2.94 GiB, plus 1 GiB
        random_weights.write_scale_model(real_llava, 1, real_llava / "never-written")


def test_layers_needs_a_config_and_two_counts(capsys):
    assert run_cli(bench_train.main, ["--model", "some/model", "--layers", "1,2"]) == 2
    assert "--layers builds models from a configuration" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench_train.main(["--config", "C", "--random-weights", "--layers", "3"])
    assert "at least two distinct positive layer counts" in capsys.readouterr().err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_resident_peak_sees_anonymous_memory():
    sampler = ResidentPeak()
    before = sampler.peak()["anon"]
    block = torch.ones(50_000_000)  # 200 MB, written
    sampler.sample()
    del block
    assert sampler.peak()["anon"] - before >= 190_000_000
    assert resident_memory()["file"] > 0


@pytest.mark.slow
def test_layers_fits_and_projects_a_shrunk_real_config(real_llava, mini_clear, tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["--config", str(real_llava), "--random-weights", "--quantization", "4bit", "--data", mini_clear]
    argv += ["--layers", "1,2", "--methods", "ga", "--steps", "1", "--threads", "1", "--out", str(out)]
    assert run_cli(bench_train.main, [*argv, "--override", *SHRINK]) == 0
    printed = capsys.readouterr().out
    assert "fit over layers [1, 2]" in printed and "projected to 32 layers" in printed
    assert "analytic estimate, 32 layers, GPU in bf16" in printed
    figures = json.loads(out.read_text())
    assert [(run["layers"], run["method"]) for run in figures["runs"]] == [(1, "ga"), (2, "ga")]
    assert all(run["train_peak_bytes"] > 0 and run["load_peak_bytes"] > 0 for run in figures["runs"])
    fit = figures["fits"]["ga"]
    assert fit["projected_bytes"] == pytest.approx(fit["a_bytes"] + 32 * fit["b_bytes_per_layer"])
    assert figures["layers_projected"] == 32
