"""Benchmark unlearning methods: peak memory and seconds per optimiser step, each method in a fresh process.

python -m scripts.bench_train --model TINY --data D [--methods ga npo] [--quantization 4bit]
python -m scripts.bench_train --config ../shared/models/llava-1.5-7b-hf --random-weights --quantization 4bit  (GPU)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm
from transformers import TrainerCallback

from unlearn.errors import UsageError, run_cli
from unlearn.methods import METHODS
from unlearn.offline.mini_clear import write_mini_clear
from unlearn.offline.random_weights import write_random_checkpoint

GIB = 1024**3


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
    from unlearn.training.config import UnlearnConfig
    from unlearn.training.runs import unlearn

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench_train",
        description="Peak memory (CUDA peak allocated on a GPU, peak RSS on the CPU) and seconds per optimiser step "
        "of unlearning methods, and the npo/ga ratios.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--model", help="checkpoint folder or Hub id to unlearn from")
    model.add_argument("--config", help="folder with a model's config.json and processor (needs --random-weights)")
    parser.add_argument(
        "--random-weights", action="store_true", help="build the --config model with random weights (GPU for 7B)"
    )
    parser.add_argument(
        "--override", nargs="*", default=[], metavar="KEY=VALUE", help="change the --config model (e.g. shrink it)"
    )
    parser.add_argument("--data", help="CLEAR folder or Hub id; default: a small mini-CLEAR written to a temp folder")
    parser.add_argument("--methods", nargs="+", default=["ga", "npo"], help="methods to measure")
    parser.add_argument("--quantization", choices=["4bit", "8bit"], help="load the base quantized (QLoRA)")
    parser.add_argument("--steps", type=int, default=3, help="optimiser steps per method (the first is not timed)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads per run")
    parser.add_argument("--seed", type=int, default=0, help="seed of the runs and of the random weights")
    parser.add_argument("--out", help="also write the figures to this JSON file")
    return parser


def run_settings(model: str, data: str, method: str, args: argparse.Namespace, output_dir: Path) -> dict:
    """``UnlearnConfig`` keyword arguments of one benchmark run: batch 1, one image, gradient checkpointing."""
    return {
        "model": model,
        "data": data,
        "method": method,
        "quantization": args.quantization,
        "forget_modality": "visual",
        "output_dir": str(output_dir / method),
        "max_steps": args.steps,
        "per_device_train_batch_size": 1,
        "gradient_accumulation_steps": 1,
        "gradient_checkpointing": True,
        "save_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "seed": args.seed,
        "threads": args.threads,
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    unknown = [method for method in args.methods if method not in METHODS]
    if unknown:
        raise UsageError(f"unknown methods {unknown}; choose from {', '.join(sorted(METHODS))}")
    if args.config and not args.random_weights:
        raise UsageError("--config builds a model from its configuration: add --random-weights")
    results: list[BenchResult] = []
    with tempfile.TemporaryDirectory(prefix="bench_train-") as tmp:
        work = Path(tmp)
        data = args.data or str(write_mini_clear(work / "data", 10, args.seed, 3, 4))
        model = args.model
        if args.config:
            parameters = write_random_checkpoint(args.config, args.override, work / "model", args.seed)
            print(f"built {args.config} with random weights: {parameters / 1e6:.1f} M parameters")
            model = str(work / "model")
        for method in tqdm(args.methods, desc="methods"):
            results.append(bench_method(run_settings(model, data, method, args, work / "runs")))
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU (peak RSS)"
    print(f"device: {device}; quantization: {args.quantization or 'none'}; {args.steps} steps per method")
    print(f"{'method':10} {'peak GiB':>9} {'s/step':>8}")
    for result in results:
        print(f"{result.method:10} {result.peak_bytes / GIB:9.3f} {result.seconds_per_step:8.3f}")
    by_name = {result.method: result for result in results}
    if "npo" in by_name and "ga" in by_name:
        npo, ga = by_name["npo"], by_name["ga"]
        print(
            f"npo/ga: peak memory {npo.peak_bytes / ga.peak_bytes:.3f}, "
            f"seconds per step {npo.seconds_per_step / ga.seconds_per_step:.3f}"
        )
    if args.out:
        Path(args.out).write_text(json.dumps([asdict(result) for result in results], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
