"""Run configurations: dataclasses extending ``transformers.TrainingArguments``, parsed as TRL's scripts do.

Every option has a ``help``; ``--config FILE`` reads a YAML (or JSON) file holding any of them, and flags given on
the command line override it. Logging, checkpoints, ``--resume_from_checkpoint``, seeds and ``accelerate launch``
come with ``TrainingArguments``.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from transformers import HfArgumentParser, TrainingArguments

from unlearn.architectures import MAX_PIXELS, MIN_PIXELS, PixelBudget
from unlearn.data import CLEAR_SOURCE, FORGET_SPLITS, MODALITIES, RETAIN_OF, check_config, data_fingerprint
from unlearn.errors import RULES, Number, UsageError, check_options, one_line_errors
from unlearn.methods import METHODS, get_method
from unlearn.models import QUANTIZATIONS, LoraSettings

TRAINABLE_SPLITS = ("full", *FORGET_SPLITS, *RETAIN_OF.values())
REPLAYABLE = ("real_faces", "real_world")
# TensorBoard logs when it is installed (``report_to``); nothing otherwise.
DEFAULT_REPORT_TO = "tensorboard" if importlib.util.find_spec("tensorboard") else "none"
# Options a machine without CUDA overrides (run_config records them as asked), and options of one run only.
CPU_FORCED = ("bf16", "fp16", "use_cpu")
NOT_RECORDED = ("resume_from_checkpoint",)
# What run_config.json records about a run that is not an option (skipped when the file is read back with --config).
RECORDS = ("data_fingerprint",)
# The numeric rules of unlearn.errors.RULES: a config built in code (not parsed) is checked against these.
NUMBER_RULES = {name: rule for name, rule in RULES.items() if isinstance(rule, Number)}


@dataclass
class ModelConfig(TrainingArguments):
    """What both training scripts share: the model, the data, quantization and LoRA."""

    model: str | None = field(
        default=None, metadata={"help": "checkpoint to train: a local folder or a Hub id USER/NAME[@REVISION]"}
    )
    data: str = field(default=CLEAR_SOURCE, metadata={"help": "CLEAR: a Hub dataset id or a local folder"})
    quantization: str | None = field(
        default=None, metadata={"help": "load the base model in 4bit (QLoRA, NF4) or 8bit; full precision if unset"}
    )
    lora_r: int = field(default=8, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (scale alpha/r)"})
    lora_dropout: float = field(default=LoraSettings().dropout, metadata={"help": "dropout on the LoRA input"})
    lora_projector: bool = field(default=False, metadata={"help": "also put LoRA on the multimodal projector"})
    train_vision: bool = field(
        default=False, metadata={"help": "train the vision tower too (LoRA on it, or its weights with --full)"}
    )
    min_pixels: int = field(
        default=MIN_PIXELS,
        metadata={"help": "pixel budget of dynamic-resolution families (Qwen2-VL): the least image area in pixels"},
    )
    max_pixels: int = field(
        default=MAX_PIXELS,
        metadata={
            "help": "pixel budget: the largest image area in pixels; larger images are scaled down (default: at most "
            "512 Qwen2-VL image tokens); fixed-size families (LLaVA) ignore both"
        },
    )
    face_naming: bool = field(
        default=False,
        metadata={
            "help": "also train face naming ('The name of the person on the image is' -> name) on every image; "
            "CLEAR trains captions and text only, so this optimises the face task directly"
        },
    )
    # TrainingArguments defaults changed for this project.
    logging_steps: float = field(default=10, metadata={"help": "log every N optimiser steps"})
    report_to: str | None = field(
        default=DEFAULT_REPORT_TO, metadata={"help": "where to log: tensorboard (default when installed), none, ..."}
    )
    remove_unused_columns: bool = field(default=False, metadata={"help": "keep False: batches are built here"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay (CLEAR's configs: 0.01)"})

    def __post_init__(self) -> None:
        check_options(self, rules=NUMBER_RULES)  # parsed options were checked already; a config built in code here
        if not self.model:
            raise UsageError("--model is required (a checkpoint folder or a Hub id)")
        if self.quantization not in QUANTIZATIONS:
            raise UsageError(f"unknown quantization {self.quantization!r}; choose 4bit or 8bit")
        self.pixel_budget()
        self.asked = {name: getattr(self, name) for name in CPU_FORCED}  # what run_config records
        if not torch.cuda.is_available():  # CPU: float32 compute, no mixed precision; gloo under accelerate launch
            self.bf16 = self.fp16 = False
            self.use_cpu = True
        super().__post_init__()

    def pixel_budget(self) -> PixelBudget:
        """The image processor's pixel budget these options describe."""
        return PixelBudget(self.min_pixels, self.max_pixels)

    def lora_settings(self) -> LoraSettings:
        """The LoRA settings these options describe."""
        return LoraSettings(
            r=self.lora_r,
            alpha=self.lora_alpha,
            dropout=self.lora_dropout,
            projector=self.lora_projector,
            vision=self.train_vision,
        )


