"""The training library on the tiny model: the reference model, checkpoints, merge, resume, NaN guard, atomic save."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText, TrainerCallback

from unlearn.architectures import anatomy
from unlearn.collate import training_batch
from unlearn.data import split_examples
from unlearn.errors import UsageError
from unlearn.methods import get_method
from unlearn.methods.logprobs import answer_nll, reference_logits
from unlearn.methods.rmu import decoder
from unlearn.models import LoraSettings, add_lora, load_model
from unlearn.training.config import FinetuneConfig, UnlearnConfig
from unlearn.training.runs import MERGED, finetune, unlearn
from unlearn.training.trainer import FINAL_TMP, RUN_CONFIG, save_final

QUIET = {"report_to": "none", "disable_tqdm": True, "logging_steps": 1}


def unlearn_config(model: str, data: str, out: Path, method: str = "ga", **overrides) -> UnlearnConfig:
    settings = {
        "model": model,
        "data": data,
        "method": method,
        "quantization": "4bit",
        "output_dir": str(out),
        "max_steps": 2,
        "learning_rate": 1e-3,
        "per_device_train_batch_size": 2,
        "gradient_accumulation_steps": 1,
        "save_strategy": "no",
        **QUIET,
    }
    return UnlearnConfig(**{**settings, **overrides})


def finetune_config(model: str, data: str, out: Path, **overrides) -> FinetuneConfig:
    settings = {
        "model": model,
        "data": data,
        "split": "forget10+tofu",
        "output_dir": str(out),
        "max_steps": 2,
        "learning_rate": 1e-2,
        "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 1,
        "save_strategy": "no",
        **QUIET,
    }
    return FinetuneConfig(**{**settings, **overrides})


def test_reference_gives_exactly_the_logits_of_the_model_before_training(family_model, mini_clear):
    model, processor = load_model(family_model, quantization="4bit")
    examples = split_examples(mini_clear, "forget10")
    batch = training_batch(processor, [examples[0], examples[1], examples[-1]])
    inputs = {key: value for key, value in batch.items() if key != "labels"}
    model.train()
    with torch.no_grad():
        before = model(**inputs).logits
    model = add_lora(model, LoraSettings(), gradient_checkpointing=True)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        (-answer_nll(model(**inputs).logits, batch["labels"])).backward()
        optimizer.step()
        optimizer.zero_grad()
    with torch.no_grad():
        assert not torch.allclose(model(**inputs).logits, before), "training moved the adapted model"
    assert torch.equal(reference_logits(model, batch), before)
    assert model(**inputs).logits.requires_grad, "the adapter is enabled again after the reference forward"


def test_a_reference_forward_leaves_every_requires_grad_flag_as_it_was(tiny_model, mini_clear):
    model, processor = load_model(tiny_model)
    model = add_lora(model, LoraSettings())
    decoder(model).layers[1].requires_grad_(False)  # as RMU freezes the layers above its own
    batch = training_batch(processor, split_examples(mini_clear, "forget10")[:2])
    flags = {name: parameter.requires_grad for name, parameter in model.named_parameters()}
    assert any(flags.values()) and not all(flag for name, flag in flags.items() if "lora_" in name)
    reference_logits(model, batch)
    assert flags == {name: parameter.requires_grad for name, parameter in model.named_parameters()}


def test_full_finetune_writes_a_checkpoint_with_a_frozen_vision_encoder(family_model, mini_clear, tmp_path):
    out = finetune(finetune_config(family_model, mini_clear, tmp_path / "vanilla", full=True, merge=True))
    model = AutoModelForImageTextToText.from_pretrained(out)
    assert type(model).__name__ == json.loads((Path(family_model) / "config.json").read_text())["architectures"][0]
    load_model(str(out))  # and through the project's loader, processor included
    # Compared by module name (the safetensors files keep transformers' legacy key layout).
    before = AutoModelForImageTextToText.from_pretrained(family_model).state_dict()
    after = model.state_dict()
    parts = anatomy(model)
    vision = [key for key in before if parts.frozen_vision(key)]
    projector = [key for key in before if key.startswith(f"{parts.projector}.")]
    language = [key for key in before if key.startswith(f"{parts.language}.layers.")]
    assert vision and all(torch.equal(before[key], after[key]) for key in vision), "the vision encoder is frozen"
    assert any(not torch.equal(before[key], after[key]) for key in projector), "the projector trained"
    assert any(not torch.equal(before[key], after[key]) for key in language), "the language model trained"
    assert (out / RUN_CONFIG).is_file() and not (out / FINAL_TMP).exists()


def test_lora_finetune_merge_writes_a_standalone_checkpoint(tiny_model, mini_clear, tmp_path):
    out = finetune(finetune_config(tiny_model, mini_clear, tmp_path / "lora", merge=True, lora_projector=True))
    assert (out / "adapter_model.safetensors").is_file()
    merged = AutoModelForImageTextToText.from_pretrained(out / MERGED)
    adapted, processor = load_model(tiny_model, adapter=str(out))
    batch = training_batch(processor, split_examples(mini_clear, "forget10")[:2])
    inputs = {key: value for key, value in batch.items() if key != "labels"}
    merged.eval()
    adapted.eval()
    with torch.no_grad():
        assert torch.allclose(merged(**inputs).logits, adapted(**inputs).logits, atol=1e-4)
        with adapted.disable_adapter():
            assert not torch.allclose(merged(**inputs).logits, adapted(**inputs).logits, atol=1e-4)


class Crash(TrainerCallback):
    """Kills the run at the end of optimiser step ``at``."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.at:
            raise RuntimeError("killed")


