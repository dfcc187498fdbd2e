"""Run the whole CLEAR protocol on the offline default and print the results table.

Writes a mini-CLEAR and a tiny LLaVA, fine-tunes the vanilla (full+tofu) and gold (retain90+tofu) models, unlearns
forget10 from the vanilla model with each method (4-bit base, LoRA), evaluates everything and writes the report.
Each stage has its own folder under --out; a rerun skips the stages that finished.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from eval.protocol import ProtocolSettings, run_protocol
from unlearn.cli import run_cli


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.quickstart", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="outputs/quickstart", help="output folder (default: %(default)s)")
    parser.add_argument("--method", default="npo_gd", help="unlearning method (default: %(default)s)")
    parser.add_argument("--methods", help="comma-separated methods to run instead of --method, e.g. ga,npo_gd,idk")
    parser.add_argument("--persons", type=int, default=20, help="persons in the mini-CLEAR (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data, models and training (default: 0)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    methods = [name.strip() for name in (args.methods or args.method).split(",") if name.strip()]
    settings = ProtocolSettings(out=Path(args.out), methods=methods, persons=args.persons, seed=args.seed)
    table = run_protocol(settings)
    print(f"\nResults ({args.out}/report/results.md, plots in {args.out}/report/):\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
