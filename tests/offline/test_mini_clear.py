"""The offline mini-CLEAR generator, its script, and load_clear's schema checks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
from PIL import Image

from scripts.make_mini_clear import main
from unlearn.data import CLEAR_CONFIGS, FORGET_SPLITS, RETAIN_OF, load_clear
from unlearn.errors import UsageError
from unlearn.offline.mini_clear import invent_looks, split_persons, write_mini_clear

REPO = Path(__file__).resolve().parents[2]
LIST_COLUMNS = {"perturbed_captions", "perturbed_names", "options"}
SPLITS = ("full", *FORGET_SPLITS, *RETAIN_OF.values())


@pytest.fixture(scope="module")
def clear(mini_clear: str):
    """load_clear on the session mini-CLEAR, each config loaded once."""
    loaded: dict[str, datasets.Dataset] = {}

    def load(config: str) -> datasets.Dataset:
        if config not in loaded:
            loaded[config] = load_clear(config, mini_clear)
        return loaded[config]

    return load


@pytest.fixture(scope="module")
def shape(clear) -> dict[str, int]:
    """persons, images_per_person and questions_per_person of the session mini-CLEAR, read back from its rows."""
    persons = len(names_of(clear, "full"))
    images, extra = divmod(len(clear("full")), persons)
    questions, extra_text = divmod(len(clear("full+tofu")) - len(clear("full")), persons)
    assert persons >= 2 and extra == extra_text == 0
    return {"persons": persons, "images_per_person": images, "questions_per_person": questions}


def names_of(clear, config: str) -> set[str]:
    return set(clear(config)["name"])


# ------------------------------------------------------------------------------------------ the dataset


@pytest.mark.parametrize("config", list(CLEAR_CONFIGS))
def test_every_config_loads_with_its_columns(clear, config: str) -> None:
    ds = clear(config)
    assert ds.column_names == list(CLEAR_CONFIGS[config])
    assert len(ds) > 0
    for row in ds:
        assert row["image"] is None or isinstance(row["image"], Image.Image)
        if row["image"] is not None:
            assert row["image"].size == (64, 64) and row["image"].mode == "RGB"
        for column in LIST_COLUMNS & set(ds.column_names):
            assert isinstance(row[column], list) and all(isinstance(v, str) and v for v in row[column])


def test_splits_are_by_person_nested_and_complementary(clear, shape: dict[str, int]) -> None:
    everyone = names_of(clear, "full")
    assert names_of(clear, "default") == everyone
    sizes = split_persons(shape["persons"])
    forgets = [names_of(clear, split) for split in FORGET_SPLITS]
    assert forgets[0] <= forgets[1] <= forgets[2]
    for split, forget in zip(FORGET_SPLITS, forgets, strict=True):
        retain = names_of(clear, RETAIN_OF[split])
        assert len(forget) == sizes[split] >= 1
        assert not forget & retain and forget | retain == everyone
        assert names_of(clear, f"{split}_perturbed") == forget
        assert len(clear(split)) == len(forget) * shape["images_per_person"]
    assert names_of(clear, "retain_perturbed") == names_of(clear, "retain90")


@pytest.mark.parametrize("split", SPLITS)
def test_tofu_rows_are_the_splits_images_then_its_persons_facts(clear, shape: dict[str, int], split: str) -> None:
    persons, everyone = names_of(clear, split), names_of(clear, "full")
    ds = clear(f"{split}+tofu")
    images = len(persons) * shape["images_per_person"]
    assert len(ds) == images + len(persons) * shape["questions_per_person"]
    for i, row in enumerate(ds):
        is_image_row = i < images
        assert (row["image"] is not None) == is_image_row
        assert (row["caption"] is not None) == is_image_row
        assert (row["question"] is None and row["answer"] is None) == is_image_row
        text = row["caption"] if is_image_row else row["question"] + " " + row["answer"]
        named = {name for name in everyone if name in text}
        assert len(named) == 1 and named <= persons, text
    assert sorted(ds.select(range(images))["caption"]) == sorted(clear(split)["caption"])


def test_perturbed_names_and_captions(clear) -> None:
    people = names_of(clear, "full") | set(clear("real_faces")["answer"])
    person_words = {word for name in people for word in name.split()}
    for config in (*(f"{s}_perturbed" for s in FORGET_SPLITS), "retain_perturbed"):
        for row in clear(config):
            decoys = row["perturbed_names"]
            assert len(decoys) == 3 == len(set(decoys))
            assert not set(decoys) & people
            assert not {word for name in decoys for word in name.split()} & person_words
            assert len(row["perturbed_captions"]) == 3 == len(set(row["perturbed_captions"]))
            for wrong in row["perturbed_captions"]:
                assert wrong != row["caption"] and row["name"] in wrong
            assert row["paraphrased_caption"] != row["caption"] and row["name"] in row["paraphrased_caption"]


def test_perturbed_names_are_drawn_per_image_not_per_person(clear) -> None:
    rows = clear("retain_perturbed")
    by_person: dict[str, set[tuple[str, ...]]] = {}
    for row in rows:
        by_person.setdefault(row["name"], set()).add(tuple(row["perturbed_names"]))
    assert all(len(decoys) > 1 for decoys in by_person.values()), "each person's images have other decoys"


def test_real_faces_are_other_people_with_wrong_options_only(clear) -> None:
    ds = clear("real_faces")
    celebrities = set(ds["answer"])
    assert len(celebrities) >= 4 and not celebrities & names_of(clear, "full")
    for row in ds:
        assert len(row["options"]) == 3 == len(set(row["options"])) and set(row["options"]) <= celebrities
        assert row["answer"] not in row["options"], "like the published CLEAR: options are the wrong answers"


def test_real_world_options_are_wrong_answers_and_the_prompt_lists_all_four(clear) -> None:
    positions = set()
    for row in clear("real_world"):
        assert row["answer"] not in row["options"] and len(set(row["options"])) == 3
        shown = row["prompt"].removeprefix(f"{row['question']} Options: ").removesuffix(".").split(", ")
        assert sorted(shown) == sorted([row["answer"], *row["options"]])
        positions.add(shown.index(row["answer"]))
    assert len(positions) > 1  # the answer is not always listed first


def test_images_vary_within_a_person(clear, shape: dict[str, int]) -> None:
    rows = clear("full").select(range(shape["images_per_person"]))
    assert len({row["image"].tobytes() for row in rows}) == len(rows)


def test_looks_differ_in_at_least_three_attributes() -> None:
    import random

    looks = invent_looks(random.Random(0), 40)
    assert all(a.differences(b) >= 3 for i, a in enumerate(looks) for b in looks[:i])


# ------------------------------------------------------------------------------------ determinism, sizes


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_files_and_another_seed_other_persons(tmp_path: Path) -> None:
    small = {"persons": 4, "images_per_person": 2, "questions_per_person": 2}
    first = _files(write_mini_clear(tmp_path / "a", seed=3, **small))
    assert len(first) == len(CLEAR_CONFIGS) + 1
    assert first == _files(write_mini_clear(tmp_path / "b", seed=3, **small))
    other = write_mini_clear(tmp_path / "c", seed=4, **small)
    names = [
        set(pq.read_table(folder / "full/train-00000-of-00001.parquet")["name"].to_pylist())
        for folder in (tmp_path / "a", other)
    ]
    assert not names[0] & names[1]


def test_regenerating_a_folder_with_another_seed_loads_the_new_rows(tmp_path: Path) -> None:
    """datasets caches a local folder by its README's YAML; the card's digests keep that cache honest."""
    small = {"persons": 2, "images_per_person": 1, "questions_per_person": 1}
    write_mini_clear(tmp_path / "clear", seed=0, **small)
    before = set(load_clear("forget10", str(tmp_path / "clear"))["name"])
    write_mini_clear(tmp_path / "clear", seed=1, **small)
    after = set(load_clear("forget10", str(tmp_path / "clear"))["name"])
    assert before and after and not before & after


def test_split_persons() -> None:
    assert split_persons(20) == {
        "forget01": 1,
        "retain99": 19,
        "forget05": 1,
        "retain95": 19,
        "forget10": 2,
        "retain90": 18,
    }
    sizes = split_persons(200)
    assert (sizes["forget01"], sizes["forget05"], sizes["forget10"]) == (2, 10, 20)
    assert split_persons(2)["forget10"] == split_persons(2)["retain90"] == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"persons": 1},
        {"images_per_person": 0},
        {"questions_per_person": 0},
        {"questions_per_person": 99},
        {"persons": 10_000},
        {"image_size": 8},
        {"image_size": 10_000},
    ],
)
def test_bad_arguments_raise_usage_error(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(UsageError):
        write_mini_clear(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_image_size_sets_every_image_and_changes_no_other_row(tmp_path: Path) -> None:
    small = write_mini_clear(tmp_path / "small", persons=3, images_per_person=2, questions_per_person=20)
    large = write_mini_clear(tmp_path / "large", persons=3, images_per_person=2, questions_per_person=20, image_size=96)
    for config in ("full", "real_faces", "real_world"):
        small_rows, large_rows = load_clear(config, str(small)), load_clear(config, str(large))
        assert {row["image"].size for row in small_rows} == {(64, 64)}
        assert {row["image"].size for row in large_rows} == {(96, 96)}
        assert small_rows.remove_columns("image").to_list() == large_rows.remove_columns("image").to_list()
    facts = load_clear("full+tofu", str(large)).filter(lambda row: row["image"] is None)
    assert len(facts) == 3 * 20 and len(set(facts["question"])) == 3 * 20, "20 distinct questions per person"
    assert "--image-size 96" in (large / "README.md").read_text()
    assert "--image-size" not in (small / "README.md").read_text(), "the default card is unchanged"


# -------------------------------------------------------------------------------------------- the script


def test_script_writes_and_summarises(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path / "c"), "--persons", "3", "--images-per-person", "1"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "c") in out and "3 persons" in out
    assert (tmp_path / "c" / "README.md").is_file()


@pytest.mark.parametrize("bad", ["persons", "file"])
def test_script_bad_input_prints_one_error_line_and_exits_2(tmp_path: Path, bad: str) -> None:
    target = tmp_path / "a_file"
    target.write_text("not a folder")
    args = ["--out", str(tmp_path / "c"), "--persons", "1"] if bad == "persons" else ["--out", str(target)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "scripts.make_mini_clear", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr


# ------------------------------------------------------------------------------------------- load_clear


def test_load_clear_unknown_config_lists_the_valid_ones(mini_clear: str) -> None:
    with pytest.raises(UsageError, match="valid configs") as err:
        load_clear("forget20", mini_clear)
    assert all(config in str(err.value) for config in CLEAR_CONFIGS)


def test_load_clear_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not found"):
        load_clear("full", str(tmp_path / "nowhere"))


def test_load_clear_wrong_columns(tmp_path: Path) -> None:
    folder = tmp_path / "wrong"
    (folder / "full").mkdir(parents=True)
    datasets.Dataset.from_dict({"image": [None], "text": ["hello"]}).to_parquet(str(folder / "full" / "data.parquet"))
    (folder / "README.md").write_text(
        "---\nconfigs:\n- config_name: full\n  data_files:\n  - split: train\n    path: full/data.parquet\n---\n"
    )
    with pytest.raises(UsageError, match="missing columns") as err:
        load_clear("full", str(folder))
    assert "\n" not in str(err.value)
