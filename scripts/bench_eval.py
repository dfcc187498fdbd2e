"""Benchmark the evaluator: the same evaluation as a one-sample loop and batched, checked equal, both timed.

python -m scripts.bench_eval                      # tiny model and mini-CLEAR built in a temporary folder
python -m scripts.bench_eval --model M --data D --batch_size 16 --tasks forget_caption,retain_face
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch

from eval.bench import benchmark
from eval.tasks import TASKS
from unlearn.errors import UsageError, run_cli
from unlearn.models import load_model
from unlearn.offline.mini_clear import write_mini_clear
from unlearn.offline.tiny_model import write_tiny_model


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench_eval", description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder or Hub id (default: a tiny LLaVA built on --data)")
    parser.add_argument("--data", help="CLEAR folder or Hub id (default: a mini-CLEAR built in a temporary folder)")
    parser.add_argument("--persons", type=int, default=20, help="persons of the built mini-CLEAR (default: 20)")
    parser.add_argument("--images_per_person", type=int, default=4, help="images per person (default: 4)")
    parser.add_argument("--forget", default="forget10", help="forget split (default: forget10)")
    parser.add_argument("--tasks", help=f"comma-separated tasks (default: all of {','.join(TASKS)})")
    parser.add_argument("--max_samples", type=int, help="first N samples of each task (default: all)")
    parser.add_argument("--batch_size", type=int, default=32, help="samples per batch when batched (default: 32)")
    parser.add_argument("--repeats", type=int, default=1, help="time each mode this many times, keep the best")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default: 1; the tiny model's matrices gain nothing from more, and on a shared CPU "
        "extra threads make every call much slower)",
    )
    parser.add_argument("--output_dir", help="folder for both runs' outputs and bench.json (default: temporary)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.repeats < 1 or args.threads < 1:
        raise UsageError("--repeats and --threads must be at least 1")
    if args.model and not args.data:
        raise UsageError("--model needs --data")
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench_eval_") as tmp:
        data = args.data or str(write_mini_clear(Path(tmp) / "mini_clear", args.persons, 0, args.images_per_person))
        model_path = args.model or str(write_tiny_model(data, Path(tmp) / "tiny_model"))
        model, processor = load_model(model_path)
        out = Path(args.output_dir or Path(tmp) / "runs")
        tasks = [name.strip() for name in args.tasks.split(",")] if args.tasks else None
        result = benchmark(
            model,
            processor,
            data,
            out,
            batch_size=args.batch_size,
            repeats=args.repeats,
            forget=args.forget,
            tasks=tasks,
            max_samples=args.max_samples,
        )
        report = {**asdict(result), "speedup": result.speedup, "settings": vars(args), "model": model_path}
        if args.output_dir:
            (out / "bench.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"samples: {result.samples} (threads: {args.threads}, batch size: {args.batch_size})")
    print(f"one-sample loop: {result.loop_seconds:.2f} s")
    print(f"batched:         {result.batched_seconds:.2f} s")
    print(f"speed-up:        {result.speedup:.1f}x")
    print(f"largest loss difference: {result.max_loss_difference:.2e}")
    if result.problems:
        print(f"MISMATCH: {len(result.problems)} differences, first: {result.problems[0]}")
        return 1
    print("outputs agree: losses within 1e-5, identical generations and prompts")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
