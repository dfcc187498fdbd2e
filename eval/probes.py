"""Robustness probes that need no training (issue 15; so far membership inference and precision).

Membership inference asks whether the forget persons' training examples still look like training data. Its sets are
the forget split's examples (captions and text answers) and as many of the retain split's, spread evenly over it;
each attack's AUC is ``P(score(retain) > score(forget))`` (:func:`eval.membership.attack_aucs`, retain as members).
The gold model never saw the forget persons, so its AUC is what forgetting should reach: a model below it still
treats the forget examples as data (under-unlearning), one above it finds them stranger than data never seen
(over-unlearning). ``gap = (AUC_model - AUC_gold) / AUC_gold`` per attack.

The precision probe evaluates the adapter, and the vanilla base beside it, at each of ``PRECISIONS``: on a 4-bit
base (as unlearned), on an 8-bit base, and merged into the full-precision base. Quantizing an unlearned model can
bring the forgotten knowledge back (Zhang et al., ICLR 2025), so forgetting counts as lost at a precision where the
forget-face probability is back above half of vanilla's there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from peft import PeftModel
from peft.tuners.tuners_utils import BaseTunerLayer
from transformers import PreTrainedModel, ProcessorMixin

from eval.evaluator import evaluate
from eval.logs import write_records
from eval.membership import ATTACKS, attack_aucs, relative_gap
from eval.token_scores import answer_attack_scores
from unlearn.architectures import anatomy
from unlearn.data import RETAIN_OF, split_examples
from unlearn.models import load_model
from unlearn.prompts import Example

T = TypeVar("T")


def spread(items: list[T], count: int) -> list[T]:
    """``count`` items at evenly spaced indices (all of them when there are no more)."""
    if count >= len(items):
        return list(items)
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, count).round()]


def membership_sets(data: str, forget: str, max_samples: int | None = None) -> tuple[list[Example], list[Example]]:
    """The forget split's examples (at most ``max_samples``, evenly spread) and as many of its retain split's."""
    forget_examples = split_examples(data, forget)
    forget_examples = spread(forget_examples, max_samples or len(forget_examples))
    return forget_examples, spread(split_examples(data, RETAIN_OF[forget]), len(forget_examples))


def membership_probe(
    model: PreTrainedModel | PeftModel,
    processor: ProcessorMixin,
    sets: tuple[list[Example], list[Example]],
    k: float = 0.2,
    batch_size: int = 8,
    log_dir: Path | None = None,
) -> dict[str, Any]:
    """Each attack's AUC of telling retain (members) from forget examples, with the sample counts and ``k``; with
    ``log_dir``, every example's scores in ``log_dir/forget.jsonl`` and ``log_dir/retain.jsonl``."""
    forget_examples, retain_examples = sets
    model.eval()
    forget_scores = answer_attack_scores(model, processor, forget_examples, k, batch_size)
    retain_scores = answer_attack_scores(model, processor, retain_examples, k, batch_size)
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        for name, examples, scores in (
            ("forget", forget_examples, forget_scores),
            ("retain", retain_examples, retain_scores),
        ):
            records = [{"prompt": e.prompt, "answer": e.answer, **s} for e, s in zip(examples, scores, strict=True)]
            write_records(log_dir, name, records)
    return {
        "auc": attack_aucs(retain_scores, forget_scores),
        "samples": {"forget": len(forget_examples), "retain": len(retain_examples)},
        "k": k,
    }


def membership_gap(model: dict[str, Any], gold: dict[str, Any]) -> dict[str, float | None]:
    """``(AUC_model - AUC_gold) / AUC_gold`` per attack (None where gold's AUC is 0)."""
    return {attack: relative_gap(model["auc"][attack], gold["auc"][attack]) for attack in ATTACKS}


# Precision: the adapter on a 4-bit base (as unlearned), on an 8-bit base, and merged into the full-precision base.
PRECISIONS = ("4bit", "8bit", "merged")
PRECISION_TASKS = ("forget_caption", "forget_face", "retain_caption", "retain_face")  # the forget and retain scores
LOST = 0.5  # forgetting is lost where forget-face probability is back above this share of vanilla's


def load_in(base: str, adapter: str | None, precision: str) -> tuple[PreTrainedModel | PeftModel, ProcessorMixin]:
    """``base`` (with ``adapter``) in ``precision``: quantized with the adapter on top, or ``merged``: in full
    precision, the adapter merged into the weights (without an adapter: the full-precision base)."""
    if precision != "merged":
        return load_model(base, quantization=precision, adapter=adapter)
    model, processor = load_model(base, adapter=adapter)
    return (model.merge_and_unload() if isinstance(model, PeftModel) else model), processor


def weight_kinds(model: PreTrainedModel | PeftModel) -> dict[str, Any]:
    """What the language model's linear weights are stored as, and how many LoRA layers sit on them (0 merged)."""
    parts = anatomy(model)
    language = model.get_base_model() if isinstance(model, PeftModel) else model
    dtypes = {
        str(module.weight.dtype).removeprefix("torch.")
        for name, module in language.named_modules()
        if name.startswith(f"{parts.language}.") and isinstance(module, torch.nn.Linear) and ".lora_" not in name
    }
    lora = sum(isinstance(module, BaseTunerLayer) for module in model.modules())
    return {"language_weight_dtypes": sorted(dtypes), "lora_layers": lora}


def precision_probe(
    base: str, adapter: str, data: str, forget: str, output_dir: Path, max_samples: int | None, batch_size: int = 8
) -> dict[str, Any]:
    """The adapter and the vanilla base at each of ``PRECISIONS``: forget and retain scores, forget-face probability
    and accuracy, the weights' storage; ``lost`` where the adapter's forget-face probability exceeds ``LOST`` times
    vanilla's at the same precision (``lost_at``: those precisions)."""
    figures: dict[str, Any] = {}
    for precision in PRECISIONS:
        row = {}
        for name, with_adapter in (("model", adapter), ("vanilla", None)):
            model, processor = load_in(base, with_adapter, precision)
            summary = evaluate(
                model,
                processor,
                data,
                forget=forget,
                tasks=list(PRECISION_TASKS),
                batch_size=batch_size,
                max_samples=max_samples,
                output_dir=output_dir / precision / name,
                quantization=None if precision == "merged" else precision,
                bootstrap=0,
                progress=False,
            )
            row[name] = {
                "forget": summary["forget"],
                "retain": summary["retain"],
                "forget_face_probability": summary["forget_face"]["probability"],
                "forget_face_accuracy": summary["forget_face"]["accuracy"],
                "samples": {task: summary[task]["samples"] for task in PRECISION_TASKS},
                **weight_kinds(model),
            }
            del model
        row["lost"] = row["model"]["forget_face_probability"] > LOST * row["vanilla"]["forget_face_probability"]
        figures[precision] = row
    figures["lost_at"] = [precision for precision in PRECISIONS if figures[precision]["lost"]]
    return figures
