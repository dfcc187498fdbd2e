"""The ``Trainer`` subclasses (finite loss and gradient guards; the unlearning loss from a method), the run helpers.

A run's output folder holds the Trainer's ``checkpoint-*`` folders while it trains and, once it finished, the final
model files, written atomically: first into ``OUT/.final-tmp``, then renamed into ``OUT`` one by one with the config
file that makes the folder loadable (``adapter_config.json`` or ``config.json``) last. A killed or diverged run
never leaves something under the final names that loads as if it were finished.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import get_last_checkpoint

from unlearn.errors import UsageError
from unlearn.methods.base import UnlearnMethod

FINAL_TMP = ".final-tmp"
RUN_CONFIG = "run_config.json"
LOADABLE_MARKERS = ("adapter_config.json", "config.json")


def ensure_finite(loss: torch.Tensor, step: int) -> None:
    """Stop the run with a UsageError when the loss is NaN or infinite (nothing is saved as final then)."""
    if not torch.isfinite(loss).all():
        raise UsageError(
            f"the loss is {loss.detach().float().mean().item()} at step {step}: training diverged and was stopped, "
            "nothing was saved as final; try a lower --learning_rate"
        )


def ensure_finite_gradients(model: torch.nn.Module, step: int) -> None:
    """Stop the run with a UsageError when a gradient holds a NaN or infinity (before the optimiser applies it)."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if grads and not torch.stack([torch.isfinite(g).all() for g in grads]).all():
        raise UsageError(
            f"non-finite gradient at step {step}: training diverged and was stopped, nothing was saved as final; "
            "try a lower --learning_rate"
        )


def ensure_finite_weights(model: torch.nn.Module) -> None:
    """Refuse to save a model whose trainable weights hold a NaN or infinity."""
    if not all(torch.isfinite(p).all() for p in model.parameters() if p.requires_grad):
        raise UsageError("the trained weights hold NaN or infinite values: nothing was saved as final")


class FiniteGradients(TrainerCallback):
    """Checks the gradients before every optimiser step (see :func:`ensure_finite_gradients`)."""

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, model: torch.nn.Module, **kwargs: Any) -> None:
        ensure_finite_gradients(model, state.global_step)


def lora_l1(model: torch.nn.Module) -> torch.Tensor:
    """``sum |w|`` over every trainable LoRA weight (the ``lora_A`` and ``lora_B`` matrices)."""
    weights = [p for name, p in model.named_parameters() if p.requires_grad and "lora_" in name]
    return torch.stack([w.abs().sum() for w in weights]).sum()


class FiniteLossTrainer(Trainer):
    """A ``Trainer`` whose loss and gradients must stay finite (see :func:`ensure_finite`, :class:`FiniteGradients`).

    With fp16's loss scaler the gradients are not checked: it skips the steps whose gradients are not finite itself.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.accelerator.scaler is None:
            self.add_callback(FiniteGradients())

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        ensure_finite(result[0] if return_outputs else result, self.state.global_step)
        return result


class UnlearnTrainer(FiniteLossTrainer):
    """A ``Trainer`` whose loss comes from an unlearning method, plus ``l1_lambda * lora_l1(model)``.

    Inputs are the named batches of :class:`unlearn.training.pairing.PairCollator`; the method's terms are logged as
    averages since the last log, next to the Trainer's ``loss``, each over the batches that computed it (SCRUB's max
    and min steps log different terms).
    """

    def __init__(self, *args: Any, method: UnlearnMethod, l1_lambda: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.method, self.l1_lambda = method, l1_lambda
        self._log_sums: dict[str, float] = defaultdict(float)
        self._log_counts: dict[str, int] = defaultdict(int)

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        loss, logs = self.method.loss(model, inputs, self.state.global_step)
        if self.l1_lambda:
            l1 = lora_l1(model)
            loss = loss + self.l1_lambda * l1
            logs["lora_l1"] = l1.item()
        ensure_finite(loss, self.state.global_step)
        for key, value in logs.items():
            self._log_sums[key] += value
            self._log_counts[key] += 1
        return (loss, None) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self._log_counts and "loss" in logs:
            names = sorted(self._log_sums)
            means = [self._log_sums[name] / self._log_counts[name] for name in names]
            means = torch.tensor(means, device=self.args.device)
            means = self.accelerator.reduce(means, reduction="mean")  # averaged over processes too
            logs = {**logs, **dict(zip(names, means.tolist(), strict=True))}
            self._log_sums.clear()
            self._log_counts.clear()
        super().log(logs, start_time)


def check_output_dir(output_dir: str | Path, resuming: bool) -> None:
    """Refuse to train into a folder that already holds a finished run (unless the run is resumed)."""
    out = Path(output_dir)
    if not resuming and any((out / marker).exists() for marker in LOADABLE_MARKERS):
        raise UsageError(f"{out} already holds a finished run; choose another --output_dir or remove it")


def resume_checkpoint(value: str | None, output_dir: str | Path) -> str | None:
    """``--resume_from_checkpoint``: a checkpoint folder, or ``true``/``last`` for the newest in the output folder."""
    if value is None or value.lower() in ("", "false", "no"):
        return None
    if value.lower() in ("true", "last", "yes"):
        last = get_last_checkpoint(str(output_dir)) if Path(output_dir).is_dir() else None
        if last is None:
            raise UsageError(f"no checkpoint-* folder to resume from in {output_dir}")
        return last
    if not Path(value).is_dir():
        raise UsageError(f"checkpoint folder not found: {value}")
    return value


def save_final(output_dir: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(folder)`` on a temporary folder, then rename its files into ``output_dir`` (configs last)."""
    out = Path(output_dir)
    tmp = out / FINAL_TMP
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    for path in sorted(tmp.iterdir(), key=lambda p: p.name in LOADABLE_MARKERS):
        os.replace(path, out / path.name)
    tmp.rmdir()
    return out


def save_folder_atomically(folder: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a sibling temporary folder, then rename it to ``folder`` in one step."""
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}-tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    os.replace(tmp, folder)
    return folder


def write_run_config(folder: Path, values: dict[str, Any]) -> None:
    """Write the resolved configuration as ``run_config.json``."""
    (folder / RUN_CONFIG).write_text(json.dumps(values, indent=2, sort_keys=True, default=str) + "\n")


def save_run(trainer: Trainer, processor: Any, values: dict[str, Any]) -> Path:
    """Save the trained model (an adapter for PEFT models), the processor and ``run_config.json`` atomically.

    Nothing is saved when a trainable weight is not finite. Only the main process writes; with ``accelerate launch``
    the others wait for it.
    """
    out = Path(trainer.args.output_dir)
    ensure_finite_weights(trainer.model)
    trainer.accelerator.wait_for_everyone()
    if trainer.is_world_process_zero():
        model = trainer.accelerator.unwrap_model(trainer.model)

        def write(folder: Path) -> None:
            model.save_pretrained(folder)
            processor.save_pretrained(folder)
            write_run_config(folder, values)

        save_final(out, write)
    trainer.accelerator.wait_for_everyone()
    return out
