"""Benchmark the data path's memory: building the training set of full+tofu, building a forget10 unlearning run's
forget/retain sets, one epoch of training batches through the collator and a real processor, and listing every
evaluation task's samples (a task at a time, as the evaluator does), each in a fresh process. Each step runs with lazy
images (as the library builds them) and with every image decoded up front (``eager``: how examples held their images
before lazy data, rebuilt here for the comparison only).

python -m scripts.bench_data                          # writes the 200-person 512 px mini-CLEAR to a temp folder
python -m scripts.bench_data --data DIR --processor ../shared/models/llava-1.5-7b-hf --modes lazy
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from eval.tasks import TASKS
from unlearn.architectures import PixelBudget
from unlearn.collate import TrainingCollator
from unlearn.data import load_clear
from unlearn.errors import OUTPUT_FILE, RULES, UsageError, parse_checked, run_cli
from unlearn.figures import write_json_strict
from unlearn.methods import get_method
from unlearn.models import load_processor
from unlearn.offline.memory import ResidentPeak, resident_memory
from unlearn.offline.mini_clear import CLEAR_PERSONS, write_mini_clear
from unlearn.offline.tiny_model import write_tiny_model
from unlearn.prompts import Example, decode_image
from unlearn.training.config import UnlearnConfig
from unlearn.training.pairing import ForgetRetainPairs
from unlearn.training.runs import finetune_examples, forget_retain_examples

GIB = 1024**3
MODES = ("eager", "lazy")
STEPS = ("train_set", "unlearn_sets", "epoch", "eval_samples")
REAL_LLAVA = Path(__file__).resolve().parents[2] / "shared" / "models" / "llava-1.5-7b-hf"


@dataclass
class Measure:
    """One step in one mode: what it built (``samples`` of ``unit``), its seconds, and the process's memory in bytes:
    ``peak_rss`` (:func:`peak_resident`: every resident page, file-backed ones included), ``peak_anon`` and
    ``peak_file`` (``RssAnon`` and ``RssFile`` sampled during the step), ``start_anon`` (``RssAnon`` after imports)."""

    step: str
    mode: str
    samples: int
    unit: str
    seconds: float
    peak_rss: int
    peak_anon: int
    peak_file: int
    start_anon: int


def peak_resident() -> int:
    """This process's peak resident set in bytes, file-backed pages included: ``VmHWM`` (Linux), else ``ru_maxrss``.

    ``VmHWM`` starts afresh when a spawned child execs Python; ``ru_maxrss`` does not, so it would also count the
    parent's resident pages, which the forked child maps until then.
    """
    status = Path("/proc/self/status")
    for line in status.read_text().splitlines() if status.is_file() else ():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def decoded(examples: list[Example]) -> list[Example]:
    """The examples with every image decoded now, as they were built before lazy data (``eager`` mode)."""
    return [
        example if example.image is None else replace(example, image=decode_image(example.image))
        for example in examples
    ]


def run_step(step: str, mode: str, data: str, processor: str, batch_size: int, work: str) -> tuple[int, str]:
    """Run ``step``: the number of things it built and their unit (all alive until it returns)."""
    prepare = decoded if mode == "eager" else list
    if step == "eval_samples":
        listed, rows = 0, {}
        for task in TASKS.values():  # like the evaluator: one task's samples at a time, each config loaded once
            config = task.config("forget10")
            if config not in rows:
                rows[config] = load_clear(config, data)
            samples = list(task.samples(rows[config]))
            examples = prepare([sample.example for sample in samples])
            samples = [replace(sample, example=example) for sample, example in zip(samples, examples, strict=True)]
            listed += len(samples)
        return listed, f"samples ({len(TASKS)} tasks)"
    if step == "unlearn_sets":
        config = UnlearnConfig(model="-", data=data, method="llmu", output_dir=work, report_to="none")
        forget, retain = (prepare(examples) for examples in forget_retain_examples(config))
        get_method("llmu")().prepare(torch.nn.Linear(1, 1), forget, retain, config.seed)  # its mismatch pool
        pairs = ForgetRetainPairs(forget, retain, config.seed)
        return len(pairs.forget) + len(pairs.retain), "examples (forget+retain)"
    examples = prepare(finetune_examples(data, "full+tofu"))
    if step == "train_set":
        return len(examples), "examples"
    collate = TrainingCollator(load_processor(processor, PixelBudget()))
    order = torch.Generator().manual_seed(0)
    loader = torch.utils.data.DataLoader(examples, batch_size, shuffle=True, generator=order, collate_fn=collate)
    return sum(1 for _ in loader), f"batches of {batch_size}"


def _measure(step: str, mode: str, data: str, processor: str, batch_size: int, work: str) -> Measure:
    torch.set_num_threads(1)
    start = resident_memory()["anon"]
    sampler = ResidentPeak()
    sampler.start()
    began = time.perf_counter()
    samples, unit = run_step(step, mode, data, processor, batch_size, work)
    seconds = time.perf_counter() - began
    peak = sampler.peak()
    sampler.stop()
    return Measure(step, mode, samples, unit, seconds, peak_resident(), peak["anon"], peak["file"], start)


def measure(step: str, mode: str, data: str, processor: str, batch_size: int, work: str) -> Measure:
    """One step in one mode, in a fresh (spawned) process, so that no peak carries over from another."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_measure, step, mode, data, processor, batch_size, work).result()


