"""Evaluate a model on the CLEAR tasks: batched scoring and generation, per-sample logs and ``summary.json``."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import datasets
import numpy as np
from peft import PeftModel
from tqdm.auto import tqdm
from transformers import PreTrainedModel, ProcessorMixin

from eval.composites import RESAMPLES, bootstrap_intervals, composite_scores
from eval.estimate import LONG_EVALUATION_BATCHES, describe, estimate_seconds, probe, task_plan
from eval.logs import (
    SUMMARY,
    TRUTH_RATIO_TASK,
    read_records,
    read_summary,
    truth_ratios_of,
    write_records,
    write_summary,
)
from eval.metrics import distribution_similarity, forget_quality
from eval.scoring import answer_losses, generate, reference_length
from eval.tasks import TASKS, Sample, Task
from unlearn.architectures import MAX_PIXELS, MIN_PIXELS
from unlearn.data import CLEAR_SOURCE, FORGET_SPLITS, data_fingerprint, load_clear, same_data
from unlearn.errors import UsageError
from unlearn.figures import HEADLINE
from unlearn.models import load_model, pixels_of, precision_of

GENERATION_MARGIN = 8  # new tokens allowed beyond the longest reference of a task


@dataclass
class EvalArguments:
    """Options of ``python -m scripts.evaluate`` (also readable from a YAML file)."""

    model: str = field(metadata={"help": "model to evaluate: a local folder or a Hub id USER/NAME[@REVISION]"})
    output_dir: str = field(metadata={"help": "folder for <task>.jsonl and summary.json (created)"})
    adapter: str | None = field(default=None, metadata={"help": "LoRA adapter on the model: folder or Hub id"})
    data: str = field(default=CLEAR_SOURCE, metadata={"help": "CLEAR: Hub dataset id or local folder in its layout"})
    forget: str = field(default="forget10", metadata={"help": f"forget split: {', '.join(FORGET_SPLITS)}"})
    gold: str | None = field(
        default=None,
        metadata={
            "help": "output folder of an earlier evaluation of the gold model (never trained on the forget "
            "set): adds forget_quality_ks and forget_quality_js"
        },
    )
    tasks: str | None = field(
        default=None, metadata={"help": f"comma-separated subset of {','.join(TASKS)}; all when omitted"}
    )
    max_samples: int | None = field(
        default=None,
        metadata={
            "help": "evaluate only the first N samples of each task; CLEAR's papers evaluate the first 300 "
            "(--max_samples 300), all when omitted"
        },
    )
    batch_size: int = field(default=8, metadata={"help": "samples per forward pass (with all their answer options)"})
    max_new_tokens: int | None = field(
        default=None,
        metadata={"help": f"greedy generation length (default: a task's longest reference + {GENERATION_MARGIN})"},
    )
    quantization: str | None = field(
        default=None,
        metadata={
            "help": "load the model in 4bit or 8bit (bitsandbytes), or none (full precision); default: the precision "
            "the adapter was unlearned in (its run_config.json), else full precision"
        },
    )
    min_pixels: int | None = field(
        default=None,
        metadata={
            "help": "pixel budget of dynamic-resolution families (Qwen2-VL): the least image area; default: the "
            f"adapter's or fine-tuned model's (its run_config.json), else {MIN_PIXELS}"
        },
    )
    max_pixels: int | None = field(
        default=None,
        metadata={"help": f"pixel budget: the largest image area; default: the adapter's, else {MAX_PIXELS}"},
    )
    bootstrap: int = field(
        default=RESAMPLES, metadata={"help": "bootstrap resamples for the 95%% intervals of every figure (0: none)"}
    )
    seed: int = field(default=0, metadata={"help": "seed of the bootstrap resampling"})

    def task_names(self) -> list[str] | None:
        """``tasks`` split on commas (None: all)."""
        return [name.strip() for name in self.tasks.split(",") if name.strip()] if self.tasks else None


@dataclass(frozen=True)
class Gold:
    """The gold evaluation's forget-caption truth ratios and their sample ids (None: the run is its own gold)."""

    ratios: np.ndarray | None = None
    ids: list[int] | None = None


