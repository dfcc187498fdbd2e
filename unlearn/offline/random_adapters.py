"""LoRA adapters with random non-zero weights: stand-ins for unlearned adapters when testing and timing the app.

A fresh LoRA adapter changes nothing (its ``lora_B`` starts at zero); drawing ``lora_B ~ N(0, std^2)`` makes each
adapter answer differently from the base model and from the others. Each folder is laid out like a real one:
adapter weights (safetensors), processor files, ``run_config.json`` and optionally ``summary.json``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from unlearn.figures import write_json_strict
from unlearn.models import LoraSettings, add_lora, load_model


def write_random_adapters(
    base: str,
    out: str | Path,
    run_configs: Sequence[Mapping[str, Any]],
    summaries: Sequence[Mapping[str, Any] | None] | None = None,
    std: float = 0.5,
    seed: int = 0,
) -> list[Path]:
    """Write an adapter folder ``out/adapter-<i>`` per run config (``method``, ``forget``...); weights from ``seed``."""
    model, processor = load_model(base)
    torch.manual_seed(seed)  # lora_A's initialisation: the same adapters whatever ran before in this process
    model = add_lora(model, LoraSettings(projector=True))
    generator = torch.Generator().manual_seed(seed)
    folders = []
    for index, run_config in enumerate(run_configs):
        folder = Path(out) / f"adapter-{index + 1}"
        randomize_lora(model, generator, std)
        model.save_pretrained(folder, safe_serialization=True)
        processor.save_pretrained(folder)
        write_json_strict(folder / "run_config.json", {"model": base, **run_config})
        summary = summaries[index] if summaries else None
        if summary is not None:
            write_json_strict(folder / "summary.json", summary)
        folders.append(folder)
    return folders


@torch.no_grad()
def randomize_lora(model: torch.nn.Module, generator: torch.Generator, std: float = 0.5) -> None:
    """Draw every ``lora_B`` weight of ``model`` from ``N(0, std^2)`` (on the CPU, so a seed gives the same weights
    on any device)."""
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)
