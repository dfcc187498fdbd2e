"""Benchmark unlearning methods: peak memory and seconds per optimiser step, each method in a fresh process.

python -m scripts.bench_train --model TINY --data D [--methods ga npo] [--quantization 4bit]
python -m scripts.bench_train --config ../shared/models/llava-1.5-7b-hf --random-weights --quantization 4bit  (GPU)
python -m scripts.bench_train --config ../shared/models/llava-1.5-7b-hf --random-weights --quantization 4bit \\
    --layers 1,2,4      (the real-width model with k language layers; fits peak = a + b*k and projects to all layers)
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import shutil
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm
from transformers import TrainerCallback

from unlearn.errors import OUTPUT_FILE, RULES, UsageError, parse_checked, run_cli
from unlearn.figures import write_json_strict
from unlearn.methods import METHODS
from unlearn.offline.memory import (
    GIB,
    ResidentPeak,
    analytic_estimate,
    analytic_per_layer,
    available_memory,
    cpu_run_bytes,
    linear_fit,
    map_large_allocations,
    model_shape,
)
from unlearn.offline.mini_clear import write_mini_clear
from unlearn.offline.random_weights import load_config, write_random_checkpoint, write_scale_model


@dataclass
class BenchResult:
    """One run's figures in bytes and seconds. On a GPU the peaks are CUDA peak allocated memory, the training one
    after a reset at the start of training; on the CPU they are the peaks of anonymous memory (``RssAnon``) sampled
    while loading and while training, and ``file_bytes`` the peak of file-backed memory (``RssFile``: the mapped
    checkpoint). ``peak_bytes`` is the whole run's (CUDA peak, or the CPU's peak resident set size)."""

    method: str
    peak_bytes: int
    seconds_per_step: float
    load_peak_bytes: int = 0
    train_peak_bytes: int = 0
    file_bytes: int = 0
    layers: int | None = None


class StepTimer(TrainerCallback):
    """Wall-clock seconds of each optimiser step."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._start = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.seconds.append(time.perf_counter() - self._start)


class MemoryPhases(TrainerCallback):
    """The peak memory of loading (model, LoRA, trainer: until training begins) and of training, apart."""

    def __init__(self) -> None:
        self.cuda = torch.cuda.is_available()
        self.sampler = None if self.cuda else ResidentPeak()
        if self.sampler is not None:
            self.sampler.start()
        self.load_peak = self.train_peak = self.file_peak = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.sampler is None:
            self.load_peak = torch.cuda.max_memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            return
        peak = self.sampler.peak()
        self.load_peak, self.file_peak = peak["anon"], peak["file"]
        self.sampler.reset()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.sampler is None:
            self.train_peak = torch.cuda.max_memory_allocated()
            return
        peak = self.sampler.peak()
        self.train_peak, self.file_peak = peak["anon"], max(self.file_peak, peak["file"])
        self.sampler.stop()


def peak_memory_bytes() -> int:
    """CUDA peak allocated bytes on a GPU, else this process's peak resident set size (Linux reports KiB)."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _run_method(settings: dict[str, Any]) -> BenchResult:
    from unlearn.training.config import UnlearnConfig
    from unlearn.training.runs import unlearn

    torch.set_num_threads(settings.pop("threads"))
    layers = settings.pop("layers")
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    else:
        map_large_allocations()  # freed activations leave the process: anonymous memory then counts live memory
    timer, phases = StepTimer(), MemoryPhases()
    config = UnlearnConfig(**settings)
    unlearn(config, callbacks=[timer, phases])
    steps = timer.seconds[1:] or timer.seconds  # the first step includes one-off setup
    return BenchResult(
        config.method,
        max(peak_memory_bytes(), phases.load_peak),  # a GPU's peak was reset when training began
        statistics.mean(steps),
        phases.load_peak,
        phases.train_peak,
        phases.file_peak,
        layers,
    )


def bench_method(settings: dict[str, Any]) -> BenchResult:
    """Run one unlearning configuration (``UnlearnConfig`` keyword arguments) in a fresh process."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(_run_method, (settings,))


def layer_counts(text: str) -> list[int]:
    """``1,2,4`` -> [1, 2, 4]: distinct positive language-layer counts, at least two (for the fit)."""
    try:
        counts = sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of layer counts") from None
    if len(counts) < 2 or counts[0] < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give at least two distinct positive layer counts, e.g. 1,2,4")
    return counts


