"""``scripts.make_tiny_model``: bad input gives one line and exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "scripts.make_tiny_model", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_missing_data_folder_exits_2_with_one_line(tmp_path):
    result = _run("--data", str(tmp_path / "missing"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: dataset folder not found: {tmp_path / 'missing'}"]


def test_folder_that_is_not_a_mini_clear_exits_2_with_one_line(tmp_path):
    (tmp_path / "notes.txt").write_text("not a dataset")
    result = _run("--data", str(tmp_path), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert not (tmp_path / "out").exists()


def test_unknown_family_exits_2_with_one_line_naming_the_families(tmp_path):
    result = _run("--data", str(tmp_path), "--out", str(tmp_path / "out"), "--family", "gpt9")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: unknown family 'gpt9'; choose from llava, qwen2_vl, qwen2_5_vl"
    ]
    assert not (tmp_path / "out").exists()
