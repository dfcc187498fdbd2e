"""Every registered method trains on the tiny model in 4-bit and saves a loadable adapter (generated from the
registry, so a new method gets this test by registering); SCRUB's separate optimiser steps, RMU's layer and control
vector, SKU's negated adapter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from peft import get_peft_model_state_dict
from safetensors.torch import load_file
from transformers import TrainerCallback

from scripts import unlearn as unlearn_script
from unlearn.architectures import anatomy_of_checkpoint
from unlearn.collate import training_batch
from unlearn.data import split_examples
from unlearn.errors import UsageError
from unlearn.methods import METHODS, get_method
from unlearn.methods.rmu import control_vector, decoder, layer_states, masked_mse
from unlearn.models import LoraSettings, add_lora, load_model
from unlearn.training.config import UnlearnConfig
from unlearn.training.runs import unlearn

QUIET = {"report_to": "none", "disable_tqdm": True, "save_strategy": "no"}


def config(model: str, data: str, out: Path, method: str, **overrides) -> UnlearnConfig:
    settings = {
        "model": model,
        "data": data,
        "method": method,
        "quantization": "4bit",
        "output_dir": str(out),
        "max_steps": 4,
        "learning_rate": 1e-3,
        "per_device_train_batch_size": 2,
        "gradient_accumulation_steps": 1,
        "logging_steps": 1,
        **QUIET,
    }
    return UnlearnConfig(**{**settings, **overrides})


class Recorder(TrainerCallback):
    """Keeps the logs, counts optimiser steps, and snapshots the adapter when training ends (before ``finish``)."""

    def __init__(self) -> None:
        self.logs: list[dict[str, float]] = []
        self.optimizer_steps = 0
        self.learned: dict[str, torch.Tensor] = {}

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.logs.append(dict(logs))

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.optimizer_steps += 1

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.learned = {key: value.detach().clone() for key, value in get_peft_model_state_dict(model).items()}


def test_list_methods_prints_every_registered_method_and_exits_0(capsys):
    assert unlearn_script.main(["--list-methods"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()[1:]
    assert sorted(line.split()[0] for line in lines) == sorted(METHODS)
    assert all(len(line.split()) > 2 for line in lines), "each with a description"


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_runs_4bit_steps_and_saves_a_loadable_adapter(family_model, mini_clear, tmp_path, method):
    out = tmp_path / method
    argv = ["--model", family_model, "--data", mini_clear, "--method", method, "--forget", "forget10", "--retain"]
    argv += ["retain90", "--output_dir", str(out), "--quantization", "4bit", "--max_steps", "2"]
    argv += ["--learning_rate", "1e-3", "--gradient_checkpointing"]
    argv += ["--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true"]
    assert unlearn_script.main(argv) == 0
    weights = load_file(out / "adapter_model.safetensors")
    trained = {key for key, value in weights.items() if "lora_B" in key and value.abs().sum() > 0}
    assert trained, "the adapter left its zero init"
    assert any("layers.0.self_attn.q_proj" in key for key in trained), "gradients reach the first checkpointed layer"
    vision = anatomy_of_checkpoint(family_model).vision
    assert not any(f"{vision}." in key for key in weights), "the vision encoder is frozen"
    model, _ = load_model(family_model, quantization="4bit", adapter=str(out))
    assert type(model).__name__ == "PeftModel"
    saved = json.loads((out / "run_config.json").read_text())
    assert (saved["method"], saved["forget"], saved["retain"], saved["quantization"]) == (
        method,
        "forget10",
        "retain90",
        "4bit",
    )
    options = get_method(method).options_class()
    assert all(saved[key] == value for key, value in vars(options).items()), "the method's options are recorded"


def test_scrub_takes_separate_optimiser_steps_for_max_and_min(tiny_model, mini_clear, tmp_path):
    recorder = Recorder()
    settings = {"max_steps": 4, "gradient_accumulation_steps": 2}
    unlearn(config(tiny_model, mini_clear, tmp_path / "scrub", "scrub", **settings), callbacks=[recorder])
    assert recorder.optimizer_steps == 4, "two optimiser steps per cycle, two cycles"
    phases = ["forget_kl" in logs for logs in recorder.logs]
    assert phases == [True, False, True, False]
    assert all("retain_kl" not in logs for logs in recorder.logs[::2])
    assert all({"retain_kl", "retain_nll"} <= set(logs) for logs in recorder.logs[1::2])
    # The first max step has KL 0 (the student is its teacher); the second follows a min step that moved it.
    second_max = recorder.logs[2]
    assert second_max["forget_kl"] > 0
    assert second_max["loss"] == pytest.approx(-second_max["forget_kl"], rel=1e-4)
    # Logged over two steps, each term is still averaged over the steps that computed it.
    combined = Recorder()
    run = config(tiny_model, mini_clear, tmp_path / "scrub2", "scrub", logging_steps=2, **settings)
    unlearn(run, callbacks=[combined])
    assert combined.logs[1]["forget_kl"] == pytest.approx(second_max["forget_kl"], rel=1e-4)
    assert combined.logs[1]["retain_nll"] == pytest.approx(recorder.logs[3]["retain_nll"], rel=1e-4)


def test_sku_saves_the_negated_weight_change(tiny_model, mini_clear, tmp_path):
    recorder = Recorder()
    out = unlearn(config(tiny_model, mini_clear, tmp_path / "sku", "sku"), callbacks=[recorder])
    saved = load_file(out / "adapter_model.safetensors")
    assert saved.keys() == recorder.learned.keys()
    pairs = [(key, key.replace("lora_A", "lora_B")) for key in saved if "lora_A" in key]
    assert pairs and any(recorder.learned[b].abs().sum() > 0 for _, b in pairs)
    scale = 32 / 8  # LoRA alpha / r
    for a, b in pairs:
        learned = scale * recorder.learned[b] @ recorder.learned[a]
        assert torch.allclose(scale * saved[b] @ saved[a], -learned, atol=1e-6), "saved Delta W = -learned Delta W"
        assert torch.equal(saved[a], recorder.learned[a]), "only B changes sign"
    # The loaded adapter moves the weights the opposite way from the trained one.
    model, _ = load_model(tiny_model, adapter=str(out))
    layer = decoder(model).layers[0].self_attn.q_proj
    key = next(a for a, _ in pairs if "layers.0.self_attn.q_proj" in a)
    learned = scale * recorder.learned[key.replace("lora_A", "lora_B")] @ recorder.learned[key]
    assert torch.allclose(layer.get_delta_weight("default"), -learned, atol=1e-6)


@pytest.fixture(scope="module")
def adapted(tiny_model, mini_clear):
    """The tiny model in 4-bit with a fresh LoRA adapter, and a forget and a retain batch."""
    model, processor = load_model(tiny_model, quantization="4bit")
    model = add_lora(model, LoraSettings())
    forget = training_batch(processor, split_examples(mini_clear, "forget10")[:3])
    retain = training_batch(processor, split_examples(mini_clear, "retain90")[:3])
    return model, {"forget": forget, "retain": retain}


def test_rmu_reads_the_output_of_the_chosen_decoder_layer(adapted):
    model, batches = adapted
    hidden = layer_states(model, batches["forget"], 0)
    inputs = {key: value for key, value in batches["forget"].items() if key != "labels"}
    expected = model(**inputs, output_hidden_states=True).hidden_states[1]  # [0] holds the embeddings
    assert torch.allclose(hidden, expected, atol=1e-6)
    assert hidden.shape[:2] == batches["forget"]["input_ids"].shape


def test_rmu_loss_on_the_tiny_model(adapted):
    model, batches = adapted
    rmu = get_method("rmu")(get_method("rmu").options_class(layer=1, steering_coefficient=5.0, alpha=10.0))
    rmu.prepare(model, [], [], seed=7)
    loss, logs = rmu.loss(model, batches, step=0)
    hidden_size = model.config.text_config.hidden_size
    assert rmu.control.shape == (hidden_size,) and rmu.control.norm().item() == pytest.approx(5.0, rel=1e-5)
    assert torch.equal(rmu.control, control_vector(hidden_size, 5.0, seed=7)), "drawn from the run's seed"
    forget = batches["forget"]
    expected = masked_mse(layer_states(model, forget, 1), rmu.control, forget["attention_mask"].bool())
    assert logs["forget_mse"] == pytest.approx(expected.item(), rel=1e-5)
    assert logs["retain_mse"] == pytest.approx(0.0, abs=1e-10), "a fresh adapter: retain states are the frozen ones"
    assert loss.item() == pytest.approx(logs["forget_mse"] + 10.0 * logs["retain_mse"], rel=1e-5)


def test_rmu_rejects_a_layer_the_model_does_not_have(adapted):
    model, _ = adapted
    rmu = get_method("rmu")(get_method("rmu").options_class(layer=2))
    with pytest.raises(UsageError, match="has 2 layers"):
        rmu.prepare(model, [], [], seed=0)


def test_rmu_trains_only_up_to_its_layer(tiny_model, adapted):
    _, batches = adapted
    model, _ = load_model(tiny_model, quantization="4bit")
    model = add_lora(model, LoraSettings(projector=True))
    rmu = get_method("rmu")()
    rmu.prepare(model, [], [], seed=0)  # default layer (2 - 1) // 4 = 0
    for when in ("after prepare", "after a loss (its frozen-model forward)"):
        trainable = [name for name, parameter in model.named_parameters() if parameter.requires_grad]
        assert any("layers.0." in name for name in trainable), when
        assert any("multi_modal_projector" in name for name in trainable), when
        assert not any("layers.1." in name for name in trainable), f"the layers above the steered one, {when}"
        rmu.loss(model, batches, step=0)


def test_rmu_training_moves_forget_states_towards_the_control_vector(tiny_model, mini_clear, tmp_path):
    recorder = Recorder()
    run = config(tiny_model, mini_clear, tmp_path / "rmu", "rmu", max_steps=8, learning_rate=1e-2)
    unlearn(run, get_method("rmu").options_class(alpha=1.0), callbacks=[recorder])
    forget = [logs["forget_mse"] for logs in recorder.logs]
    assert forget[-1] < 0.8 * forget[0]
