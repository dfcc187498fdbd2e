"""Adapter folders like ``scripts.unlearn`` writes, for the Hub, push and model-card tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from unlearn.models import LoraSettings, add_lora, load_model

SUMMARY = {
    "forget_face": {"accuracy": 0.1, "probability": 0.2, "probability_ci": [0.1, 0.3], "samples": 12},
    "forget_caption": {"rouge_l": 0.31, "probability": 0.25, "truth_ratio": 0.62, "samples": 12},
    "retain_face": {"accuracy": 0.95, "probability": 0.81, "samples": 90},
    "forget": 0.2,
    "forget_ci": [0.1, 0.3],
    "retain": 0.8,
    "real": 0.5,
    "model_utility": 0.6153846153846154,
    "forget_quality_ks": 0.9,
    "forget_quality_js": 0.75,
    "forget_quality_samples": {"model": 12, "gold": 12},
    "data_fingerprint": {"source": "data", "revision": None, "content_sha256": "ab" * 32},
    "config": {"forget": "forget10", "adapter": "outputs/npo", "model": "outputs/vanilla"},
}


def run_config(model: str) -> dict[str, Any]:
    """A run_config.json of an NPO+GD unlearning run on ``model``."""
    return {
        "method": "npo_gd",
        "forget": "forget10",
        "retain": "retain90",
        "model": model,
        "data": "therem/CLEAR",
        "forget_modality": "both",
        "quantization": "4bit",
        "beta": 0.5,
        "learning_rate": 0.001,
        "num_train_epochs": 3,
    }


def write_adapter(tiny_model: str, folder: Path, seed: int = 0, summary: dict | None = SUMMARY) -> Path:
    """A LoRA adapter of ``tiny_model`` with random (non-zero) weights drawn from ``seed``, its processor files,
    run_config.json and (unless None) summary.json, plus a pickle and a checkpoint folder that must not be published."""
    model, processor = load_model(tiny_model)
    torch.manual_seed(seed)
    model = add_lora(model, LoraSettings(projector=True))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_" in name:
                parameter.normal_(std=0.05)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    (folder / "run_config.json").write_text(json.dumps(run_config(tiny_model)))
    if summary is not None:
        (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "training_args.bin").write_bytes(b"pickle")
    (folder / "checkpoint-10").mkdir()
    return folder


def lora_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The LoRA parameters of a PEFT model by name."""
    return {name: parameter.detach().clone() for name, parameter in model.named_parameters() if "lora_" in name}
