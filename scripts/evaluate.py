"""Evaluate a model (optionally with a LoRA adapter) on the CLEAR tasks; writes <task>.jsonl and summary.json.

python -m scripts.evaluate --model M [--adapter A] --data D --forget forget10 --output_dir OUT [--gold GOLD_DIR]
python -m scripts.evaluate eval.yaml            # the same options from a YAML file
"""

from __future__ import annotations

import sys

from transformers import HfArgumentParser

from eval.evaluator import EvalArguments, evaluate_checkpoint
from eval.report import results_table, run_from_summary
from unlearn.cli import run_cli


def parse_args(argv: list[str] | None) -> EvalArguments:
    parser = HfArgumentParser(EvalArguments, prog="python -m scripts.evaluate", description=__doc__.splitlines()[0])
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 1 and argv[0].endswith((".yaml", ".yml")):
        (args,) = parser.parse_yaml_file(argv[0])
    else:
        (args,) = parser.parse_args_into_dataclasses(argv)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    summary = evaluate_checkpoint(args)
    print(results_table([run_from_summary(args.output_dir, summary)]))
    print(f"wrote {args.output_dir}/summary.json and one <task>.jsonl per task")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
