"""The one exception type the library raises for bad user input, the rules every option's value obeys, and the
scripts' wrapper that shows bad input as one ``error: ...`` line and exit code 2.

``RULES`` is the one table of what each option (by its ``dest``, the name without ``--``) accepts: numbers within
bounds (NaN and infinities never pass), input files or folders that exist, output folders that can be written.
Every script checks its parsed options against it with :func:`check_options` before any work, and its parser with
:func:`one_line_errors` reports argparse's own errors (a non-number, an unknown choice) as one line too.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

# The largest count any option takes: torch and numpy index with 32-bit integers in places, and nothing this project
# runs needs more steps, samples or tokens.
INT32_MAX = 2**31 - 1
SEED_MAX = 2**32 - 1  # numpy's seeds are 32-bit unsigned


class UsageError(Exception):
    """Bad input from the user: scripts print it as ``error: <message>`` and exit with code 2."""


@dataclass(frozen=True)
class Number:
    """A number in ``[low, high]`` (``open_low`` / ``open_high``: that end excluded), an ``int`` with ``integer``.

    NaN and infinities never pass. ``special`` values pass besides the range (``-1`` for "not set"), ``None`` only
    with ``optional`` (an option whose default is None); a list passes when each of its items does.
    """

    low: float = -math.inf
    high: float = math.inf
    open_low: bool = False
    open_high: bool = False
    integer: bool = False
    optional: bool = False
    special: tuple[int, ...] = ()
    meaning: str = ""  # what the special values mean

    def problem(self, value: Any) -> str | None:
        """None when ``value`` passes; otherwise what is wrong with it beyond the description ("" for nothing)."""
        if isinstance(value, list | tuple):
            bad = [item for item in value if self.problem(item) is not None]
            return f"{bad[0]!r} among them" if bad else None
        if value is None:
            return None if self.optional else ""
        if isinstance(value, bool) or not isinstance(value, int if self.integer else int | float):
            return ""
        if value in self.special:
            return None
        if isinstance(value, float) and not math.isfinite(value):
            return ""
        above = value > self.low if self.open_low else value >= self.low
        below = value < self.high if self.open_high else value <= self.high
        return None if above and below else ""

    def describe(self) -> str:
        """What passes, in words: ``a finite number > 0``, ``an integer in [1, 2147483647], or -1 (...)``."""
        kind = "an integer" if self.integer else "a finite number"
        low, high = _number(self.low), _number(self.high)
        if math.isinf(self.low) and math.isinf(self.high):
            text = kind
        elif math.isinf(self.high):
            text = f"{kind} {'>' if self.open_low else '>='} {low}"
        elif math.isinf(self.low):
            text = f"{kind} {'<' if self.open_high else '<='} {high}"
        else:
            text = f"{kind} in {'(' if self.open_low else '['}{low}, {high}{')' if self.open_high else ']'}"
        if self.special:
            text += f", or {' or '.join(str(value) for value in self.special)} ({self.meaning})"
        return text


@dataclass(frozen=True)
class Existing:
    """An input that must exist: a ``file`` or a ``folder``; with ``hub`` a Hub id ``USER/NAME[@REVISION]`` too."""

    kind: str = "folder"
    hub: bool = False

    def problem(self, value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, list | tuple):
            bad = [item for item in value if self.problem(item) is not None]
            return f"{bad[0]!r} {self.problem(bad[0])}" if bad else None
        path = Path(str(value)).expanduser()
        if path.is_file() if self.kind == "file" else path.is_dir():
            return None
        if self.hub and _is_repo_id(str(value)):
            return None  # fetched (or refused with one line) when loaded
        return f"not a {self.kind}" if path.exists() else "not found"

    def describe(self) -> str:
        return f"an existing {self.kind}" + (" or a Hub id USER/NAME[@REVISION]" if self.hub else "")


@dataclass(frozen=True)
class Writable:
    """An output ``folder`` (or ``file``) that exists as one, or whose nearest existing parent folder is writable."""

    kind: str = "folder"

    def problem(self, value: Any) -> str | None:
        if value is None:
            return None
        path = Path(str(value)).expanduser().absolute()
        if path.exists() and path.is_dir() != (self.kind == "folder"):
            return f"not a {self.kind}"
        parent = path if path.is_dir() else path.parent  # the folder written into, or the nearest one that exists
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir():
            return f"{str(parent)!r} is a file"
        if not os.access(parent, os.W_OK | os.X_OK) or _read_only(parent):
            return f"{str(parent)!r} is not writable"
        return None

    def describe(self) -> str:
        return f"a {self.kind} that can be written"


Rule = Number | Existing | Writable

POSITIVE = Number(low=0, open_low=True)  # a finite number > 0
WEIGHT = Number(low=0)  # a finite number >= 0 (0 drops the term)
SHARE = Number(low=0, high=1, open_high=True)  # a probability or a decay: [0, 1)
COUNT = Number(low=1, high=INT32_MAX, integer=True)  # an integer >= 1
SEED = Number(low=0, high=SEED_MAX, integer=True)
FOLDER_OR_HUB = Existing("folder", hub=True)
OUTPUT_FOLDER = Writable("folder")
OUTPUT_FILE = Writable("file")

# option (its dest) -> what it accepts. The scripts' every numeric option is here: tests/hardening checks that each
# parser's numeric options have a rule, and draws bad values for each from it.
RULES: dict[str, Rule] = {
    # transformers.TrainingArguments, as scripts.finetune and scripts.unlearn expose it
    "learning_rate": POSITIVE,
    "num_train_epochs": Number(low=0, high=INT32_MAX, open_low=True),
    "max_steps": Number(low=1, high=INT32_MAX, integer=True, special=(-1,), meaning="use --num_train_epochs"),
    "per_device_train_batch_size": COUNT,
    "per_device_eval_batch_size": COUNT,
    "gradient_accumulation_steps": COUNT,
    "eval_accumulation_steps": Number(low=1, high=INT32_MAX, integer=True, optional=True),
    "warmup_steps": Number(low=0, high=INT32_MAX),  # below 1: a share of the steps
    "weight_decay": WEIGHT,
    "adam_beta1": SHARE,
    "adam_beta2": SHARE,
    "adam_epsilon": WEIGHT,
    "max_grad_norm": WEIGHT,  # 0: no clipping
    "label_smoothing_factor": SHARE,
    "neftune_noise_alpha": Number(low=0, open_low=True, optional=True),
    "torch_empty_cache_steps": Number(low=1, high=INT32_MAX, integer=True, optional=True),
    "logging_steps": Number(low=0, high=INT32_MAX, open_low=True),  # below 1: a share of the steps
    "eval_steps": Number(low=0, high=INT32_MAX, open_low=True, optional=True),
    "eval_delay": Number(low=0, high=INT32_MAX),
    "save_steps": Number(low=0, high=INT32_MAX, open_low=True),
    "save_total_limit": Number(low=1, high=INT32_MAX, integer=True, optional=True),
    "seed": SEED,
    "data_seed": Number(low=0, high=SEED_MAX, integer=True, optional=True),
    "dataloader_num_workers": Number(low=0, high=1024, integer=True),
    "dataloader_prefetch_factor": Number(low=1, high=INT32_MAX, integer=True, optional=True),
    "ddp_bucket_cap_mb": Number(low=1, high=INT32_MAX, integer=True, optional=True),
    "ddp_timeout": COUNT,
    "local_rank": Number(low=-1, high=INT32_MAX, integer=True),
    # unlearn.training.config: LoRA, the pixel budget, the L1 term
    "lora_r": COUNT,
    "lora_alpha": COUNT,
    "lora_dropout": SHARE,
    "min_pixels": Number(low=1, high=INT32_MAX, integer=True, optional=True),  # optional in scripts.evaluate
    "max_pixels": Number(low=1, high=INT32_MAX, integer=True, optional=True),
    "l1_lambda": WEIGHT,
    # unlearn.methods: each method's options
    "beta": POSITIVE,
    "gamma": Number(),
    "forget_weight": WEIGHT,
    "retain_weight": WEIGHT,
    "kl_weight": WEIGHT,
    "mismatch_weight": WEIGHT,
    "task_weight": WEIGHT,
    "alpha": WEIGHT,
    "steering_coefficient": POSITIVE,
    "layer": Number(low=0, high=INT32_MAX, integer=True, optional=True),
    "max_steps_per_cycle": Number(low=0, high=INT32_MAX, integer=True),
    "min_steps_per_cycle": Number(low=0, high=INT32_MAX, integer=True),
    # scripts.evaluate, scripts.probe and the benchmarks
    "batch_size": COUNT,
    "max_samples": Number(low=1, high=INT32_MAX, integer=True, optional=True),
    "max_new_tokens": Number(low=1, high=INT32_MAX, integer=True, optional=True),
    "bootstrap": Number(low=0, high=1_000_000, integer=True),
    "k": Number(low=0, high=1, open_low=True),
    "relearn_steps": COUNT,
    "relearn_lr": POSITIVE,
    "relearn_batch": COUNT,
    "persons": Number(low=2, high=500, integer=True),  # unlearn.offline.mini_clear.MAX_PERSONS
    "images_per_person": Number(low=1, high=100, integer=True),
    "repeats": COUNT,
    "rounds": COUNT,
    "adapters": COUNT,
    "steps": COUNT,
    "threads": Number(low=1, high=1024, integer=True),
    "port": Number(low=1, high=65535, integer=True, optional=True),
    # inputs and outputs (scripts.report's RUN_DIRs: eval.runs.load_runs refuses a folder without summary.json)
    "model": FOLDER_OR_HUB,
    "adapter": FOLDER_OR_HUB,
    "base": FOLDER_OR_HUB,
    "data": FOLDER_OR_HUB,
    "processor": FOLDER_OR_HUB,
    "modality_adapters": Existing("folder"),
    "summary": Existing("file"),
    "output_dir": OUTPUT_FOLDER,
    "out": OUTPUT_FOLDER,
    "dry_run": OUTPUT_FOLDER,
}


def check_options(
    values: Any, parser: argparse.ArgumentParser | None = None, rules: Mapping[str, Rule] | None = None
) -> None:
    """Raise a one-line :class:`UsageError` for the first option of ``values`` that breaks its rule in ``rules``.

    ``values``: an ``argparse.Namespace``, a dataclass instance or a mapping of option names to values; options
    without a rule are not checked. ``parser`` names each option as it spells its flag (``--batch-size``; else
    ``--dest``). ``rules`` defaults to :data:`RULES`; pass ``{**RULES, "out": OUTPUT_FILE}`` to change one.
    """
    rules = RULES if rules is None else rules
    items = values.items() if isinstance(values, Mapping) else vars(values).items()
    for name, value in items:
        rule = rules.get(name)
        problem = rule.problem(value) if rule is not None else None
        if problem is not None:
            got = f"{value!r}: {problem}" if problem else repr(value)
            raise UsageError(f"{flag_name(name, parser)} must be {rule.describe()} (got {got})")


def flag_name(dest: str, parser: argparse.ArgumentParser | None = None) -> str:
    """How ``parser`` spells the flag of ``dest`` (its first ``--`` option string); ``--dest`` without one."""
    for action in parser._actions if parser is not None else ():
        if action.dest == dest:
            spelled = [option for option in action.option_strings if option.startswith("--")]
            return spelled[0] if spelled else str(action.metavar or dest)
    return f"--{dest}"


def one_line_errors(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Make ``parser`` report its errors (a non-number, an unknown choice, a missing flag) as one ``error: ...``
    line on stderr and exit code 2, instead of the usage text and the error; ``parser`` itself is returned."""

    def error(message: str) -> NoReturn:
        parser.exit(2, f"error: {message}\n")

    parser.error = error  # type: ignore[method-assign]
    return parser


def parse_checked(
    parser: argparse.ArgumentParser, argv: list[str] | None = None, rules: Mapping[str, Rule] | None = None
) -> argparse.Namespace:
    """``parser.parse_args(argv)`` with :func:`one_line_errors`, then every option checked with
    :func:`check_options` against ``rules`` (default :data:`RULES`): bad input is one line, before any work."""
    args = one_line_errors(parser).parse_args(argv)
    check_options(args, parser, rules)
    return args


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a script's ``main``; a :class:`UsageError` becomes ``error: <message>`` on stderr and exit code 2."""
    try:
        return main(argv)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _is_repo_id(name: str) -> bool:
    from unlearn.hub.resolve import is_repo_id  # imports huggingface_hub: only when an input is not a local path

    return is_repo_id(name)


def _read_only(folder: Path) -> bool:
    """True when ``folder`` is on a read-only mount (``os.access`` says writable there for root)."""
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False