def _prepare(
    forget: str,
    tasks: list[str],
    batch_size: int,
    max_samples: int | None,
    max_new_tokens: int | None,
    bootstrap: int,
    gold_dir: str | None,
    output_dir: str | Path,
    data: str,
) -> Gold | None:
    """Check the options before any work; return the gold evaluation to compare with (None without ``gold_dir``).

    The gold run must have evaluated the same data (content hash or Hub revision), forget split and sample selection
    (``max_samples``); otherwise forget quality would compare other samples, and that is refused here.
    ``gold_dir`` may be ``output_dir`` itself (the gold model evaluated against itself).
    """
    if forget not in FORGET_SPLITS:
        raise UsageError(f"unknown forget split {forget!r}; choose one of {', '.join(FORGET_SPLITS)}")
    unknown = [name for name in tasks if name not in TASKS]
    if unknown or not tasks:
        raise UsageError(f"unknown tasks {unknown or tasks}; choose from {', '.join(TASKS)}")
    for name, value in (("batch_size", batch_size), ("max_samples", max_samples), ("max_new_tokens", max_new_tokens)):
        if value is not None and value < 1:
            raise UsageError(f"{name} must be at least 1, got {value}")
    if bootstrap < 0:
        raise UsageError(f"bootstrap must be 0 (no intervals) or more, got {bootstrap}")
    if gold_dir is None:
        return None
    if TRUTH_RATIO_TASK not in tasks:
        raise UsageError(f"forget quality against --gold needs the {TRUTH_RATIO_TASK} task")
    if _same_folder(gold_dir, output_dir):
        return Gold()
    summary = read_summary(gold_dir)
    if summary.get("forget_split") != forget:
        raise UsageError(f"the gold evaluation in {gold_dir} is on {summary.get('forget_split')}, not {forget}")
    theirs, ours = summary.get("data_fingerprint") or {}, data_fingerprint(data)
    if not same_data(theirs, ours):
        raise UsageError(
            f"the gold evaluation in {gold_dir} is of other data: {_data_name(theirs)}, not {_data_name(ours)}"
        )
    gold_samples = (summary.get("config") or {}).get("max_samples")
    if gold_samples != max_samples:
        raise UsageError(
            f"the gold evaluation in {gold_dir} used max_samples {gold_samples}, this one {max_samples}: "
            "forget quality needs the same samples"
        )
    records = read_records(gold_dir, TRUTH_RATIO_TASK)
    return Gold(truth_ratios_of(records), [r["id"] for r in records])


def _data_name(fingerprint: dict[str, Any]) -> str:
    """``source`` with its content hash or revision (short), for messages."""
    pin = fingerprint.get("content_sha256") or fingerprint.get("revision")
    return f"{fingerprint.get('source')} ({pin[:12] if pin else 'revision unknown'})"


def _same_folder(a: str | Path, b: str | Path) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def _batches(samples: list[Sample], size: int) -> Iterator[list[Sample]]:
    for start in range(0, len(samples), size):
        yield samples[start : start + size]