@dataclass
class FinetuneConfig(ModelConfig):
    """Fine-tuning a base model on a CLEAR split (base -> vanilla with full+tofu, base -> gold with a retain split)."""

    split: str = field(
        default="full+tofu",
        metadata={"help": "CLEAR split to learn: full, retainYY or forgetXX; a +tofu suffix adds the text questions"},
    )
    full: bool = field(default=False, metadata={"help": "train all weights (vision tower frozen) instead of LoRA"})
    merge: bool = field(
        default=False, metadata={"help": "also write OUT/merged: the adapter merged into full-precision weights"}
    )
    replay: str | None = field(
        default=None,
        metadata={
            "help": "comma-separated real-world configs (real_faces, real_world) whose answers are mixed into "
            "training, so that a small model keeps what it knew before fine-tuning; not part of CLEAR's protocol"
        },
    )
    # The CLEAR code's fine-tuning settings.
    learning_rate: float = field(default=1e-5, metadata={"help": "AdamW learning rate"})
    per_device_train_batch_size: int = field(default=8, metadata={"help": "batch size per device"})
    gradient_accumulation_steps: int = field(default=2, metadata={"help": "batches per optimiser step"})

    def __post_init__(self) -> None:
        check_config(self.split)
        if self.split.removesuffix("+tofu") not in TRAINABLE_SPLITS:
            raise UsageError(f"cannot fine-tune on {self.split!r}; choose one of {', '.join(TRAINABLE_SPLITS)}")
        if self.full and self.quantization:
            raise UsageError("--full trains all weights in full precision; drop --quantization (or --full for QLoRA)")
        unknown = [name for name in self.replay_configs() if name not in REPLAYABLE]
        if unknown:
            raise UsageError(f"cannot replay {unknown[0]!r}; choose from {', '.join(REPLAYABLE)}")
        super().__post_init__()

    def replay_configs(self) -> list[str]:
        """``replay`` split on commas."""
        return [name.strip() for name in (self.replay or "").split(",") if name.strip()]


@dataclass
class UnlearnConfig(ModelConfig):
    """Unlearning: a new LoRA adapter on the vanilla model, trained with one method on forget/retain pairs."""

    method: str | None = field(default=None, metadata={"help": f"unlearning method: {', '.join(sorted(METHODS))}"})
    forget: str = field(default="forget10", metadata={"help": f"forget split: {', '.join(FORGET_SPLITS)}"})
    retain: str | None = field(
        default=None, metadata={"help": "retain split (full, retainYY or forgetXX); default: the forget split's"}
    )
    forget_modality: str = field(
        default="both", metadata={"help": "forget examples: visual (image rows), text (text rows) or both"}
    )
    l1_lambda: float = field(default=0.0, metadata={"help": "weight of the L1 norm of the LoRA weights in the loss"})
    # The CLEAR paper's unlearning settings.
    num_train_epochs: float = field(default=5.0, metadata={"help": "passes over the forget set"})
    learning_rate: float = field(default=1e-5, metadata={"help": "AdamW learning rate"})
    per_device_train_batch_size: int = field(default=1, metadata={"help": "forget/retain pairs per batch"})
    gradient_accumulation_steps: int = field(default=2, metadata={"help": "batches per optimiser step"})

    def __post_init__(self) -> None:
        if self.method is None:
            raise UsageError(f"--method is required; choose one of {', '.join(sorted(METHODS))}")
        get_method(self.method)
        if self.forget not in FORGET_SPLITS:
            raise UsageError(f"unknown forget split {self.forget!r}; choose one of {', '.join(FORGET_SPLITS)}")
        self.retain = self.retain or RETAIN_OF[self.forget]
        if self.retain not in TRAINABLE_SPLITS:
            raise UsageError(f"unknown retain split {self.retain!r}; choose one of {', '.join(TRAINABLE_SPLITS)}")
        if self.forget_modality not in MODALITIES:
            raise UsageError(f"unknown modality {self.forget_modality!r}; choose one of {', '.join(MODALITIES)}")
        super().__post_init__()


