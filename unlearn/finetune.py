"""Fine-tuning on a CLEAR split: base -> vanilla (``full+tofu``) and base -> gold (a retain split).

LoRA by default (QLoRA with ``quantization="4bit"``), all weights but the vision tower with ``full=True``. The
loss is the mean NLL of the answer tokens (captions, names, text answers) as the collator labels them.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import TrainerCallback, set_seed

from unlearn.collate import TrainingCollator
from unlearn.config import FinetuneConfig, run_config
from unlearn.examples import split_examples
from unlearn.models import add_lora, freeze_vision_tower, load_model
from unlearn.prompts import Example
from unlearn.trainer import (
    FiniteLossTrainer,
    check_output_dir,
    resume_checkpoint,
    save_folder_atomically,
    save_run,
    write_run_config,
)

MERGED = "merged"


def finetune_examples(data: str, split: str) -> list[Example]:
    """The examples of ``split``: captions and names of its images, plus its text questions with ``+tofu``."""
    return split_examples(data, split, "both" if split.endswith("+tofu") else "visual")


def merge_adapter(config: FinetuneConfig, adapter: Path) -> Path:
    """Write ``adapter/merged``: the base in full precision with the adapter merged in, and the processor."""
    model, processor = load_model(config.model, adapter=str(adapter))
    merged = model.merge_and_unload()

    def write(folder: Path) -> None:
        merged.save_pretrained(folder)
        processor.save_pretrained(folder)
        write_run_config(folder, run_config(config))

    return save_folder_atomically(adapter / MERGED, write)


def finetune(config: FinetuneConfig, callbacks: Sequence[TrainerCallback] = ()) -> Path:
    """Train, then save to ``config.output_dir`` (an adapter, or a full checkpoint with ``full``); the folder."""
    resume = resume_checkpoint(config.resume_from_checkpoint, config.output_dir)
    check_output_dir(config.output_dir, resume is not None)
    examples = finetune_examples(config.data, config.split)
    set_seed(config.seed)
    model, processor = load_model(config.model, config.quantization)
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
        callbacks=list(callbacks),
    )
    trainer.train(resume_from_checkpoint=resume)
    out = save_run(trainer, processor, run_config(config))
    if config.merge and not config.full and trainer.is_world_process_zero():
        del trainer, model
        gc.collect()
        torch.cuda.empty_cache()
        merge_adapter(config, out)
    return out
