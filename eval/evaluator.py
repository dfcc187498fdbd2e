"""Evaluate a model on the CLEAR tasks: batched scoring and generation, per-sample logs and ``summary.json``."""

from __future__ import annotations

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

from eval.logs import TRUTH_RATIO_TASK, read_summary, truth_ratios, write_records, write_summary
from eval.metrics import distribution_similarity, forget_quality, harmonic_mean
from eval.scoring import answer_losses, generate, reference_length
from eval.tasks import GROUPS, TASKS, Sample, Task
from unlearn.data import CLEAR_SOURCE, FORGET_SPLITS, load_clear
from unlearn.errors import UsageError
from unlearn.figures import HEADLINE
from unlearn.models import load_model

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
    max_samples: int | None = field(default=None, metadata={"help": "evaluate only the first N samples of each task"})
    batch_size: int = field(default=8, metadata={"help": "samples per forward pass (with all their answer options)"})
    max_new_tokens: int | None = field(
        default=None,
        metadata={"help": f"greedy generation length (default: a task's longest reference + {GENERATION_MARGIN})"},
    )
    quantization: str | None = field(default=None, metadata={"help": "load the model in 4bit or 8bit (bitsandbytes)"})

    def task_names(self) -> list[str] | None:
        """``tasks`` split on commas (None: all)."""
        return [name.strip() for name in self.tasks.split(",") if name.strip()] if self.tasks else None


def _prepare(
    forget: str,
    tasks: list[str],
    batch_size: int,
    max_samples: int | None,
    max_new_tokens: int | None,
    gold_dir: str | None,
    output_dir: str | Path,
) -> np.ndarray | None:
    """Check the options before any work; return the gold evaluation's truth ratios.

    None without ``gold_dir``, or when ``gold_dir`` is ``output_dir`` itself (the gold model evaluated against
    itself: its own truth ratios are used once computed).
    """
    if forget not in FORGET_SPLITS:
        raise UsageError(f"unknown forget split {forget!r}; choose one of {', '.join(FORGET_SPLITS)}")
    unknown = [name for name in tasks if name not in TASKS]
    if unknown or not tasks:
        raise UsageError(f"unknown tasks {unknown or tasks}; choose from {', '.join(TASKS)}")
    for name, value in (("batch_size", batch_size), ("max_samples", max_samples), ("max_new_tokens", max_new_tokens)):
        if value is not None and value < 1:
            raise UsageError(f"{name} must be at least 1, got {value}")
    if gold_dir is None:
        return None
    if TRUTH_RATIO_TASK not in tasks:
        raise UsageError(f"forget quality against --gold needs the {TRUTH_RATIO_TASK} task")
    if _same_folder(gold_dir, output_dir):
        return None
    gold_forget = read_summary(gold_dir).get("forget_split")
    if gold_forget != forget:
        raise UsageError(f"the gold evaluation in {gold_dir} is on {gold_forget}, not {forget}")
    return truth_ratios(gold_dir)


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


def group_scores(figures: dict[str, dict[str, float]]) -> dict[str, float | None]:
    """``forget``, ``retain``, ``real``: harmonic mean of the figures of the group's evaluated tasks (None without
    any); ``model_utility``: harmonic mean of all retain and real figures together."""
    values = {g: [v for name, f in figures.items() if TASKS[name].group == g for v in f.values()] for g in GROUPS}
    scores: dict[str, float | None] = {g: harmonic_mean(v) if v else None for g, v in values.items()}
    utility = values["retain"] + values["real"]
    scores["model_utility"] = harmonic_mean(utility) if utility else None
    return scores


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
) -> dict[str, Any]:
    """Run the CLEAR ``tasks`` (default: all) and write ``<task>.jsonl`` and ``summary.json`` into ``output_dir``.

    Returns the summary: per task its figures, the group scores (``forget``, ``retain``, ``real``,
    ``model_utility``), with ``gold_dir`` the forget quality (``forget_quality_ks``: KS-test p-value,
    ``forget_quality_js``: 1 - Jensen-Shannon divergence) of the ``forget_caption`` truth ratios against the gold
    evaluation's, and what was evaluated (``model``, ``adapter``, ``data``, ``forget``, ``config``). ``loop``
    scores one answer at a time (the slow reference that batching must equal); ``model_name``, ``adapter`` and
    ``quantization`` only describe the model in the summary.
    """
    tasks = list(dict.fromkeys(tasks or TASKS))
    gold = _prepare(forget, tasks, batch_size, max_samples, max_new_tokens, gold_dir, output_dir)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, datasets.Dataset] = {}
    figures, lengths, records = {}, {}, {}
    was_training = model.training
    model.eval()
    try:
        for name in tasks:
            task = TASKS[name]
            config = task.config(forget)
            if config not in rows:
                rows[config] = load_clear(config, data)
            samples = list(islice(task.samples(rows[config]), max_samples))
            if not samples:
                raise UsageError(f"task {name} has no samples in {data} config {config}")
            longest = reference_length(processor, task.references(rows[config]))
            lengths[name] = max_new_tokens or longest + GENERATION_MARGIN
            records[name] = run_task(model, processor, task, samples, batch_size, lengths[name], loop, progress)
            write_records(out, name, records[name])
            figures[name] = task.figures(records[name])
    finally:
        model.train(was_training)
    headline: dict[str, float | None] = group_scores(figures)
    if gold_dir is not None:
        ratios = truth_ratios(out)
        gold = ratios if gold is None else gold
        headline["forget_quality_ks"] = forget_quality(ratios, gold)
        headline["forget_quality_js"] = distribution_similarity(ratios, gold)
    summary: dict[str, Any] = {**figures, **{key: headline[key] for key in HEADLINE if key in headline}}
    summary.update(
        model=model_name or _model_name(model),
        adapter=adapter,
        data=data,
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
        },
    )
    write_summary(out, summary)
    return summary


def evaluate_checkpoint(args: EvalArguments, progress: bool = True) -> dict[str, Any]:
    """Load ``args.model`` (with ``args.adapter``, in ``args.quantization``) and :func:`evaluate` it."""
    tasks = args.task_names()
    options = (args.batch_size, args.max_samples, args.max_new_tokens)
    _prepare(args.forget, tasks or list(TASKS), *options, args.gold, args.output_dir)
    model, processor = load_model(args.model, quantization=args.quantization, adapter=args.adapter)
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
        quantization=args.quantization,
        progress=progress,
    )
