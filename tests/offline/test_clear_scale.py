"""The mini-CLEAR at CLEAR's real scale (the defaults at 200 persons) and the default files it must leave unchanged.

The real-scale rows are counted at 16 px: the image size changes no row count, and 512 px takes a minute to write.
"""

from __future__ import annotations

import hashlib
import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from scripts.make_mini_clear import main
from unlearn.data import CLEAR_CONFIGS, FORGET_SPLITS, RETAIN_OF
from unlearn.offline.mini_clear import CLEAR_IMAGE_GROUPS, config_path, count_rows, image_counts, write_mini_clear

# The content of the default mini-CLEAR (20 persons, seed 0) as written before the real-scale preset existed: rows
# with decoded pixels and the card without its file digests, so neither a PNG nor a parquet writer's bytes count.
DEFAULT_CONTENT = "236cacefb54a22a27d58489a00bc530f353f518158a2270cb2eb5b83ce384eba"
# therem/CLEAR's row counts (its dataset viewer); mini-CLEAR keeps 20 rows of real_faces and real_world instead.
CLEAR_ROWS = {
    "full": 3768,
    "default": 3768,
    "forget01": 35,
    "forget05": 188,
    "forget10": 379,
    "retain90": 3389,
    "retain95": 3580,
    "full+tofu": 7768,
    "forget01+tofu": 75,
    "forget05+tofu": 388,
    "forget10+tofu": 779,
    "retain90+tofu": 6989,
    "retain95+tofu": 7380,
    "retain_perturbed": 395,
}


def content_digest(folder: Path) -> str:
    """SHA-256 of every config's rows (images as decoded pixels) and of the card without its digest lines."""
    digest = hashlib.sha256()
    for config in CLEAR_CONFIGS:
        for row in pq.read_table(folder / config_path(config)).to_pylist():
            image = row.pop("image", None)
            pixels = Image.open(io.BytesIO(image["bytes"])).tobytes() if image else b""
            digest.update(json.dumps([config, row], sort_keys=True).encode() + hashlib.sha256(pixels).digest())
    card = [line for line in (folder / "README.md").read_text().splitlines() if "sha256" not in line]
    digest.update("\n".join(card).encode())
    return digest.hexdigest()


def column(folder: Path, config: str, name: str) -> list:
    return pq.read_table(folder / config_path(config), columns=[name])[name].to_pylist()


@pytest.fixture(scope="module")
def clear_scale(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A 200-person mini-CLEAR at 16 px written by the script with its defaults, and what it printed."""
    out = tmp_path_factory.mktemp("clear_scale") / "data"
    capture = io.StringIO()
    with redirect_stdout(capture):
        assert main(["--out", str(out), "--persons", "200", "--image-size", "16"]) == 0
    return out, capture.getvalue()


def test_the_default_mini_clear_is_unchanged(tmp_path: Path) -> None:
    assert content_digest(write_mini_clear(tmp_path / "default")) == DEFAULT_CONTENT


def test_200_persons_default_to_clears_row_counts(clear_scale: tuple[Path, str]) -> None:
    out, printed = clear_scale
    rows = count_rows(out)
    assert {config: rows[config] for config in CLEAR_ROWS} == CLEAR_ROWS
    assert "full: 3768" in printed and "forget01/05/10: 35/188/379" in printed


def test_200_persons_forget_clears_persons_with_17_to_20_images_and_20_questions_each(clear_scale) -> None:
    out, _ = clear_scale
    for split, persons in zip(FORGET_SPLITS, (2, 10, 20), strict=True):
        assert len(set(column(out, split, "name"))) == persons
        assert len(set(column(out, RETAIN_OF[split], "name"))) == 200 - persons
    names = column(out, "full", "name")
    assert {names.count(name) for name in set(names)} <= set(range(17, 21))
    questions = [q for q in column(out, "full+tofu", "question") if q]
    assert len(questions) == len(set(questions)) == 200 * 20
    assert set(column(out, "retain_perturbed", "name")) == set(column(out, "retain90", "name")), "thinned evenly"


def test_image_counts() -> None:
    assert image_counts(20) == [5] * 20 and image_counts(200, 3) == [3] * 200
    counts, start = image_counts(200), 0
    for persons, images in CLEAR_IMAGE_GROUPS:
        assert sum(counts[start : start + persons]) == images
        start += persons
    assert start == 200 and sum(counts) == 3768
