"""Fine-tune a model on a CLEAR split: base -> vanilla (--split full+tofu) or base -> gold (--split retain90+tofu).

python -m scripts.finetune --model M --data D --split full+tofu --output_dir OUT [--quantization 4bit] [--full]
    [--merge] [--config run.yaml] [any TrainingArguments flag]
"""

from __future__ import annotations

import time

from accelerate import PartialState

from unlearn.errors import run_cli
from unlearn.training.config import finetune_parser, parse_finetune_args
from unlearn.training.runs import MERGED, finetune

build_parser = finetune_parser  # the script's parser: FinetuneConfig's options


def main(argv: list[str] | None = None) -> int:
    config = parse_finetune_args(argv)
    start = time.perf_counter()
    out = finetune(config)
    if PartialState().is_main_process:  # once under accelerate launch
        kind = "checkpoint" if config.full else "LoRA adapter"
        print(f"saved the {kind} fine-tuned on {config.split} to {out} in {time.perf_counter() - start:.1f} s")
        if config.merge and not config.full:
            print(f"merged checkpoint: {out / MERGED}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
