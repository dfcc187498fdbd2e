"""The prepared GPU check: one command that measures the real-scale path and writes every figure to one JSON file.

python -m scripts.gpu_check --out FOLDER     # on a GPU: LLaVA-1.5-7B with random weights, all 32 language layers
python -m scripts.gpu_check --out FOLDER     # on the CPU: the same code on the real-width 1-layer scale model

It builds the model from ``../shared/models/llava-1.5-7b-hf`` with random weights (on a GPU straight onto it in
bf16), loads it in 4-bit through the project's own ``load_model``, and measures:

1. GA and NPO unlearning: peak memory of loading and of training, seconds per step (batch 1, one image of 576
   tokens, gradient checkpointing), each in a fresh process, as ``scripts.bench_train`` does;
2. scoring: the three ways of ``scripts.bench_eval``, checked equal, against the FLOP floor;
3. a 4-bit evaluation of a random LoRA adapter, every task on a few samples.

``FOLDER/gpu_check.json`` is rewritten after each step, so a crash keeps the figures measured before it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch

from eval.bench import bench_samples, benchmark_scoring
from eval.evaluator import evaluate
from eval.logs import write_json
from scripts.bench_train import bench_method, run_settings
from unlearn.errors import UsageError, run_cli
from unlearn.models import LoraSettings, add_lora, load_model
from unlearn.offline.mini_clear import write_mini_clear
from unlearn.offline.random_adapters import randomize_lora
from unlearn.offline.random_weights import load_config, write_scale_model

LLAVA = Path(__file__).resolve().parents[1].parent / "shared" / "models" / "llava-1.5-7b-hf"
SCORING_TASKS = ("forget_caption", "real_faces")
# The goals for the 7B run on one GPU; on the CPU form they are reported, not judged.
GOALS = {"npo_train_peak_gb": 8.0, "npo_over_ga_peak": 1.1, "prefix_speedup_over_full": 3.0, "prefix_times_floor": 1.3}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.gpu_check",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", required=True, metavar="FOLDER", help="folder for gpu_check.json (created)")
    parser.add_argument("--config", default=str(LLAVA), help="folder with the model's config.json and processor")
    parser.add_argument(
        "--layers", type=int, help="language layers of the model (default: all of them on a GPU, 1 on the CPU)"
    )
    parser.add_argument(
        "--override", nargs="*", default=[], metavar="KEY=VALUE", help="change the model config (tests shrink it)"
    )
    parser.add_argument("--steps", type=int, default=3, help="optimiser steps per method (the first is not timed)")
    parser.add_argument("--samples", type=int, default=4, help=f"scored samples of each of {', '.join(SCORING_TASKS)}")
    parser.add_argument("--eval_samples", type=int, default=2, help="samples of each task in the 4-bit evaluation")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights, adapter and runs")
    return parser


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"CPU ({platform.machine()}, {os.cpu_count()} cores)"


class Report:
    """The figures so far, written to ``FOLDER/gpu_check.json`` whenever a step ends."""

    def __init__(self, folder: Path, settings: dict[str, Any]) -> None:
        self.path = folder / "gpu_check.json"
        self.start = time.perf_counter()
        self.figures: dict[str, Any] = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "device": device_name(),
            "versions": {name: version(name) for name in ("torch", "transformers", "peft", "bitsandbytes")},
            "settings": settings,
        }

    def add(self, step: str, figures: dict[str, Any]) -> None:
        self.figures[step] = figures
        self.figures["seconds"] = time.perf_counter() - self.start
        write_json(self.path, self.figures)
        print(f"{step}: {json.dumps(figures)}", flush=True)


def training_figures(model: str, data: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """GA and NPO through ``scripts.bench_train``, each in a fresh process; their npo/ga ratios."""
    settings = argparse.Namespace(quantization="4bit", steps=args.steps, seed=args.seed, threads=args.threads)
    runs = {
        method: asdict(bench_method(run_settings(model, data, method, settings, work / "runs", args.layers)))
        for method in ("ga", "npo")
    }
    ga, npo = runs["ga"], runs["npo"]
    return {
        **runs,
        "npo_over_ga_peak": npo["train_peak_bytes"] / ga["train_peak_bytes"],
        "npo_over_ga_seconds": npo["seconds_per_step"] / ga["seconds_per_step"],
    }


def scoring_figures(model: Any, processor: Any, data: str, samples: int) -> dict[str, Any]:
    """The three ways of scoring on the first ``samples`` samples of each of ``SCORING_TASKS``."""
    return benchmark_scoring(model, processor, bench_samples(data, "forget10", list(SCORING_TASKS), samples)).report()


def evaluation_figures(model: Any, processor: Any, data: str, args: argparse.Namespace, work: Path) -> dict:
    """A random LoRA adapter on the 4-bit model, saved and evaluated on every task: it runs and its figures are
    finite."""
    torch.manual_seed(args.seed)
    adapted = add_lora(model, LoraSettings())
    randomize_lora(adapted, torch.Generator().manual_seed(args.seed))
    adapted.save_pretrained(work / "adapter", safe_serialization=True)
    start = time.perf_counter()
    summary = evaluate(
        adapted,
        processor,
        data,
        max_samples=args.eval_samples,
        output_dir=work / "evaluation",
        quantization="4bit",
        bootstrap=0,
        progress=False,
    )
    headline = {key: summary[key] for key in ("forget", "retain", "real", "model_utility")}
    return {
        "seconds": time.perf_counter() - start,
        "samples": {task: summary[task]["samples"] for task in summary["config"]["tasks"]},
        **headline,
        "finite": all(math.isfinite(value) for value in headline.values()),
    }


def goals(figures: dict[str, Any]) -> dict[str, Any]:
    """Each goal with its measured value; ``met`` is judged on a GPU only (the CPU form runs a smaller model)."""
    training, scoring = figures["training"], figures["scoring"]
    measured = {
        "npo_train_peak_gb": training["npo"]["train_peak_bytes"] / 1e9,
        "npo_over_ga_peak": training["npo_over_ga_peak"],
        "prefix_speedup_over_full": scoring["speedup_over_full"]["prefix"],
        "prefix_times_floor": scoring["times_floor"]["prefix"],
    }
    at_least = {"prefix_speedup_over_full"}
    judged = torch.cuda.is_available()
    return {
        name: {
            "goal": GOALS[name],
            "measured": value,
            "met": (value >= GOALS[name] if name in at_least else value <= GOALS[name]) if judged else None,
        }
        for name, value in measured.items()
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if min(args.steps, args.samples, args.eval_samples, args.threads) < 1:
        raise UsageError("--steps, --samples, --eval_samples and --threads must be at least 1")
    cuda = torch.cuda.is_available()
    if args.layers is None:
        args.layers = load_config(args.config, args.override).get_text_config().num_hidden_layers if cuda else 1
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = Report(out, {key: value for key, value in vars(args).items() if key != "out"})
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        parameters = write_scale_model(args.config, args.layers, work / "model", args.seed, tuple(args.override))
        report.add("build", {"parameters": parameters, "layers": args.layers, "seconds": time.perf_counter() - start})
        data = str(write_mini_clear(work / "data", 10, args.seed, 3, 4))
        report.add("training", training_figures(str(work / "model"), data, args, work))
        start = time.perf_counter()
        model, processor = load_model(str(work / "model"), "4bit")
        report.add("load_4bit", {"seconds": time.perf_counter() - start})
        report.add("scoring", scoring_figures(model, processor, data, args.samples))
        report.add("evaluation", evaluation_figures(model, processor, data, args, work))
    report.add("goals", goals(report.figures))
    print(f"wrote {report.path} ({report.figures['seconds']:.0f} s on {report.figures['device']})")
    return 0 if report.figures["scoring"]["agree"] and report.figures["evaluation"]["finite"] else 1


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
