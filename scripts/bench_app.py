"""Time adapter switching in the app's model pool: set_adapter between adapters, adapters off/on for the original.

Without options it builds a mini-CLEAR, the tiny model and random adapters; --base/--adapter time your own models;
--config times a real architecture (e.g. ../shared/models/llava-1.5-7b-hf) built without weights.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from peft import PeftModel
from tqdm import tqdm

from unlearn.errors import UsageError, parse_checked, run_cli
from unlearn.figures import write_json_strict
from unlearn.offline.mini_clear import write_mini_clear
from unlearn.offline.random_adapters import write_random_adapters
from unlearn.offline.random_weights import weightless_model
from unlearn.offline.tiny_model import write_tiny_model
from unlearn.serving.pool import ModelPool, active


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", help="base model (folder or USER/NAME[@REV]) to load with --adapter")
    parser.add_argument("--adapter", action="append", default=[], help="adapter to load on --base (repeatable)")
    parser.add_argument("--config", help="folder with a model config.json: time its architecture without weights")
    parser.add_argument("--adapters", type=int, default=4, help="random adapters to create (default mode, --config)")
    parser.add_argument("--rounds", type=int, default=20, help="rounds of switching through every model")
    parser.add_argument("--out", help="folder for bench_app.json (and the built models); default: nothing kept")
    parser.add_argument("--seed", type=int, default=0, help="seed of the built dataset, model and adapters")
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    args = parse_checked(build_parser(), argv)
    if args.base and not args.adapter or args.adapter and not args.base:
        raise UsageError("--base and --adapter go together")
    if args.config and args.base:
        raise UsageError("choose --config or --base, not both")
    return args


def build_tiny(folder: Path, adapters: int, seed: int) -> tuple[str, list[str]]:
    """A mini-CLEAR, the tiny model and ``adapters`` random adapters in ``folder``."""
    data = write_mini_clear(folder / "data", persons=10, seed=seed, images_per_person=3, questions_per_person=4)
    base = write_tiny_model(str(data), folder / "tiny", seed=seed)
    configs = [{"method": f"random-{index + 1}", "forget": "forget10"} for index in range(adapters)]
    return str(base), [str(path) for path in write_random_adapters(str(base), folder / "adapters", configs, seed=seed)]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(args.out or scratch)
        folder.mkdir(parents=True, exist_ok=True)
        if args.config:
            model, subject = weightless_model(args.config, args.adapters), f"{args.config} (no weights)"
        else:
            base, adapters = (args.base, args.adapter) if args.base else build_tiny(folder, args.adapters, args.seed)
            model, subject = ModelPool.load(base, adapters).model, base
        results = time_switches(model, args.rounds)
        adapters_loaded = len(model.peft_config)
    print(f"{subject}: {adapters_loaded} adapters, {args.rounds} rounds")
    for kind, figures in results.items():
        print(f"  {kind:22s} mean {figures['mean_ms']:7.2f} ms   max {figures['max_ms']:7.2f} ms")
    if args.out:
        report = {"config": {**vars(args), "subject": subject, "adapters_loaded": adapters_loaded}, "results": results}
        path = Path(args.out) / "bench_app.json"
        write_json_strict(path, report)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