OPTION_RULES = {**RULES, "out": OUTPUT_FILE}  # unlearn.errors.RULES, but --out is a JSON file


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench_train",
        description="Peak memory and seconds per optimiser step of unlearning methods (batch 1, one image, gradient "
        "checkpointing, through unlearn()), and the npo/ga ratios. On a GPU: CUDA peak allocated memory, of loading "
        "and of training apart. On the CPU: anonymous memory (RssAnon, sampled), of loading and of training apart, "
        "and the file-backed memory of the mapped checkpoint (RssFile) beside it; allocations of 1 MiB or more get "
        "their own mapping, so freed activations do not stay resident. With --layers: the real-width model with k "
        "language layers for each k, a least-squares fit peak = a + b*k, its projection to all the model's layers "
        "and an analytic estimate.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--model", help="checkpoint folder or Hub id to unlearn from")
    model.add_argument("--config", help="folder with a model's config.json and processor (needs --random-weights)")
    parser.add_argument(
        "--random-weights",
        action="store_true",
        help="build the --config model with random weights (on the GPU in bf16; on the CPU in float32, refused "
        "when the build or the run would not fit in the available memory)",
    )
    parser.add_argument(
        "--override", nargs="*", default=[], metavar="KEY=VALUE", help="change the --config model (e.g. shrink it)"
    )
    parser.add_argument(
        "--layers",
        type=layer_counts,
        metavar="K1,K2,...",
        help="with --config: benchmark the model with each of these numbers of language layers "
        "(text_config.num_hidden_layers; the vision tower, projector, embeddings and head keep their size), fit "
        "peak = a + b*k and project it to the config's own number of layers",
    )
    parser.add_argument("--data", help="CLEAR folder or Hub id; default: a small mini-CLEAR written to a temp folder")
    parser.add_argument("--methods", nargs="+", default=["ga", "npo"], help="methods to measure")
    parser.add_argument("--quantization", choices=["4bit", "8bit"], help="load the base quantized (QLoRA)")
    parser.add_argument("--steps", type=int, default=3, help="optimiser steps per method (the first is not timed)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads per run")
    parser.add_argument("--seed", type=int, default=0, help="seed of the runs and of the random weights")
    parser.add_argument(
        "--out", help="also write the figures to this JSON file (with --layers: the runs, the fits and the estimates)"
    )
    return parser


def run_settings(
    model: str, data: str, method: str, args: argparse.Namespace, output_dir: Path, layers: int | None = None
) -> dict:
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
        "layers": layers,
    }


def check_cpu_memory(args: argparse.Namespace) -> None:
    """On the CPU, refuse a --config model (its largest --layers) whose build or run would not fit in memory."""
    if torch.cuda.is_available():
        return
    layers = [f"text_config.num_hidden_layers={max(args.layers)}"] if args.layers else []
    config = load_config(args.config, [*args.override, *layers])
    need, available = cpu_run_bytes(model_shape(config)), available_memory()
    if need > available:
        what = f" with {max(args.layers)} language layers" if args.layers else ""
        raise UsageError(
            f"{args.config}{what} needs about {need / GIB:.1f} GiB of memory on the CPU (float32 checkpoint, "
            f"4-bit training) and {available / GIB:.1f} GiB is available: it needs a CUDA GPU, fewer --layers or "
            "--override to shrink it"
        )


def print_results(results: list[BenchResult], args: argparse.Namespace) -> None:
    cpu = not torch.cuda.is_available()
    device = "CPU (anonymous memory; file-backed apart)" if cpu else torch.cuda.get_device_name()
    print(f"device: {device}; quantization: {args.quantization or 'none'}; {args.steps} steps per method")
    header = ("layers", "method", "load GiB", "train GiB", "file GiB", "peak GiB", "s/step")
    print(" ".join(f"{name:>10}" for name in header))
    for r in results:
        layers = "-" if r.layers is None else str(r.layers)
        gib = (r.load_peak_bytes, r.train_peak_bytes, r.file_bytes, r.peak_bytes)
        cells = [layers, r.method, *(f"{value / GIB:.3f}" for value in gib), f"{r.seconds_per_step:.3f}"]
        print(" ".join(f"{cell:>10}" for cell in cells))
    for layers in sorted({r.layers for r in results}, key=lambda k: -1 if k is None else k):
        by_name = {r.method: r for r in results if r.layers == layers}
        if "npo" in by_name and "ga" in by_name:
            npo, ga = by_name["npo"], by_name["ga"]
            where = "" if layers is None else f" ({layers} layers)"
            print(
                f"npo/ga{where}: peak memory {npo.peak_bytes / ga.peak_bytes:.3f}, training peak "
                f"{npo.train_peak_bytes / max(ga.train_peak_bytes, 1):.3f}, "
                f"seconds per step {npo.seconds_per_step / ga.seconds_per_step:.3f}"
            )


