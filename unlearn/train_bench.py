"""Peak memory and seconds per optimiser step of unlearning methods, each run in a fresh process.

Peak memory is ``torch.cuda.max_memory_allocated`` on a GPU and the peak resident set size (``ru_maxrss``) on the
CPU; one process per method, so no run sees another's peak. Each run goes through :func:`unlearn.unlearning.unlearn`
exactly as users run it (batch 1, one image per forget example, gradient checkpointing).
"""

from __future__ import annotations

import multiprocessing
import resource
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor, TrainerCallback

from unlearn.errors import UsageError

# On the CPU, --random-weights builds at most this many parameters (the real LLaVA-1.5-7B needs a GPU).
CPU_PARAMETER_LIMIT = 200_000_000


@dataclass
class BenchResult:
    """One method's figures: peak memory in bytes and mean seconds per optimiser step (after the first)."""

    method: str
    peak_bytes: int
    seconds_per_step: float


class StepTimer(TrainerCallback):
    """Wall-clock seconds of each optimiser step."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._start = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.seconds.append(time.perf_counter() - self._start)


def peak_memory_bytes() -> int:
    """CUDA peak allocated bytes on a GPU, else this process's peak resident set size (Linux reports KiB)."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _run_method(settings: dict[str, Any]) -> BenchResult:
    from unlearn.config import UnlearnConfig
    from unlearn.unlearning import unlearn

    torch.set_num_threads(settings.pop("threads"))
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    timer = StepTimer()
    config = UnlearnConfig(**settings)
    unlearn(config, callbacks=[timer])
    steps = timer.seconds[1:] or timer.seconds  # the first step includes one-off setup
    return BenchResult(config.method, peak_memory_bytes(), statistics.mean(steps))


def bench_method(settings: dict[str, Any]) -> BenchResult:
    """Run one unlearning configuration (``UnlearnConfig`` keyword arguments) in a fresh process."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(_run_method, (settings,))


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
