"""Evaluate a model (optionally with a LoRA adapter) on the CLEAR tasks; writes <task>.jsonl and summary.json.

python -m scripts.evaluate --model M [--adapter A] --data D --forget forget10 --output_dir OUT [--gold GOLD_DIR]
python -m scripts.evaluate --config eval.yaml [--flags that override it]
"""

from __future__ import annotations

from transformers import HfArgumentParser

from eval.evaluator import EvalArguments, evaluate_checkpoint
from eval.report import results_table, run_from_summary
from unlearn.errors import run_cli
from unlearn.training.config import dataclass_parser, parse_config


def build_parser() -> HfArgumentParser:
    """The script's parser: every option of ``EvalArguments`` and ``--config FILE``."""
    return dataclass_parser([EvalArguments], "python -m scripts.evaluate", __doc__.splitlines()[0])


def parse_args(argv: list[str] | None) -> EvalArguments:
    """The options, each checked against ``unlearn.errors.RULES`` before any work."""
    (args,) = parse_config(build_parser(), argv)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    summary = evaluate_checkpoint(args)
    print(results_table([run_from_summary(args.output_dir, summary)]))
    print(f"wrote {args.output_dir}/summary.json and one <task>.jsonl per task")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