def adapter_weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "adapter_model.safetensors")


def test_resume_after_an_interrupted_run_gives_the_same_adapter(family_model, mini_clear, tmp_path):
    settings = {"max_steps": 4, "save_strategy": "steps", "save_steps": 2, "per_device_train_batch_size": 4}
    straight = unlearn(unlearn_config(family_model, mini_clear, tmp_path / "straight", "gd", **settings))
    killed = tmp_path / "killed"
    with pytest.raises(RuntimeError, match="killed"):
        unlearn(unlearn_config(family_model, mini_clear, killed, "gd", **settings), callbacks=[Crash(at=3)])
    assert (killed / "checkpoint-2").is_dir()
    assert not (killed / "adapter_config.json").exists() and not (killed / "adapter_model.safetensors").exists()
    resumed = unlearn(unlearn_config(family_model, mini_clear, killed, "gd", resume_from_checkpoint="true", **settings))
    assert (resumed / "checkpoint-4").is_dir()
    expected, found = adapter_weights(straight), adapter_weights(resumed)
    assert expected.keys() == found.keys()
    assert all(torch.allclose(expected[key], found[key], atol=1e-6) for key in expected)


def test_a_run_depends_only_on_its_seed(tiny_model, mini_clear, tmp_path):
    first, again, other = (
        adapter_weights(unlearn(unlearn_config(tiny_model, mini_clear, tmp_path / name, "npo", seed=seed)))
        for name, seed in (("first", 1), ("again", 1), ("other", 2))
    )
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert not all(torch.equal(first[key], other[key]) for key in first)


def test_resuming_needs_a_checkpoint(tiny_model, mini_clear, tmp_path):
    with pytest.raises(UsageError, match="no checkpoint"):
        unlearn(unlearn_config(tiny_model, mini_clear, tmp_path, resume_from_checkpoint="true"))


def test_a_nan_loss_stops_the_run_and_saves_nothing_as_final(tiny_model, mini_clear, tmp_path, monkeypatch):
    ga_loss = get_method("ga").loss

    def nan_loss(self, model, batches, step):
        loss, logs = ga_loss(self, model, batches, step)
        return loss * float("nan"), logs

    monkeypatch.setattr(get_method("ga"), "loss", nan_loss)
    out = tmp_path / "nan"
    with pytest.raises(UsageError, match="diverged"):
        unlearn(unlearn_config(tiny_model, mini_clear, out))
    leftovers = {path.name for path in out.iterdir()} if out.exists() else set()
    assert not leftovers & {"adapter_config.json", "adapter_model.safetensors", RUN_CONFIG, FINAL_TMP}


def test_a_nan_gradient_on_the_last_step_stops_the_run_and_saves_nothing_as_final(
    tiny_model, mini_clear, tmp_path, monkeypatch
):
    ga_loss = get_method("ga").loss

    def nan_gradient_on_the_last_step(self, model, batches, step):
        loss, logs = ga_loss(self, model, batches, step)
        if step == 1:  # the loss stays finite, its gradient does not
            loss.register_hook(lambda grad: grad * float("nan"))
        return loss, logs

    monkeypatch.setattr(get_method("ga"), "loss", nan_gradient_on_the_last_step)
    out = tmp_path / "nan"
    with pytest.raises(UsageError, match="non-finite gradient at step 1"):
        unlearn(unlearn_config(tiny_model, mini_clear, out))
    leftovers = {path.name for path in out.iterdir()} if out.exists() else set()
    assert not leftovers & {"adapter_config.json", "adapter_model.safetensors", RUN_CONFIG, FINAL_TMP}


def test_a_finished_run_is_not_overwritten(tiny_model, mini_clear, tmp_path):
    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(UsageError, match="already holds a finished run"):
        unlearn(unlearn_config(tiny_model, mini_clear, tmp_path))


def test_save_final_renames_the_loadable_config_last(tmp_path, monkeypatch):
    moved = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (moved.append(Path(dst).name), real_replace(src, dst)))

    def write(folder: Path) -> None:
        for name in ("adapter_config.json", "adapter_model.safetensors", "z_tokenizer.json"):
            (folder / name).write_text(name)

    save_final(tmp_path, write)
    assert moved[-1] == "adapter_config.json" and len(moved) == 3
    assert not (tmp_path / FINAL_TMP).exists()


def test_a_failed_final_write_leaves_no_final_files(tmp_path):
    def write(folder: Path) -> None:
        (folder / "adapter_model.safetensors").write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_final(tmp_path, write)
    assert not (tmp_path / "adapter_model.safetensors").exists() and not (tmp_path / "adapter_config.json").exists()
