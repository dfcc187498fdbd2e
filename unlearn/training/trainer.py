"""The ``Trainer`` subclasses (finite loss and gradient guards; the unlearning loss from a method), the run helpers.

A run's output folder holds the Trainer's ``checkpoint-*`` folders while it trains and, once it finished, the final
model files, written atomically: first into ``OUT/.final-tmp``, then renamed into ``OUT`` one by one with the config
file that makes the folder loadable (``adapter_config.json`` or ``config.json``) last. A killed or diverged run
never leaves something under the final names that loads as if it were finished.

Each checkpoint also records the run's configuration (``run_config.json``); the Trainer writes
``trainer_state.json`` last, so a checkpoint holding both was written to the end. A run started again with the same
command into the same folder resumes from the newest such checkpoint of the same configuration
(:func:`resume_checkpoint`). Under ``torch.distributed`` the finite checks are agreed on by every process, so a
non-finite loss or gradient on one process stops all of them at the same step with the same message.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from accelerate import PartialState
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from unlearn.errors import UsageError
from unlearn.methods.base import UnlearnMethod

FINAL_TMP = ".final-tmp"
RUN_CONFIG = "run_config.json"
LOADABLE_MARKERS = ("adapter_config.json", "config.json")
# The Trainer writes it last into a checkpoint folder: a checkpoint without it was being written when the run stopped.
CHECKPOINT_STATE = "trainer_state.json"
CHECKPOINT = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
# Recorded options that differ between the processes or the places of one run: not compared when resuming.
NOT_COMPARED = ("local_rank", "output_dir")
DIVERGED = "training diverged and was stopped, nothing was saved as final; try a lower --learning_rate"


def _world() -> tuple[int, int] | None:
    """(this process's rank, the number of processes) under an initialised ``torch.distributed`` of several
    processes; None for a single process."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist.get_rank(), dist.get_world_size()
    return None


def _flag_device(hint: torch.device | None) -> torch.device:
    """Where a collective's tensor must live: on this process's GPU under NCCL, else on the CPU (gloo)."""
    if dist.get_backend() == "nccl":
        return hint if hint is not None and hint.type == "cuda" else torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def ensure_finite(loss: torch.Tensor, step: int) -> None:
    """Stop the run with a UsageError when the loss is NaN or infinite (nothing is saved as final then).

    Under ``torch.distributed`` every process takes part: the losses are gathered, so when one process's loss is not
    finite every process raises, at the same step, the same error naming that process (none waits for the others
    in the next all-reduce).
    """
    finite = bool(torch.isfinite(loss).all())
    value = loss.detach().float().mean()
    world = _world()
    if world is None:
        if not finite:
            raise UsageError(f"the loss is {value.item()} at step {step}: {DIVERGED}")
        return
    rank, size = world
    mine = torch.tensor([0.0 if finite else 1.0, value.item()], device=_flag_device(loss.device))
    gathered = [torch.empty_like(mine) for _ in range(size)]
    dist.all_gather(gathered, mine)
    for process, (bad, process_value) in enumerate(item.tolist() for item in gathered):
        if bad:
            raise UsageError(f"the loss is {process_value} at step {step} on process {process} of {size}: {DIVERGED}")


def ensure_finite_gradients(model: torch.nn.Module, step: int) -> None:
    """Stop the run with a UsageError when a gradient holds a NaN or infinity (before the optimiser applies it).

    Under ``torch.distributed`` the verdict is reduced over the processes (MAX of a flag), so every process raises
    the same error at the same step, also where each process holds its own gradients (sharded training).
    """
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    bad = bool(grads) and not bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())
    if _world() is not None:
        flag = torch.tensor([1.0 if bad else 0.0], device=_flag_device(grads[0].device if grads else None))
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        bad = bool(flag.item())
    if bad:
        raise UsageError(f"non-finite gradient at step {step}: {DIVERGED}")


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


def checkpoints(output_dir: str | Path, recorded: bool = False) -> list[Path]:
    """The ``checkpoint-N`` folders of ``output_dir`` that were written to the end (they hold ``trainer_state.json``,
    and with ``recorded`` also ``run_config.json``), oldest first."""
    out = Path(output_dir)
    if not out.is_dir():
        return []
    found = [
        path
        for path in out.iterdir()
        if CHECKPOINT.match(path.name)
        and (path / CHECKPOINT_STATE).is_file()
        and (not recorded or (path / RUN_CONFIG).is_file())
    ]
    return sorted(found, key=lambda path: int(CHECKPOINT.match(path.name)[1]))


