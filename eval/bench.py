"""Time the batched evaluation against the one-sample loop and check that both give the same records."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from peft import PeftModel
from transformers import PreTrainedModel, ProcessorMixin

from eval.evaluator import evaluate
from eval.logs import read_records

LOSS_KEYS = ("loss", "paraphrased_loss", "perturbed_losses", "option_losses")
TEXT_KEYS = ("id", "prompt", "reference", "generation", "options", "prediction")


def compare_records(a: list[dict[str, Any]], b: list[dict[str, Any]], atol: float = 1e-5) -> list[str]:
    """The differences between two runs' records of one task: losses beyond ``atol``, any differing text or id."""
    if len(a) != len(b):
        return [f"{len(a)} records against {len(b)}"]
    problems = []
    for x, y in zip(a, b, strict=True):
        for key in LOSS_KEYS:
            if key in x and not np.allclose(x[key], y[key], rtol=0.0, atol=atol):
                problems.append(f"sample {x['id']}: {key} {x[key]} != {y[key]}")
        for key in TEXT_KEYS:
            if x.get(key) != y.get(key):
                problems.append(f"sample {x['id']}: {key} {x.get(key)!r} != {y.get(key)!r}")
    return problems


def max_loss_difference(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> float:
    """The largest absolute difference between the two runs' losses of one task."""
    diffs = [np.max(np.abs(np.subtract(x[k], y[k]))) for x, y in zip(a, b, strict=True) for k in LOSS_KEYS if k in x]
    return float(max(diffs, default=0.0))


@dataclass
class BenchResult:
    """Best wall-clock times of the two modes, and how their records compare."""

    loop_seconds: float
    batched_seconds: float
    samples: int
    max_loss_difference: float
    problems: list[str]

    @property
    def speedup(self) -> float:
        return self.loop_seconds / self.batched_seconds


def benchmark(
    model: PreTrainedModel | PeftModel,
    processor: ProcessorMixin,
    data: str,
    output_dir: str | Path,
    batch_size: int = 32,
    repeats: int = 1,
    **options: Any,
) -> BenchResult:
    """Run :func:`eval.evaluator.evaluate` as a one-sample loop and batched (best of ``repeats`` each, after one
    warm-up sample) into ``output_dir/loop`` and ``output_dir/batched``, and compare every task's records."""
    out = Path(output_dir)
    warmup = {**options, "max_samples": 1, "progress": False}
    evaluate(model, processor, data, output_dir=out / "warmup", **warmup)
    times = {}
    for mode in ("loop", "batched"):
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            summary = evaluate(
                model, processor, data, batch_size=batch_size, loop=mode == "loop", output_dir=out / mode, **options
            )
            best = min(best, time.perf_counter() - start)
        times[mode] = best
    problems, samples, worst = [], 0, 0.0
    for task in summary["config"]["tasks"]:
        loop, batched = read_records(out / "loop", task), read_records(out / "batched", task)
        problems += [f"{task} {p}" for p in compare_records(loop, batched)]
        samples += len(batched)
        if len(loop) == len(batched):
            worst = max(worst, max_loss_difference(loop, batched))
    return BenchResult(times["loop"], times["batched"], samples, worst, problems)
