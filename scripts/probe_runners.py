"""The probes of ``scripts.probe``, one function each: the models they load and the figures they return.

Each takes the parsed arguments and the gold evaluation's summary and returns the probe's entry of ``probes.json``;
per-sample logs go to ``OUT/probes/<probe>/``. The adapter and vanilla are loaded in the precision the adapter was
unlearned in, the gold model in the precision its evaluation recorded.
"""

# Here, not in eval/, because the relearning probe trains.

from __future__ import annotations

import argparse
import gc
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from eval.evaluator import evaluate
from eval.leakage import HEADLINE, LEAKAGE_TASKS, leakage_figures, leakage_row
from eval.logs import write_records
from eval.probes import membership_gap, membership_probe, membership_sets, precision_probe, spread
from eval.relearning import SPLITS, generation_lengths, probe_figures, relearning_splits, with_recovery
from eval.rephrased import rephrased_figures
from eval.tasks import TASKS
from unlearn.data import load_clear
from unlearn.models import LoraSettings, add_lora, load_model, load_trainable_adapter, precision_of
from unlearn.training.relearn import relearn

LOGS = "probes"  # OUT/probes/<probe>/: the per-sample logs


def run_config_of(adapter: str | Path) -> dict[str, Any]:
    """The adapter's ``run_config.json``."""
    return json.loads(Path(adapter, "run_config.json").read_text(encoding="utf-8"))


def forget_modality(adapter: str | Path) -> str:
    """The modality the adapter unlearned (``both`` when its run config predates the option)."""
    return run_config_of(adapter).get("forget_modality", "both")


def gold_precision(gold: dict[str, Any]) -> str | None:
    """The precision the gold evaluation was run in (None: full)."""
    return (gold.get("config") or {}).get("quantization")


def release_memory() -> None:
    """Return the memory of models just deleted (``del model`` first), before the next one loads."""
    gc.collect()
    torch.cuda.empty_cache()


def on_adapter_vanilla_gold(
    args: argparse.Namespace, gold: dict[str, Any], measure: Callable[[str, Any, Any, str | None], Any]
) -> dict[str, Any]:
    """``measure(name, model, processor, precision)`` of the adapter (``model``), vanilla in its precision and gold
    in its evaluation's, loaded one at a time (each model's memory returned before the next loads); the results."""
    quantization = precision_of(None, args.adapter)
    results = {}
    for name, (path, adapter, precision) in {
        "model": (args.model, args.adapter, quantization),
        "vanilla": (args.model, None, quantization),
        "gold": (gold["model"], None, gold_precision(gold)),
    }.items():
        model, processor = load_model(path, quantization=precision, adapter=adapter)
        results[name] = measure(name, model, processor, precision)
        del model
        release_memory()
    return results


def run_membership(args: argparse.Namespace, gold: dict[str, Any]) -> dict[str, Any]:
    """The membership probe of the adapter, the vanilla model in the adapter's precision, and the gold model."""
    sets = membership_sets(args.data, args.forget, args.max_samples)

    def measure(name: str, model: Any, processor: Any, precision: str | None) -> dict[str, Any]:
        log_dir = Path(args.output_dir, LOGS, "membership", name)
        return {**membership_probe(model, processor, sets, args.k, args.batch_size, log_dir), "precision": precision}

    figures = on_adapter_vanilla_gold(args, gold, measure)
    return {**figures, "gap_from_gold": membership_gap(figures["model"], figures["gold"])}


def run_precision(args: argparse.Namespace, gold: dict[str, Any]) -> dict[str, Any]:
    """The precision probe; its evaluations go to ``OUT/probes/precision/<precision>/<model|vanilla>``."""
    out = Path(args.output_dir, LOGS, "precision")
    return precision_probe(args.model, args.adapter, args.data, args.forget, out, args.max_samples, args.batch_size)


def run_rephrased(args: argparse.Namespace, gold: dict[str, Any]) -> dict[str, Any]:
    """Forget-face figures under new wordings and altered images: the adapter, vanilla in its precision, gold."""
    task = TASKS["forget_face"]
    samples = list(task.samples(load_clear(task.config(args.forget), args.data)))[: args.max_samples]

    def measure(name: str, model: Any, processor: Any, precision: str | None) -> dict[str, Any]:
        return rephrased_figures(
            model, processor, samples, args.batch_size, Path(args.output_dir, LOGS, "rephrased", name)
        )

    figures = on_adapter_vanilla_gold(args, gold, measure)
    return {**figures, "precision": precision_of(None, args.adapter), "gold_precision": gold_precision(gold)}


def _relearning_curve(
    model: torch.nn.Module, processor: Any, split: Any, samples: dict, args: argparse.Namespace, log_dir: Path
) -> list[dict[str, Any]]:
    """Relearn ``split.examples`` with ``model`` and return its figures at step 0 and each of ``args.relearn_steps``."""
    lengths = generation_lengths(processor, samples)
    points: list[dict[str, Any]] = []

    def measure(step: int) -> None:
        figures, records = probe_figures(model, processor, samples, lengths, args.batch_size)
        for task, task_records in records.items():
            (log_dir / f"step-{step}").mkdir(parents=True, exist_ok=True)
            write_records(log_dir / f"step-{step}", task, task_records)
        points.append({"steps": step, **figures})

    relearn(
        model, processor, split.examples, args.relearn_steps, measure, args.relearn_lr, args.relearn_batch, args.seed
    )
    return points


