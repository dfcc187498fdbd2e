"""scripts.bench_data on the session mini-CLEAR: both modes measured in fresh processes, on the same samples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts.bench_data import decoded, main
from unlearn.data import split_examples
from unlearn.errors import UsageError
from unlearn.prompts import RowImage


def test_eager_and_lazy_epochs_are_measured_on_the_same_batches(mini_clear, tiny_model, tmp_path, capsys):
    out = tmp_path / "figures.json"
    args = ["--data", mini_clear, "--processor", tiny_model, "--steps", "epoch", "--batch-size", "4", "--out", str(out)]
    assert main(args) == 0
    results = json.loads(out.read_text())
    assert [(r["step"], r["mode"]) for r in results] == [("epoch", "eager"), ("epoch", "lazy")]
    assert results[0]["samples"] == results[1]["samples"] > 0 and results[0]["unit"] == "batches of 4"
    assert all(r["peak_rss"] >= r["peak_anon"] > 0 for r in results)
    printed = capsys.readouterr().out
    assert "VmHWM" in printed and "epoch: eager/lazy peak RSS" in printed


def test_eager_mode_decodes_every_image_up_front(mini_clear):
    lazy = split_examples(mini_clear, "forget10")
    eager = decoded(lazy)
    assert any(isinstance(e.image, RowImage) for e in lazy)
    assert [e.image is None for e in eager] == [e.image is None for e in lazy]
    assert not any(isinstance(e.image, RowImage) for e in eager)


@pytest.mark.parametrize("bad", [["--modes", "lazzy"], ["--steps", "train"], ["--batch-size", "0"]])
def test_bad_options_are_usage_errors(bad: list[str], tmp_path: Path):
    with pytest.raises(UsageError):
        main(["--data", str(tmp_path), *bad])
