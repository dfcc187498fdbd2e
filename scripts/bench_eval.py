"""Benchmark scoring: the same answers scored three ways, checked equal, timed, and set against the FLOP floor.

python -m scripts.bench_eval                      # tiny LLaVA and mini-CLEAR built in a temporary folder
python -m scripts.bench_eval --model M --data D --quantization 4bit --tasks forget_caption,real_faces --max_samples 4

The three ways (``eval.scoring.SCORING_MODES``): ``full`` (every answer as its own sequence with its own image
encoding, as CLEAR's and open-unlearning's evaluators score), ``per_option`` (the image encoded once per sample, the
prompt run per answer) and ``prefix`` (the prompt and image run once, the answers on its key/value cache).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from eval.bench import AGREEMENT, ScoringBench, bench_samples, benchmark_scoring
from eval.tasks import TASKS
from unlearn.errors import OUTPUT_FILE, RULES, UsageError, parse_checked, run_cli
from unlearn.figures import write_json_strict
from unlearn.models import load_model
from unlearn.offline.mini_clear import write_mini_clear
from unlearn.offline.tiny_model import write_tiny_model

OPTION_RULES = {**RULES, "out": OUTPUT_FILE}  # unlearn.errors.RULES, but --out is a JSON file


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench_eval",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model", help="model folder or Hub id (default: a tiny LLaVA built on --data)")
    parser.add_argument("--data", help="CLEAR folder or Hub id (default: a mini-CLEAR built in a temporary folder)")
    parser.add_argument("--quantization", choices=["4bit", "8bit"], help="load the model quantized")
    parser.add_argument("--persons", type=int, default=20, help="persons of the built mini-CLEAR")
    parser.add_argument("--images_per_person", type=int, default=4, help="images per person of the built mini-CLEAR")
    parser.add_argument("--forget", default="forget10", help="forget split")
    parser.add_argument("--tasks", help=f"comma-separated tasks (default: all of {','.join(TASKS)})")
    parser.add_argument("--max_samples", type=int, default=8, help="first N samples of each task")
    parser.add_argument("--batch_size", type=int, default=8, help="samples per scoring call")
    parser.add_argument("--repeats", type=int, default=1, help="time each way this many times, keep the best")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (the tiny model's matrices gain nothing from more, and on a shared CPU extra threads "
        "make every call much slower; give a real-width model the machine's cores)",
    )
    parser.add_argument("--out", help="also write the figures to this JSON file")
    return parser


def print_result(result: ScoringBench) -> None:
    print(
        f"samples: {result.samples}, answers: {result.answers} "
        f"(mean {result.prompt_tokens:.0f} prompt tokens per sample, {result.answer_tokens:.1f} tokens per answer)"
    )
    print(f"{'scoring':11} {'seconds':>9} {'GFLOP':>10} {'GFLOP/s':>8} {'x floor':>8} {'vs full':>8}")
    for mode, seconds in result.seconds.items():
        flops = result.flops[mode]
        print(
            f"{mode:11} {seconds:9.3f} {flops / 1e9:10.1f} {flops / seconds / 1e9:8.1f} "
            f"{result.times_floor(mode):8.2f} {result.speedup(mode):7.2f}x"
        )
    print(f"{'floor':11} {result.floor_seconds:9.3f} {result.floor_flops / 1e9:10.1f}  (its FLOPs at the best rate)")
    verdict = "agree" if result.agree else "DISAGREE"
    print(f"largest loss difference between the ways: {result.max_loss_difference:.2e} ({verdict}, limit {AGREEMENT})")


def main(argv: list[str] | None = None) -> int:
    args = parse_checked(build_parser(), argv, OPTION_RULES)
    if args.model and not args.data:
        raise UsageError("--model needs --data")
    tasks = [name.strip() for name in args.tasks.split(",")] if args.tasks else list(TASKS)
    unknown = [name for name in tasks if name not in TASKS]
    if unknown:
        raise UsageError(f"unknown tasks {unknown}; choose from {', '.join(TASKS)}")
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench_eval_") as tmp:
        data = args.data or str(write_mini_clear(Path(tmp) / "mini_clear", args.persons, 0, args.images_per_person))
        model_path = args.model or str(write_tiny_model(data, Path(tmp) / "tiny_model"))
        model, processor = load_model(model_path, args.quantization)
        samples = bench_samples(data, args.forget, tasks, args.max_samples)
        result = benchmark_scoring(model, processor, samples, args.batch_size, args.repeats)
    print(f"model: {model_path} ({args.quantization or str(model.dtype).removeprefix('torch.')}); tasks: {tasks}")
    print_result(result)
    if args.out:
        report = {**result.report(), "settings": {**vars(args), "tasks": tasks}, "model": model_path}
        write_json_strict(args.out, report)
    return 0 if result.agree else 1


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