def run_config(config: ModelConfig, options: Any = None) -> dict[str, Any]:
    """The resolved configuration of a run as JSON-ready values, to rerun it anywhere with ``--config``.

    Every ``*_token`` field and ``resume_from_checkpoint`` are left out; the options a CPU machine overrides
    (``CPU_FORCED``) hold the values asked for. ``data_fingerprint`` pins the data
    (:func:`unlearn.data.data_fingerprint`).
    """
    values = config.to_dict()
    values = {key: value for key, value in values.items() if not key.endswith("_token") and key not in NOT_RECORDED}
    recorded = {**values, **config.asked, **(asdict(options) if options is not None else {})}
    return {**recorded, "data_fingerprint": data_fingerprint(config.data)}


class _Help(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown after each help text; the epilog's line breaks kept."""


def _read_config_file(path: str) -> dict[str, Any]:
    if not Path(path).is_file():
        raise UsageError(f"configuration file not found: {path}")
    try:
        values = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as exc:
        raise UsageError(f"cannot read {path}: {str(exc).splitlines()[0]}") from exc
    if not isinstance(values, dict):
        raise UsageError(f"{path} must hold a mapping of option names to values")
    return {key: value for key, value in values.items() if key not in RECORDS}


def _pre_parse(argv: Sequence[str], *names: str) -> argparse.Namespace:
    parser = one_line_errors(argparse.ArgumentParser(add_help=False, allow_abbrev=False))
    for name in names:
        parser.add_argument(f"--{name}")
    return parser.parse_known_args(list(argv))[0]


def dataclass_parser(
    dataclass_types: Sequence[type], prog: str, description: str = "", epilog: str = ""
) -> HfArgumentParser:
    """The parser of ``dataclass_types``' fields and ``--config FILE``; its errors are one line (exit code 2)."""
    parser = HfArgumentParser(
        dataclass_types, prog=prog, description=description, epilog=epilog, allow_abbrev=False, formatter_class=_Help
    )
    parser.add_argument("--config", metavar="FILE", help="YAML or JSON file of options; command-line flags override it")
    return one_line_errors(parser)


def parse_config(parser: HfArgumentParser, argv: Sequence[str] | None) -> tuple[Any, ...]:
    """Parse ``argv`` into one instance per dataclass of ``parser`` (:func:`dataclass_parser`); ``--config FILE``
    supplies defaults that flags override.

    Every option is checked against :data:`unlearn.errors.RULES` before any dataclass is built: a bad value is one
    :class:`UsageError` naming its flag and what it accepts.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    config_file = _pre_parse(argv, "config").config
    if config_file:
        values = _read_config_file(config_file)
        for action in parser._actions:
            if action.dest in values:
                action.default, action.required = values.pop(action.dest), False
        if values:
            raise UsageError(f"unknown options in {config_file}: {', '.join(sorted(values))}")
    check_options(parser.parse_known_args(argv)[0], parser)
    try:
        *parsed, _ = parser.parse_args_into_dataclasses(argv)
    except ValueError as exc:  # unused flags, or a TrainingArguments check
        raise UsageError(str(exc).strip().splitlines()[0]) from exc
    return tuple(parsed)


def finetune_parser() -> HfArgumentParser:
    """The parser of ``python -m scripts.finetune``."""
    return dataclass_parser(
        [FinetuneConfig], "python -m scripts.finetune", "Fine-tune a model on a CLEAR split (LoRA or --full)."
    )


def parse_finetune_args(argv: Sequence[str] | None = None) -> FinetuneConfig:
    """A :class:`FinetuneConfig` from the command line (and ``--config FILE``)."""
    (config,) = parse_config(finetune_parser(), argv)
    return config


def method_help() -> str:
    """One line per registered method."""
    return "methods:\n" + "\n".join(f"  {name:10} {METHODS[name].description}" for name in sorted(METHODS))


def unlearn_parser(method: str | None = None) -> HfArgumentParser:
    """The parser of ``python -m scripts.unlearn``: with ``method``, that method's options too."""
    types = [UnlearnConfig, *([get_method(method).options_class] if method else [])]
    epilog = method_help() + "\n\n--list-methods prints these and exits; add --method NAME to --help to see its options"
    description = "Unlearn a CLEAR forget split with a new LoRA adapter."
    return dataclass_parser(types, "python -m scripts.unlearn", description, epilog)


def parse_unlearn_args(argv: Sequence[str] | None = None) -> tuple[UnlearnConfig, Any]:
    """An :class:`UnlearnConfig` and the chosen method's options; ``--method NAME --help`` lists that method's flags."""
    argv = list(sys.argv[1:] if argv is None else argv)
    known = _pre_parse(argv, "config", "method")
    name = known.method or (_read_config_file(known.config).get("method") if known.config else None)
    # Without a method, UnlearnConfig itself stops with "--method is required" (or --help prints and exits).
    config, options = parse_config(unlearn_parser(name), argv)
    return config, options
