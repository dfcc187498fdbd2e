"""Models with random weights for benchmarks: a checkpoint written from a real configuration (optionally shrunk), and
a weightless model on PyTorch's ``meta`` device with LoRA adapters (LLaVA-1.5-7B's module layout without its 14 GB of
weights).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml
from peft import PeftModel, get_peft_model
from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

from unlearn.errors import UsageError
from unlearn.models import LoraSettings
from unlearn.serving.pool import adapter_names

# On the CPU, --random-weights builds at most this many parameters (the real LLaVA-1.5-7B needs a GPU).
CPU_PARAMETER_LIMIT = 200_000_000


def apply_overrides(config: Any, overrides: list[str]) -> None:
    """Set ``KEY=VALUE`` pairs on a model config; dotted keys reach sub-configs (``text_config.num_hidden_layers``)."""
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep:
            raise UsageError(f"override {override!r} is not KEY=VALUE")
        *parents, name = key.split(".")
        target = config
        for parent in parents:
            target = getattr(target, parent, None)
        if target is None or not hasattr(target, name):
            raise UsageError(f"the model config has no {key!r}")
        setattr(target, name, yaml.safe_load(raw))


def count_parameters(config: Any) -> int:
    """Parameters of the model ``config`` describes (built on the meta device: no memory used)."""
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config)
    return sum(parameter.numel() for parameter in model.parameters())


def write_random_checkpoint(config_dir: str, overrides: list[str], out: Path, seed: int = 0) -> int:
    """Save the model of ``config_dir`` (with overrides) with random weights, and its processor; the parameter count.

    A real-size model is built straight on the GPU in its compute dtype; on the CPU only small models are allowed.
    """
    if not Path(config_dir, "config.json").is_file():
        raise UsageError(f"no config.json in {config_dir}")
    config = AutoConfig.from_pretrained(config_dir)
    apply_overrides(config, overrides)
    parameters = count_parameters(config)
    cuda = torch.cuda.is_available()
    if not cuda and parameters > CPU_PARAMETER_LIMIT:
        raise UsageError(
            f"{config_dir} has {parameters / 1e9:.2f} B parameters: building it with random weights needs a CUDA GPU; "
            "on the CPU shrink it with --override (e.g. text_config.num_hidden_layers=2 text_config.hidden_size=64)"
        )
    torch.manual_seed(seed)
    dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if cuda else torch.float32
    with torch.device("cuda" if cuda else "cpu"):
        model = AutoModelForImageTextToText.from_config(config, dtype=dtype)
    model.save_pretrained(out)
    AutoProcessor.from_pretrained(config_dir).save_pretrained(out)
    del model
    if cuda:
        torch.cuda.empty_cache()
    return parameters


def weightless_model(config: str | Path, adapters: int, settings: LoraSettings | None = None) -> PeftModel:
    """The architecture of ``config`` on the meta device with ``adapters`` LoRA adapters (``adapter_1``...)."""
    settings = settings or LoraSettings()
    names = adapter_names(adapters)
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(AutoConfig.from_pretrained(config))
        model = get_peft_model(model, settings.config(model), adapter_name=names[0])
        for name in names[1:]:
            model.add_adapter(name, settings.config(model))
    return model.eval()