def _incomplete(output_dir: str | Path) -> str:
    """`` (checkpoint-N not written to the end ...)`` for the checkpoint folders of ``output_dir``, none complete."""
    out = Path(output_dir)
    found = sorted(path.name for path in out.iterdir() if CHECKPOINT.match(path.name)) if out.is_dir() else []
    return f" ({', '.join(found)} not written to the end: the run was killed while saving)" if found else ""


def _comparable(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` as ``run_config.json`` holds them, without the options one run may differ in (NOT_COMPARED)."""
    return {key: value for key, value in json.loads(_run_config_text(values)).items() if key not in NOT_COMPARED}


def _differences(recorded: dict[str, Any], values: dict[str, Any]) -> list[str]:
    theirs, ours = _comparable(recorded), _comparable(values)
    return [
        f"{key} {theirs.get(key)!r} there, {ours.get(key)!r} now"
        for key in sorted(theirs.keys() | ours.keys())
        if theirs.get(key) != ours.get(key)
    ]


def resume_checkpoint(value: str | None, output_dir: str | Path, values: dict[str, Any] | None = None) -> str | None:
    """The checkpoint a run resumes from, by ``--resume_from_checkpoint``: a ``checkpoint-N`` folder; ``true`` /
    ``last`` for the newest complete one in ``output_dir``; ``false`` for none. Unset (or ``auto``), a run resumes by
    itself from the newest complete checkpoint that records the configuration ``values`` (the run's
    :func:`unlearn.training.config.run_config`), so a killed run started again with the same command carries on
    where it stopped; a folder that holds a finished run, or no such checkpoint, starts none. A checkpoint of another
    configuration is a UsageError naming what differs."""
    choice = "auto" if value is None else value.strip().lower()
    if choice in ("", "false", "no"):
        return None
    if choice in ("true", "last", "yes"):
        found = checkpoints(output_dir)
        if not found:
            raise UsageError(f"no checkpoint-* folder to resume from in {output_dir}{_incomplete(output_dir)}")
        return str(found[-1])
    if choice == "auto":
        return _auto_resume(Path(output_dir), values)
    folder = Path(value)
    if not folder.is_dir():
        raise UsageError(f"checkpoint folder not found: {value}")
    if not (folder / CHECKPOINT_STATE).is_file():
        raise UsageError(
            f"{value} is incomplete (no {CHECKPOINT_STATE}): it was being written when the run stopped; "
            "resume from an earlier checkpoint"
        )
    return value


def _auto_resume(out: Path, values: dict[str, Any] | None) -> str | None:
    if values is None or any((out / marker).exists() for marker in LOADABLE_MARKERS):
        return None
    found = checkpoints(out, recorded=True)
    if not found:
        return None
    last = found[-1]
    try:
        recorded = json.loads((last / RUN_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {last / RUN_CONFIG}: {exc}") from exc
    differ = _differences(recorded, values)
    if differ:
        raise UsageError(
            f"{out} holds checkpoints of another configuration ({'; '.join(differ[:3])}"
            f"{'; ...' if len(differ) > 3 else ''}): choose another --output_dir or delete its checkpoint-* folders "
            "to start over, or pass --resume_from_checkpoint true to resume anyway"
        )
    if PartialState().is_main_process:
        print(f"resuming from {last} (--resume_from_checkpoint false starts over)", file=sys.stderr, flush=True)
    return str(last)


class RecordRunConfig(TrainerCallback):
    """Writes the run's configuration into each checkpoint folder, for :func:`resume_checkpoint` to compare."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if state.is_world_process_zero and folder.is_dir():
            write_run_config(folder, self.values)


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


def save_folder_atomically(folder: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on an empty sibling temporary folder (``.NAME-tmp``), then rename it to ``folder``: a run
    killed at any moment leaves ``folder`` absent, or whole (the earlier one, or the new one), never half-written.

    An existing ``folder`` is first renamed aside (``.NAME-old``) and removed once the new one is in place.
    """
    folder = Path(folder)
    tmp, old = folder.with_name(f".{folder.name}-tmp"), folder.with_name(f".{folder.name}-old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder


def _run_config_text(values: dict[str, Any]) -> str:
    try:
        return json.dumps(values, indent=2, sort_keys=True, default=str, allow_nan=False) + "\n"
    except ValueError as exc:  # a NaN or infinite option: strict JSON cannot hold it
        raise UsageError(f"cannot record the configuration in {RUN_CONFIG}: {exc}") from exc


def write_run_config(folder: Path, values: dict[str, Any]) -> None:
    """Write the resolved configuration as ``run_config.json`` (strict JSON: a NaN or infinite option is a
    UsageError)."""
    (folder / RUN_CONFIG).write_text(_run_config_text(values), encoding="utf-8")


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
