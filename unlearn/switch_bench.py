"""Time what the app does between two answers: switching the active LoRA adapter, and turning adapters off and on
for the original model. Works on loaded models and on weightless ones built on PyTorch's ``meta`` device from a real
configuration (LLaVA-1.5-7B's module layout without its 14 GB of weights: switching never touches tensor data).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch
from peft import PeftModel, get_peft_model
from tqdm import tqdm
from transformers import AutoConfig, AutoModelForImageTextToText

from unlearn.models import LoraSettings
from unlearn.serving import active, adapter_names


def weightless_model(config: str | Path, adapters: int, settings: LoraSettings | None = None) -> PeftModel:
    """The architecture of ``config`` on the meta device with ``adapters`` LoRA adapters (``adapter_1``...)."""
    settings = settings or LoraSettings()
    names = adapter_names(adapters)
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(AutoConfig.from_pretrained(config))
        model = get_peft_model(model, settings.config(), adapter_name=names[0])
        for name in names[1:]:
            model.add_adapter(name, settings.config())
    return model.eval()


def summarize(milliseconds: list[float]) -> dict[str, float]:
    """Mean, median and max of the timings (ms) and their count."""
    return {
        "mean_ms": statistics.fmean(milliseconds),
        "median_ms": statistics.median(milliseconds),
        "max_ms": max(milliseconds),
        "count": len(milliseconds),
    }


def _milliseconds(action) -> float:
    start = time.perf_counter()
    action()
    return 1000 * (time.perf_counter() - start)


def _enter_and_exit(context) -> None:
    with context:
        pass


def time_switches(model: PeftModel, rounds: int) -> dict[str, dict[str, float]]:
    """Each round: switch to every adapter in turn, then to the original; also PEFT's ``disable_adapter()``.

    ``set_adapter``: one switch to an adapter. ``original``: adapters off and back on, as the app answers with the
    original. ``peft_disable_adapter``: the same through ``PeftModel.disable_adapter()``, for comparison.
    """
    timings: dict[str, list[float]] = {"set_adapter": [], "original": [], "peft_disable_adapter": []}
    for _ in tqdm(range(rounds), desc="switching", unit="round"):
        for name in model.peft_config:
            timings["set_adapter"].append(_milliseconds(lambda name=name: _enter_and_exit(active(model, name))))
        timings["original"].append(_milliseconds(lambda: _enter_and_exit(active(model, None))))
        timings["peft_disable_adapter"].append(_milliseconds(lambda: _enter_and_exit(model.disable_adapter())))
    return {kind: summarize(values) for kind, values in timings.items()}
