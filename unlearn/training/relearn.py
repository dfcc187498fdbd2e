"""The relearning attack: train a LoRA adapter further on some of the forgotten data, measuring it along the way.

The learning rate is constant (no warm-up, no decay) and the batches follow the seed, so the model seen at step
``k`` of one run of ``max(steps)`` steps is the model a run of ``k`` steps would end with: one run gives the whole
relearning curve. Nothing is saved: the attack's result is what the measurements record.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from typing import Any

import torch
from peft import PeftModel
from transformers import ProcessorMixin, TrainerCallback, TrainingArguments, set_seed

from unlearn.collate import TrainingCollator
from unlearn.errors import UsageError
from unlearn.prompts import Example
from unlearn.training.trainer import FiniteLossTrainer

Measure = Callable[[int], Any]  # called with the step count, the model in eval mode and without gradients


class MeasureAtSteps(TrainerCallback):
    """Calls ``measure(step)`` after each optimiser step in ``steps``, with the model in eval mode, no gradients."""

    def __init__(self, steps: Sequence[int], measure: Measure) -> None:
        self.steps, self.measure = set(steps), measure

    def on_step_end(self, args: Any, state: Any, control: Any, model: torch.nn.Module, **kwargs: Any) -> None:
        if state.global_step in self.steps:
            _measure_in_eval_mode(model, self.measure, state.global_step)


def _measure_in_eval_mode(model: torch.nn.Module, measure: Measure, step: int) -> None:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            measure(step)
    finally:
        model.train(was_training)


def relearn(
    model: PeftModel,
    processor: ProcessorMixin,
    examples: list[Example],
    steps: Sequence[int],
    measure: Measure,
    learning_rate: float,
    batch_size: int,
    seed: int = 0,
) -> None:
    """Train ``model``'s trainable (LoRA) weights on ``examples`` for ``max(steps)`` optimiser steps of AdamW at a
    constant ``learning_rate``, the answer-token NLL as the loss; ``measure(k)`` at step 0 and after each step ``k``
    in ``steps``."""
    if not examples:
        raise UsageError("relearning needs examples to train on")
    if not steps or min(steps) < 1:
        raise UsageError(f"relearning steps must be at least 1, got {list(steps)}")
    set_seed(seed)
    _measure_in_eval_mode(model, measure, 0)
    with tempfile.TemporaryDirectory(prefix="relearn-") as scratch:  # the Trainer wants a folder; nothing is kept
        arguments = TrainingArguments(
            output_dir=scratch,
            max_steps=max(steps),
            learning_rate=learning_rate,
            lr_scheduler_type="constant",
            warmup_steps=0,
            weight_decay=0.0,
            per_device_train_batch_size=batch_size,
            gradient_accumulation_steps=1,
            save_strategy="no",
            report_to="none",
            logging_steps=max(steps),
            remove_unused_columns=False,
            seed=seed,
            use_cpu=not torch.cuda.is_available(),
            disable_tqdm=True,
        )
        trainer = FiniteLossTrainer(
            model=model,
            args=arguments,
            train_dataset=examples,
            data_collator=TrainingCollator(processor),
            processing_class=processor,
            callbacks=[MeasureAtSteps(steps, measure)],
        )
        trainer.train()
