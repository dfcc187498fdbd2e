"""Compare evaluation runs: results.md (Table-1 layout and per-task figures), results.csv and PNG plots.

python -m scripts.report runs/vanilla_eval runs/gold_eval runs/npo_eval --out report/
"""

from __future__ import annotations

import argparse

from eval.report import load_runs, results_table, write_report
from unlearn.errors import parse_checked, run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scripts.report", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="scripts.evaluate output folders (named by folder)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for results.md, results.csv and plots")
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options, each checked against ``unlearn.errors.RULES`` before any work."""
    return parse_checked(build_parser(), argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs = load_runs(args.runs)
    files = write_report(runs, args.out)
    print(results_table(runs))
    print("wrote " + ", ".join(str(path) for path in files))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