# unlearn.errors.RULES, but --out is a JSON file and --steps are names (checked in main), not a count
OPTION_RULES = {**{name: rule for name, rule in RULES.items() if name != "steps"}, "out": OUTPUT_FILE}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench_data",
        description="Peak memory of building the full+tofu training set, a forget10 run's forget/retain sets and one "
        "epoch of training batches, each in a fresh process, with images decoded up front (eager) and lazily.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--data", help="CLEAR folder or Hub id; default: the 200-person 512 px mini-CLEAR, written")
    parser.add_argument(
        "--processor",
        help=f"checkpoint folder whose processor builds the batches; default: {REAL_LLAVA} when present, else a "
        "tiny LLaVA written to a temp folder",
    )
    parser.add_argument("--batch-size", type=int, default=8, help="examples per batch of the epoch")
    parser.add_argument("--modes", nargs="+", default=list(MODES), help=f"of {', '.join(MODES)}")
    parser.add_argument("--steps", nargs="+", default=list(STEPS), help=f"of {', '.join(STEPS)}")
    parser.add_argument("--out", help="also write the figures to this JSON file")
    return parser


def prepare_inputs(args: argparse.Namespace, work: Path) -> tuple[str, str]:
    """The data and processor folders, written into ``work`` where not given, and the data's Arrow cache (written
    once here, so that no measured step pays for it)."""
    data = args.data
    if data is None:
        began = time.perf_counter()
        data = str(write_mini_clear(work / "data", CLEAR_PERSONS, image_size=512))
        print(f"wrote the {CLEAR_PERSONS}-person 512 px mini-CLEAR in {time.perf_counter() - began:.0f} s")
    processor = args.processor or (str(REAL_LLAVA) if (REAL_LLAVA / "preprocessor_config.json").is_file() else None)
    processor = processor or str(write_tiny_model(data, work / "tiny"))
    for config in ("full", "full+tofu", "forget10", "forget10+tofu", "retain90", "retain90+tofu"):
        load_clear(config, data)
    return data, processor


def print_table(results: list[Measure]) -> None:
    print("GiB. RSS: peak resident set (VmHWM; file-backed pages, the memory-mapped dataset's, included); anon: peak")
    print("RssAnon; file: peak RssFile (both sampled every 20 ms); start: RssAnon after the imports, before the step")
    print(f"{'step':13} {'mode':6} {'samples':>8} {'unit':24} {'s':>6} {'RSS':>6} {'anon':>6} {'file':>6} {'start':>6}")
    for r in results:
        figures = " ".join(f"{value / GIB:6.2f}" for value in (r.peak_rss, r.peak_anon, r.peak_file, r.start_anon))
        print(f"{r.step:13} {r.mode:6} {r.samples:8d} {r.unit:24} {r.seconds:6.1f} {figures}")
    by_key = {(r.step, r.mode): r for r in results}
    for step in dict.fromkeys(r.step for r in results):
        if (step, "eager") in by_key and (step, "lazy") in by_key:
            eager, lazy = by_key[step, "eager"], by_key[step, "lazy"]
            rss, anon = eager.peak_rss / lazy.peak_rss, eager.peak_anon / lazy.peak_anon
            print(f"{step}: eager/lazy peak RSS {rss:.2f}, peak anon {anon:.2f}")


def main(argv: list[str] | None = None) -> int:
    args = parse_checked(build_parser(), argv, OPTION_RULES)
    for name, given, valid in (("modes", args.modes, MODES), ("steps", args.steps, STEPS)):
        unknown = [value for value in given if value not in valid]
        if unknown:
            raise UsageError(f"unknown {name} {unknown}; choose from {', '.join(valid)}")
    with tempfile.TemporaryDirectory(prefix="bench_data-") as tmp:
        data, processor = prepare_inputs(args, Path(tmp))
        print(f"data: {data}; processor: {processor}")
        work = str(Path(tmp) / "run")
        results = [
            measure(step, mode, data, processor, args.batch_size, work) for step in args.steps for mode in args.modes
        ]
    print_table(results)
    if args.out:
        write_json_strict(args.out, [asdict(r) for r in results])
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
