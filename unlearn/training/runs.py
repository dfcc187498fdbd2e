"""The two training runs that build and change the CLEAR model stack.

- :func:`finetune`: base -> vanilla (``full+tofu``) and base -> gold (a retain split). LoRA by default (QLoRA with
  ``quantization="4bit"``), all weights but the vision tower with ``full=True``. The loss is the mean NLL of the
  answer tokens (captions, names, text answers) as the collator labels them.
- :func:`unlearn`: a new LoRA adapter on the vanilla model, trained on forget/retain pairs with a registered method.
  The reference model of KL and NPO is the same model with the adapter disabled (no second copy of the weights).

Both resume a killed run by themselves when started again with the same configuration and output folder
(:func:`unlearn.training.trainer.resume_checkpoint`), and give the weights the uninterrupted run would have given.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback, set_seed

from unlearn.collate import TrainingCollator
from unlearn.data import load_clear, split_examples, world_examples
from unlearn.errors import UsageError
from unlearn.methods import get_method
from unlearn.models import add_lora, freeze_vision_tower, load_model
from unlearn.prompts import Example
from unlearn.training.config import FinetuneConfig, UnlearnConfig, run_config
from unlearn.training.pairing import ForgetRetainPairs, PairCollator, PairEpochCallback
from unlearn.training.trainer import (
    FiniteLossTrainer,
    RecordRunConfig,
    UnlearnTrainer,
    check_output_dir,
    resume_checkpoint,
    save_folder_atomically,
    save_run,
    write_run_config,
)

MERGED = "merged"


def finetune_examples(data: str, split: str, face_naming: bool = False) -> list[Example]:
    """The examples of ``split``: captions of its images (and names with ``face_naming``), plus its text questions
    with ``+tofu``."""
    return split_examples(data, split, "both" if split.endswith("+tofu") else "visual", face_naming)


def merge_adapter(config: FinetuneConfig, adapter: Path) -> Path:
    """Write ``adapter/merged``: the base in full precision with the adapter merged in, and the processor."""
    model, processor = load_model(config.model, adapter=str(adapter), pixels=config.pixel_budget())
    merged = model.merge_and_unload()

    def write(folder: Path) -> None:
        merged.save_pretrained(folder)
        processor.save_pretrained(folder)
        write_run_config(folder, run_config(config))

    return save_folder_atomically(adapter / MERGED, write)


def finetune(config: FinetuneConfig, callbacks: Sequence[TrainerCallback] = ()) -> Path:
    """Train, then save to ``config.output_dir`` (an adapter, or a full checkpoint with ``full``); the folder."""
    recorded = run_config(config)
    resume = resume_checkpoint(config.resume_from_checkpoint, config.output_dir, recorded)
    check_output_dir(config.output_dir, resume is not None)
    examples = finetune_examples(config.data, config.split, config.face_naming)
    examples += world_examples(config.data, config.replay_configs())
    set_seed(config.seed)
    model, processor = load_model(config.model, config.quantization, pixels=config.pixel_budget())
    if config.full:
        if not config.train_vision:
            freeze_vision_tower(model)
    else:
        model = add_lora(model, config.lora_settings(), config.gradient_checkpointing)
    trainer = FiniteLossTrainer(
        model=model,
        args=config,
        train_dataset=examples,
        data_collator=TrainingCollator(processor),
        processing_class=processor,
        callbacks=[RecordRunConfig(recorded), *callbacks],
    )
    trainer.train(resume_from_checkpoint=resume)
    out = save_run(trainer, processor, run_config(config))
    if config.merge and not config.full and trainer.is_world_process_zero():
        del trainer, model
        gc.collect()
        torch.cuda.empty_cache()
        merge_adapter(config, out)
    return out


def check_disjoint(data: str, forget: str, retain: str) -> None:
    """Raise a UsageError when a person of the forget split is also in the retain split."""
    shared = set(load_clear(forget, data)["name"]) & set(load_clear(retain, data)["name"])
    if shared:
        raise UsageError(f"{forget} and {retain} overlap ({len(shared)} persons, e.g. {sorted(shared)[0]})")


def forget_retain_examples(config: UnlearnConfig) -> tuple[list[Example], list[Example]]:
    """The forget examples (of ``config.forget_modality``) and the retain examples (images and text)."""
    check_disjoint(config.data, config.forget, config.retain)
    forget = split_examples(config.data, config.forget, config.forget_modality, config.face_naming)
    return forget, split_examples(config.data, config.retain, "both", config.face_naming)


def unlearn(config: UnlearnConfig, options: Any = None, callbacks: Sequence[TrainerCallback] = ()) -> Path:
    """Train an unlearning adapter with ``config.method`` and save it to ``config.output_dir``; the folder.

    ``options`` is the method's options dataclass (its defaults when None).
    """
    method = get_method(config.method)(options)
    recorded = run_config(config, method.options)
    resume = resume_checkpoint(config.resume_from_checkpoint, config.output_dir, recorded)
    check_output_dir(config.output_dir, resume is not None)
    forget, retain = forget_retain_examples(config)
    pairs = ForgetRetainPairs(forget, retain, config.seed)
    set_seed(config.seed)
    model, processor = load_model(config.model, config.quantization, pixels=config.pixel_budget())
    model = add_lora(model, config.lora_settings(), config.gradient_checkpointing)
    method.prepare(model, forget, retain, config.seed)
    trainer = UnlearnTrainer(
        model=model,
        args=config,
        train_dataset=pairs,
        data_collator=PairCollator(processor, method.examples),
        processing_class=processor,
        callbacks=[PairEpochCallback(pairs), RecordRunConfig(recorded), *callbacks],
        method=method,
        l1_lambda=config.l1_lambda,
    )
    trainer.train(resume_from_checkpoint=resume)
    method.finish(trainer.accelerator.unwrap_model(trainer.model))
    return save_run(trainer, processor, run_config(config, method.options))
