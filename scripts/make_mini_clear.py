"""Write the offline mini-CLEAR: a small synthetic CLEAR in the Hub layout, loadable with ``load_clear``.

python -m scripts.make_mini_clear --out data/mini_clear --persons 20 --seed 0
"""

from __future__ import annotations

import argparse
import sys
import time

from unlearn.errors import UsageError
from unlearn.offline.mini_clear import (
    FACTS,
    IMAGE_SIZE,
    MAX_IMAGE_SIZE,
    MAX_PERSONS,
    count_rows,
    split_persons,
    write_mini_clear,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.make_mini_clear",
        description="Write a synthetic mini-CLEAR (invented persons, drawn faces, captions, text facts) "
        "with all 21 CLEAR configs into a folder.",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write into (created if missing)")
    parser.add_argument(
        "--persons",
        type=int,
        default=20,
        metavar="N",
        help=f"number of invented persons, 2 to {MAX_PERSONS} (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives identical files")
    parser.add_argument(
        "--images-per-person",
        type=int,
        default=5,
        metavar="N",
        help="face images, each with a caption, per person (default: %(default)s)",
    )
    parser.add_argument(
        "--questions-per-person",
        type=int,
        default=4,
        metavar="N",
        help=f"text question/answer pairs per person, 1 to {len(FACTS)} (default: %(default)s)",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=IMAGE_SIZE,
        metavar="PX",
        help=f"side of every image in pixels, 16 to {MAX_IMAGE_SIZE} (default: %(default)s; CLEAR's real scale: 512)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    try:
        out = write_mini_clear(
            args.out, args.persons, args.seed, args.images_per_person, args.questions_per_person, args.image_size
        )
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows, sizes = count_rows(out), split_persons(args.persons)
    print(f"wrote mini-CLEAR to {out} in {time.perf_counter() - start:.1f} s")
    print(
        f"{args.persons} persons (forget01/05/10: {sizes['forget01']}/{sizes['forget05']}/{sizes['forget10']}), "
        f"{len(rows)} configs, {sum(rows.values())} rows (full: {rows['full']}, full+tofu: {rows['full+tofu']})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
