"""Unlearn a CLEAR forget split: train a new LoRA adapter on the vanilla model with one method.

python -m scripts.unlearn --model VANILLA --data D --method npo --forget forget10 --retain retain90 --output_dir OUT
    [--quantization 4bit] [--forget-modality text|visual|both] [--l1-lambda X] [--beta X] [any TrainingArguments flag]
python -m scripts.unlearn --list-methods    (every method with a one-line description)
"""

from __future__ import annotations

import argparse
import sys
import time

from accelerate import PartialState

from unlearn.errors import one_line_errors, run_cli
from unlearn.training.config import method_help, parse_unlearn_args, unlearn_parser
from unlearn.training.runs import unlearn

build_parser = unlearn_parser  # the script's parser: UnlearnConfig's options and, given a method, the method's


def wants_method_list(argv: list[str]) -> bool:
    """True when ``argv`` holds ``--list-methods`` (or ``--list_methods``)."""
    parser = one_line_errors(argparse.ArgumentParser(add_help=False, allow_abbrev=False))
    parser.add_argument("--list-methods", "--list_methods", action="store_true")
    return parser.parse_known_args(argv)[0].list_methods


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if wants_method_list(argv):
        print(method_help())
        return 0
    config, options = parse_unlearn_args(argv)
    start = time.perf_counter()
    out = unlearn(config, options)
    if PartialState().is_main_process:  # once under accelerate launch
        print(
            f"saved the {config.method} adapter ({config.forget} vs {config.retain}, {config.forget_modality}) "
            f"to {out} in {time.perf_counter() - start:.1f} s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
