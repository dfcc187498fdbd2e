"""Write the offline mini-CLEAR: a small synthetic CLEAR in the Hub layout, loadable with ``load_clear``.

python -m scripts.make_mini_clear --out data/mini_clear --persons 20 --seed 0
python -m scripts.make_mini_clear --out data/clear-scale --persons 200 --image-size 512   (CLEAR's real scale)
"""

from __future__ import annotations

import argparse
import sys
import time

from unlearn.errors import UsageError
from unlearn.offline.mini_clear import (
    CLEAR_PERSONS,
    CLEAR_QUESTIONS,
    FACTS,
    IMAGE_SIZE,
    IMAGES_PER_PERSON,
    MAX_IMAGE_SIZE,
    MAX_PERSONS,
    QUESTIONS_PER_PERSON,
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
        help=f"number of invented persons, 2 to {MAX_PERSONS} (default: %(default)s; CLEAR's own {CLEAR_PERSONS} "
        "makes CLEAR's real scale the default: its 3,768 images, 17 to 20 per person, and its row counts)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives identical files")
    parser.add_argument(
        "--images-per-person",
        type=int,
        metavar="N",
        help=f"face images, each with a caption, per person (default: {IMAGES_PER_PERSON}; CLEAR's counts at "
        f"{CLEAR_PERSONS} persons)",
    )
    parser.add_argument(
        "--questions-per-person",
        type=int,
        metavar="N",
        help=f"text question/answer pairs per person, 1 to {len(FACTS)} (default: {QUESTIONS_PER_PERSON}; "
        f"{CLEAR_QUESTIONS} at {CLEAR_PERSONS} persons)",
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
        f"{len(rows)} configs, {sum(rows.values())} rows (full: {rows['full']}, full+tofu: {rows['full+tofu']}, "
        f"forget01/05/10: {rows['forget01']}/{rows['forget05']}/{rows['forget10']}, "
        f"retain_perturbed: {rows['retain_perturbed']})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