def memory_model(results: list[BenchResult], args: argparse.Namespace) -> dict[str, Any]:
    """Per method, the fit train_peak = a + b*k and its projection to the config's layers; the analytic estimates."""
    shape = model_shape(load_config(args.config, args.override))
    cpu = not torch.cuda.is_available()
    fits: dict[str, dict[str, float]] = {}
    for method in args.methods:
        rows = [r for r in results if r.method == method]
        a, b = linear_fit([r.layers for r in rows], [r.train_peak_bytes for r in rows])
        fits[method] = {"a_bytes": a, "b_bytes_per_layer": b, "projected_bytes": a + b * shape.layers}
    gpu, here = analytic_estimate(shape, dtype_bytes=2), analytic_estimate(shape, dtype_bytes=4 if cpu else 2)
    per_layer = analytic_per_layer(shape, dtype_bytes=4 if cpu else 2)
    print(f"fit over layers {args.layers} of the {'anonymous' if cpu else 'CUDA'} training peak: peak = a + b*k")
    for method, fit in fits.items():
        print(
            f"  {method:10} a {fit['a_bytes'] / GIB:.3f} GiB, b {fit['b_bytes_per_layer'] / GIB:.3f} GiB per layer; "
            f"projected to {shape.layers} layers: {fit['projected_bytes'] / GIB:.2f} GiB"
        )
    if "npo" in fits and "ga" in fits:
        ratio = fits["npo"]["projected_bytes"] / fits["ga"]["projected_bytes"]
        print(f"  npo/ga of the projections: {ratio:.3f}")
    parts = ", ".join(f"{key} {value / GIB:.2f}" for key, value in asdict(gpu).items())
    print(f"analytic estimate, {shape.layers} layers, GPU in bf16: {gpu.total / GIB:.2f} GiB ({parts} GiB)")
    upcast = gpu.total + gpu.full_precision  # prepare_model_for_kbit_training casts bf16 non-4-bit weights to float32
    print(f"  with PEFT's float32 copy of the full-precision weights (as add_lora loads today): {upcast / GIB:.2f} GiB")
    anonymous = here.total - here.full_precision if cpu else here.total
    what = "this CPU in float32, anonymous part (no mapped weights, no process)" if cpu else "this GPU"
    print(
        f"analytic estimate, {shape.layers} layers, {what}: {anonymous / GIB:.2f} GiB, "
        f"{per_layer / GIB:.3f} GiB per layer"
    )
    return {
        "layers_projected": shape.layers,
        "fits": fits,
        "analytic_gpu_bf16": asdict(gpu) | {"total": gpu.total, "total_with_peft_float32_upcast": upcast},
        "analytic_here": {"total": anonymous, "per_layer": per_layer},
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_checked(build_parser(), argv, OPTION_RULES)
    unknown = [method for method in args.methods if method not in METHODS]
    if unknown:
        raise UsageError(f"unknown methods {unknown}; choose from {', '.join(sorted(METHODS))}")
    if args.config and not args.random_weights:
        raise UsageError("--config builds a model from its configuration: add --random-weights")
    if args.layers and not args.config:
        raise UsageError("--layers builds models from a configuration: use it with --config and --random-weights")
    if args.config:
        check_cpu_memory(args)
    results: list[BenchResult] = []
    with tempfile.TemporaryDirectory(prefix="bench_train-") as tmp:
        work = Path(tmp)
        data = args.data or str(write_mini_clear(work / "data", 10, args.seed, 3, 4))
        for layers in args.layers or [None]:
            model = args.model
            if args.config:
                model = str(work / f"model-{layers}")
                if layers is None:
                    parameters = write_random_checkpoint(args.config, args.override, Path(model), args.seed)
                else:
                    parameters = write_scale_model(args.config, layers, Path(model), args.seed, tuple(args.override))
                where = "" if layers is None else f" with {layers} language layer{'s' if layers > 1 else ''}"
                print(f"built {args.config}{where} with random weights: {parameters / 1e6:.1f} M parameters")
            for method in tqdm(args.methods, desc="methods"):
                results.append(bench_method(run_settings(model, data, method, args, work / f"runs-{layers}", layers)))
            if layers is not None:
                shutil.rmtree(model)  # a scale model takes 4 bytes a parameter on disk
    print_results(results, args)
    figures: Any = [asdict(result) for result in results]
    if args.layers:
        figures = {"runs": figures, **memory_model(results, args)}
    if args.out:
        write_json_strict(args.out, figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
