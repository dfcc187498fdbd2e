"""Unlearning: a new LoRA adapter on the vanilla model, trained on forget/retain pairs with a registered method.

The reference model of KL and NPO is the same model with the adapter disabled (no second copy of the weights).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, set_seed

from unlearn.config import UnlearnConfig, run_config
from unlearn.data import load_clear
from unlearn.errors import UsageError
from unlearn.examples import split_examples
from unlearn.methods import get_method
from unlearn.models import add_lora, load_model
from unlearn.pairing import ForgetRetainPairs, PairCollator, PairEpochCallback
from unlearn.prompts import Example
from unlearn.trainer import UnlearnTrainer, check_output_dir, resume_checkpoint, save_run


def check_disjoint(data: str, forget: str, retain: str) -> None:
    """Raise a UsageError when a person of the forget split is also in the retain split."""
    shared = set(load_clear(forget, data)["name"]) & set(load_clear(retain, data)["name"])
    if shared:
        raise UsageError(f"{forget} and {retain} overlap ({len(shared)} persons, e.g. {sorted(shared)[0]})")


def forget_retain_examples(config: UnlearnConfig) -> tuple[list[Example], list[Example]]:
    """The forget examples (of ``config.forget_modality``) and the retain examples (images and text)."""
    check_disjoint(config.data, config.forget, config.retain)
    forget = split_examples(config.data, config.forget, config.forget_modality)
    return forget, split_examples(config.data, config.retain, "both")


def unlearn(config: UnlearnConfig, options: Any = None, callbacks: Sequence[TrainerCallback] = ()) -> Path:
    """Train an unlearning adapter with ``config.method`` and save it to ``config.output_dir``; the folder.

    ``options`` is the method's options dataclass (its defaults when None).
    """
    method = get_method(config.method)(options)
    resume = resume_checkpoint(config.resume_from_checkpoint, config.output_dir)
    check_output_dir(config.output_dir, resume is not None)
    forget, retain = forget_retain_examples(config)
    pairs = ForgetRetainPairs(forget, retain, config.seed)
    set_seed(config.seed)
    model, processor = load_model(config.model, config.quantization)
    model = add_lora(model, config.lora_settings(), config.gradient_checkpointing)
    method.prepare(model, forget, retain, config.seed)
    trainer = UnlearnTrainer(
        model=model,
        args=config,
        train_dataset=pairs,
        data_collator=PairCollator(processor, method.examples),
        processing_class=processor,
        callbacks=[PairEpochCallback(pairs), *callbacks],
        method=method,
        l1_lambda=config.l1_lambda,
    )
    trainer.train(resume_from_checkpoint=resume)
    method.finish(trainer.accelerator.unwrap_model(trainer.model))
    return save_run(trainer, processor, run_config(config, method.options))
