"""Models with random weights for benchmarks: a checkpoint written from a real configuration (optionally shrunk), the
real-width scale model with k language layers, and a weightless model on PyTorch's ``meta`` device with LoRA adapters
(LLaVA-1.5-7B's module layout without its 14 GB of weights).
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
from unlearn.offline.memory import GIB, available_memory
from unlearn.serving.pool import adapter_names

# What building a checkpoint on the CPU holds besides its float32 parameters: Python, torch and the libraries (0.47 GiB
# measured building the 1- and 2-layer LLaVA-1.5 scale models), with room to spare.
CPU_BUILD_OVERHEAD = GIB


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


def load_config(config_dir: str | Path, overrides: list[str]) -> Any:
    """The model config in ``config_dir`` with ``overrides`` (``KEY=VALUE``) applied."""
    if not Path(config_dir, "config.json").is_file():
        raise UsageError(f"no config.json in {config_dir}")
    config = AutoConfig.from_pretrained(config_dir)
    apply_overrides(config, overrides)
    return config


def cpu_build_bytes(parameters: int) -> int:
    """Memory that building a checkpoint of ``parameters`` on the CPU needs: 4 bytes a float32 parameter, plus
    ``CPU_BUILD_OVERHEAD``."""
    return 4 * parameters + CPU_BUILD_OVERHEAD


def count_parameters(config: Any) -> int:
    """Parameters of the model ``config`` describes (built on the meta device: no memory used)."""
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config)
    return sum(parameter.numel() for parameter in model.parameters())


def write_random_checkpoint(config_dir: str | Path, overrides: list[str], out: Path, seed: int = 0) -> int:
    """Save the model of ``config_dir`` (with overrides) with random weights, and its processor; the parameter count.

    On a GPU the model is built there in its compute dtype (bf16, or float16 without bf16). On the CPU it is built
    and saved in float32, the CPU's compute dtype: loading it then maps the file, and the weights kept in full
    precision (vision tower, projector, embeddings, head) stay views of the mapped file instead of float32 copies in
    anonymous memory, as a bf16 file would need. That takes :func:`cpu_build_bytes` (4 bytes a parameter, 3.4 GiB
    for the 0.79 B parameters of the 1-layer LLaVA-1.5); a model that needs more than the available memory is refused.
    """
    config = load_config(config_dir, overrides)
    parameters = count_parameters(config)
    cuda = torch.cuda.is_available()
    if not cuda and cpu_build_bytes(parameters) > available_memory():
        raise UsageError(
            f"building {config_dir} ({parameters / 1e9:.2f} B parameters) with random weights on the CPU needs about "
            f"{cpu_build_bytes(parameters) / GIB:.1f} GiB of memory (float32), {available_memory() / GIB:.1f} GiB is "
            "available: use a CUDA GPU, fewer layers (--layers) or shrink it with --override "
            "(e.g. text_config.num_hidden_layers=2 text_config.hidden_size=64)"
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


def write_scale_model(
    config_dir: str | Path, layers: int, out: Path, seed: int = 0, overrides: tuple[str, ...] = ()
) -> int:
    """Save the real-width scale model of ``config_dir`` with random weights: ``layers`` language layers
    (``text_config.num_hidden_layers``) and everything else at its real size (vision tower, projector, embeddings,
    head); the parameter count. The 1-layer LLaVA-1.5 has 0.79 B parameters, each further layer 0.2 B.
    """
    if layers < 1:
        raise UsageError(f"a scale model needs at least one language layer, not {layers}")
    return write_random_checkpoint(config_dir, [*overrides, f"text_config.num_hidden_layers={layers}"], out, seed)


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