def run_task(
    model: PreTrainedModel | PeftModel,
    processor: ProcessorMixin,
    task: Task,
    samples: list[Sample],
    batch_size: int,
    max_new_tokens: int,
    loop: bool = False,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """The records of ``task`` on ``samples``: ``batch_size`` samples, with all their answers, per forward pass and
    per ``generate`` call; with ``loop`` one answer per forward pass and one prompt per ``generate`` call instead."""
    records = []
    with tqdm(total=len(samples), desc=task.name, unit="sample", disable=not progress) as bar:
        for batch in _batches(samples, 1 if loop else batch_size):
            if loop:
                losses = [[answer_losses(model, processor, [[e]])[0][0] for e in s.scored()] for s in batch]
            else:
                losses = answer_losses(model, processor, [s.scored() for s in batch])
            generations: list[str | None] = [None] * len(batch)
            if task.generates:
                generations = generate(model, processor, [s.example for s in batch], max_new_tokens)
            records += [task.record(*args) for args in zip(batch, losses, generations, strict=True)]
            bar.update(len(batch))
    return records


def announce(
    model: PreTrainedModel | PeftModel,
    processor: ProcessorMixin,
    samples: dict[str, list[Sample]],
    batch_size: int,
    lengths: dict[str, int],
) -> None:
    """Print what the evaluation will do (:mod:`eval.estimate`); a long one (``LONG_EVALUATION_BATCHES``) is first
    timed on one batch of its first task for an estimate of its duration."""
    plans = [
        task_plan(name, task_samples, batch_size, lengths[name], TASKS[name].generates)
        for name, task_samples in samples.items()
    ]
    seconds = None
    if sum(plan.batches for plan in plans) >= LONG_EVALUATION_BATCHES:
        probed = next((plan for plan in plans if plan.max_new_tokens), plans[0])  # a generating task, if any
        timing = probe(model, processor, samples[probed.name][:batch_size], probed.max_new_tokens)
        seconds = estimate_seconds(plans, timing)
    print(describe(plans, seconds), file=sys.stderr, flush=True)


def _model_name(model: PreTrainedModel | PeftModel) -> str:
    base = model.get_base_model() if isinstance(model, PeftModel) else model
    return str(base.config._name_or_path)


def evaluate(
    model: PreTrainedModel | PeftModel,
    processor: ProcessorMixin,
    data: str,
    forget: str = "forget10",
    tasks: list[str] | None = None,
    batch_size: int = 8,
    max_samples: int | None = None,
    gold_dir: str | None = None,
    output_dir: str | Path = "eval_results",
    max_new_tokens: int | None = None,
    loop: bool = False,
    model_name: str | None = None,
    adapter: str | None = None,
    quantization: str | None = None,
    progress: bool = True,
    bootstrap: int = RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """Run the CLEAR ``tasks`` (default: all) and write ``<task>.jsonl`` and ``summary.json`` into ``output_dir``.

    Returns the summary: per task its figures with their 95% bootstrap intervals (``<figure>_ci``) and ``samples``;
    the composites (``forget``, ``retain``, ``real``, ``model_utility``, :mod:`eval.composites`) with theirs; with
    ``gold_dir`` the forget quality (``forget_quality_ks``: KS-test p-value, ``forget_quality_js``: 1 -
    Jensen-Shannon divergence) of the ``forget_caption`` truth ratios against the gold evaluation's, with
    ``forget_quality_samples``; and what was evaluated (``model``, ``adapter``, ``data``, ``data_fingerprint``,
    ``forget_split``, ``config``). A killed evaluation leaves no ``summary.json`` (an earlier one is removed before
    the first records are written; the new one is written last, atomically) and no half-written ``<task>.jsonl``
    (:func:`write_task_records`); run again, it evaluates every task anew. ``loop`` scores one answer at a time
    (the slow reference that batching must equal); ``model_name``, ``adapter`` and ``quantization`` only describe
    the model in the summary. ``bootstrap`` resamples (0: no intervals) are drawn from ``seed``.
    """
    tasks = list(dict.fromkeys(tasks or TASKS))
    options = (batch_size, max_samples, max_new_tokens, bootstrap)
    gold = _prepare(forget, tasks, *options, gold_dir, output_dir, data)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, datasets.Dataset] = {}
    figures, lengths, records = {}, {}, {}
    was_training = model.training
    model.eval()
    try:
        samples: dict[str, list[Sample]] = {}
        for name in tasks:  # samples refer to their rows: images are decoded batch by batch
            task = TASKS[name]
            config = task.config(forget)
            if config not in rows:
                rows[config] = load_clear(config, data)
            samples[name] = list(islice(task.samples(rows[config]), max_samples))
            if not samples[name]:
                raise UsageError(f"task {name} has no samples in {data} config {config}")
            longest = reference_length(processor, task.references(rows[config]))
            lengths[name] = max_new_tokens or longest + GENERATION_MARGIN
        if progress:
            announce(model, processor, samples, 1 if loop else batch_size, lengths)
        (out / SUMMARY).unlink(missing_ok=True)  # an earlier summary no longer describes the folder's records
        for name in tasks:
            task = TASKS[name]
            records[name] = run_task(model, processor, task, samples[name], batch_size, lengths[name], loop, progress)
            write_task_records(out, name, records[name])
            figures[name] = task.figures(records[name])
    finally:
        model.train(was_training)
    headline: dict[str, Any] = composite_scores(figures)
    task_intervals, composite_intervals = bootstrap_intervals(records, bootstrap, seed) if bootstrap else ({}, {})
    if gold is not None:
        headline.update(_forget_quality(records[TRUTH_RATIO_TASK], gold, gold_dir))
    summary: dict[str, Any] = {name: _with_intervals(figures[name], task_intervals.get(name, {})) for name in tasks}
    for name, task_records in records.items():
        summary[name]["samples"] = len(task_records)
    for key in HEADLINE:
        if key in headline:
            summary[key] = headline[key]
            if key in composite_intervals:
                summary[f"{key}_ci"] = composite_intervals[key]
    if "forget_quality_samples" in headline:
        summary["forget_quality_samples"] = headline["forget_quality_samples"]
    summary.update(
        model=model_name or _model_name(model),
        adapter=adapter,
        data=data,
        data_fingerprint=data_fingerprint(data),
        forget_split=forget,
        config={
            "forget": forget,
            "tasks": tasks,
            "batch_size": batch_size,
            "max_samples": max_samples,
            "max_new_tokens": {name: lengths[name] for name in tasks if TASKS[name].generates},
            "quantization": quantization,
            "gold": str(Path(gold_dir).resolve()) if gold_dir else None,
            "loop": loop,
            "bootstrap": bootstrap,
            "seed": seed,
        },
    )
    write_summary(out, summary)
    return summary


PARTIAL = ".partial"  # the sub-folder a task's records are written into before they are renamed into place


def write_task_records(out: Path, task: str, records: list[dict[str, Any]]) -> Path:
    """Write ``out/<task>.jsonl`` (:func:`eval.logs.write_records`) into ``out/.partial`` first, then rename it into
    place: a killed evaluation never leaves a half-written ``<task>.jsonl``."""
    staging = out / PARTIAL
    staging.mkdir(exist_ok=True)
    path = out / f"{task}.jsonl"
    os.replace(write_records(staging, task, records), path)
    shutil.rmtree(staging, ignore_errors=True)
    return path


def _with_intervals(figures: dict[str, float], intervals: dict[str, list[float]]) -> dict[str, Any]:
    """``figure, figure_ci`` pairs in the figures' order."""
    paired: dict[str, Any] = {}
    for figure, value in figures.items():
        paired[figure] = value
        if figure in intervals:
            paired[f"{figure}_ci"] = intervals[figure]
    return paired


def _forget_quality(records: list[dict[str, Any]], gold: Gold, gold_dir: str | None) -> dict[str, Any]:
    """KS p-value and 1-JS of these forget-caption truth ratios against gold's, with both sample counts.

    The samples must be gold's (the same ids); a run that is its own gold is compared with itself.
    """
    ratios = truth_ratios_of(records)
    ids = [r["id"] for r in records]
    gold_ratios = ratios if gold.ratios is None else gold.ratios
    if gold.ids is not None and gold.ids != ids:
        differ = sorted(set(ids) ^ set(gold.ids))
        raise UsageError(
            f"the gold evaluation in {gold_dir} scored other forget-caption samples "
            f"({len(gold.ids)} against {len(ids)}; first differing id: {differ[0] if differ else 'order'})"
        )
    return {
        "forget_quality_ks": forget_quality(ratios, gold_ratios),
        "forget_quality_js": distribution_similarity(ratios, gold_ratios),
        "forget_quality_samples": {"model": len(ratios), "gold": len(gold_ratios)},
    }


def evaluate_checkpoint(args: EvalArguments, progress: bool = True) -> dict[str, Any]:
    """Load ``args.model`` (with ``args.adapter``, in ``args.quantization`` and with the pixel budget given or,
    unset, the adapter's recorded ones) and :func:`evaluate` it."""
    tasks = args.task_names()
    options = (args.batch_size, args.max_samples, args.max_new_tokens, args.bootstrap)
    _prepare(args.forget, tasks or list(TASKS), *options, args.gold, args.output_dir, args.data)
    quantization = precision_of(args.quantization, args.adapter)
    pixels = pixels_of(args.min_pixels, args.max_pixels, args.adapter, args.model)
    model, processor = load_model(args.model, quantization=quantization, adapter=args.adapter, pixels=pixels)
    return evaluate(
        model,
        processor,
        args.data,
        forget=args.forget,
        tasks=tasks,
        batch_size=args.batch_size,
        max_samples=args.max_samples,
        gold_dir=args.gold,
        output_dir=args.output_dir,
        max_new_tokens=args.max_new_tokens,
        model_name=args.model,
        adapter=args.adapter,
        quantization=quantization,
        progress=progress,
        bootstrap=args.bootstrap,
        seed=args.seed,
    )
