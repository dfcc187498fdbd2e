"""Write a tiny checkpoint of a model family (LLaVA-1.5, Qwen2-VL, Qwen2.5-VL) whose tokenizer is trained on a CLEAR
folder, and which has learnt its real-world sets."""

from __future__ import annotations

import argparse
from dataclasses import fields

from unlearn.errors import run_cli
from unlearn.offline.tiny_model import TINY_FAMILIES, TinySpec, write_tiny_model


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True, help="CLEAR folder (from scripts.make_mini_clear) for the tokenizer")
    parser.add_argument("--out", required=True, help="folder to write the checkpoint to")
    parser.add_argument("--family", default="llava", help=f"model family: {', '.join(TINY_FAMILIES)} (default: llava)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random initialisation")
    for field in fields(TinySpec):
        flag = f"--{field.name.replace('_', '-')}"
        parser.add_argument(flag, type=int, default=field.default, help=field.metadata["help"])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    spec = TinySpec(**{field.name: getattr(args, field.name) for field in fields(TinySpec)})
    out = write_tiny_model(args.data, args.out, spec, seed=args.seed, family=args.family)
    print(f"wrote a tiny {args.family} model ({spec}) to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
