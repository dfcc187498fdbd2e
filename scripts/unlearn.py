"""Unlearn a CLEAR forget split: train a new LoRA adapter on the vanilla model with one method.

python -m scripts.unlearn --model VANILLA --data D --method npo --forget forget10 --retain retain90 --output_dir OUT
    [--quantization 4bit] [--forget-modality text|visual|both] [--l1-lambda X] [--beta X] [any TrainingArguments flag]
"""

from __future__ import annotations

import time

from accelerate import PartialState

from unlearn.cli import run_cli
from unlearn.config import parse_unlearn_args
from unlearn.unlearning import unlearn


def main(argv: list[str] | None = None) -> int:
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