def run_relearning(args: argparse.Namespace, gold: dict[str, Any]) -> dict[str, Any]:
    """For each split: the adapter trained further on the relearned data, and gold given a new LoRA adapter of the
    same settings trained on the same data for the same steps; the vanilla figures they recover towards."""
    run_config = run_config_of(args.adapter)
    quantization, gold_quantization = precision_of(None, args.adapter), gold_precision(gold)
    checkpointing = bool(run_config.get("gradient_checkpointing", False))
    lora = LoraSettings(
        r=run_config.get("lora_r", LoraSettings.r),
        alpha=run_config.get("lora_alpha", LoraSettings.alpha),
        dropout=run_config.get("lora_dropout", LoraSettings.dropout),
        projector=bool(run_config.get("lora_projector", False)),
    )
    splits = relearning_splits(args.data, args.forget, bool(run_config.get("face_naming", False)))
    capped = {
        name: {task: spread(samples, args.max_samples or len(samples)) for task, samples in split.samples.items()}
        for name, split in splits.items()
    }
    logs = Path(args.output_dir, LOGS, "relearning")
    figures: dict[str, Any] = {
        "steps": list(args.relearn_steps),
        "learning_rate": args.relearn_lr,
        "batch_size": args.relearn_batch,
        "seed": args.seed,
        "precision": quantization,
        "gold_precision": gold_quantization,
    }
    model, processor = load_model(args.model, quantization=quantization)
    vanilla = {}
    for name in SPLITS:
        lengths = generation_lengths(processor, capped[name])
        vanilla[name], records = probe_figures(model, processor, capped[name], lengths, args.batch_size)
        for task, task_records in records.items():
            (logs / name / "vanilla").mkdir(parents=True, exist_ok=True)
            write_records(logs / name / "vanilla", task, task_records)
    del model
    release_memory()
    for name in SPLITS:
        split, samples = splits[name], capped[name]
        model, processor = load_trainable_adapter(args.model, args.adapter, quantization, checkpointing)
        adapter_points = _relearning_curve(model, processor, split, samples, args, logs / name / "model")
        del model
        release_memory()
        base, processor = load_model(gold["model"], quantization=gold_quantization)
        model = add_lora(base, lora, checkpointing)
        gold_points = _relearning_curve(model, processor, split, samples, args, logs / name / "gold")
        del model, base
        release_memory()
        figures[name] = {
            "relearned_on": split.relearned_on,
            "relearn_examples": len(split.examples),
            "samples": {task: len(task_samples) for task, task_samples in samples.items()},
            "vanilla": vanilla[name],
            "model": with_recovery(adapter_points, vanilla[name]),
            "gold": with_recovery(gold_points, vanilla[name]),
        }
    return figures


def run_cross_modal(args: argparse.Namespace, gold: dict[str, Any]) -> dict[str, Any]:
    """The forget tasks of both modalities for ``--adapter`` and each of ``--modality_adapters`` (one row per
    modality unlearned), vanilla in their precision and gold, on the same samples."""
    quantization = precision_of(None, args.adapter)
    out = Path(args.output_dir, LOGS, "cross_modal")
    adapters = {forget_modality(path): str(path) for path in [args.adapter, *args.modality_adapters]}
    runs = {
        "vanilla": (args.model, None, quantization),
        "gold": (gold["model"], None, gold_precision(gold)),
        **{modality: (args.model, path, quantization) for modality, path in adapters.items()},
    }
    figures = {}
    samples: dict[str, int] = {}
    for name, (path, adapter, precision) in runs.items():
        model, processor = load_model(path, quantization=precision, adapter=adapter)
        summary = evaluate(
            model,
            processor,
            args.data,
            forget=args.forget,
            tasks=list(LEAKAGE_TASKS),
            batch_size=args.batch_size,
            max_samples=args.max_samples,
            output_dir=out / name,
            quantization=precision,
            bootstrap=0,
            progress=False,
        )
        del model
        release_memory()
        figures[name] = leakage_figures(summary)
        samples = {task: summary[task]["samples"] for task in LEAKAGE_TASKS}
    rows = {
        modality: leakage_row(path, figures[modality], figures["vanilla"], figures["gold"])
        for modality, path in adapters.items()
    }
    return {
        "headline": HEADLINE,
        "samples": samples,
        "vanilla": figures["vanilla"],
        "gold": figures["gold"],
        "rows": rows,
        "precision": quantization,
        "gold_precision": gold_precision(gold),
    }


RUNNERS = {
    "relearning": run_relearning,
    "precision": run_precision,
    "rephrased": run_rephrased,
    "cross_modal": run_cross_modal,
    "membership": run_membership,
}
