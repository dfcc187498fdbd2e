"""The tasks' samples and records, and shapes the real CLEAR data may take that the mini-CLEAR does not."""

from __future__ import annotations

import math
from pathlib import Path

import datasets
import pytest
from PIL import Image

from eval.tasks import TASKS
from unlearn.data import load_clear
from unlearn.prompts import multiple_choice


def test_extra_columns_are_dropped_and_clears_columns_kept_in_order(tmp_path: Path) -> None:
    folder = tmp_path / "extra"
    (folder / "full").mkdir(parents=True)
    columns = {"__index_level_0__": [7], "name": ["Dorin Valemo"], "caption": ["Dorin Valemo smiles."], "image": [None]}
    datasets.Dataset.from_dict(columns).to_parquet(str(folder / "full" / "data.parquet"))
    (folder / "README.md").write_text(
        "---\nconfigs:\n- config_name: full\n  data_files:\n  - split: train\n    path: full/data.parquet\n---\n"
    )
    assert load_clear("full", str(folder)).column_names == ["image", "caption", "name"]


def _face_row(perturbed: list[str]) -> dict:
    image = Image.new("RGB", (8, 8))
    return {"image": image, "caption": "Dorin Valemo smiles.", "name": "Dorin Valemo", "perturbed_names": perturbed}


def test_face_options_never_hold_the_true_name_twice():
    (sample,) = TASKS["forget_face"].samples([_face_row(["Ana Bel", "Dorin Valemo", "Ana Bel", "Cor Tes"])])
    assert sample.answers == ("Dorin Valemo", "Ana Bel", "Cor Tes")


def test_a_tied_lowest_loss_is_no_prediction_and_counts_as_wrong():
    (sample,) = TASKS["forget_face"].samples([_face_row(["Ana Bel", "Cor Tes"])])
    tied = TASKS["forget_face"].record(sample, [0.5, 0.5, 2.0], "Dorin")
    assert tied["prediction"] is None and tied["correct"] is False
    clear = TASKS["forget_face"].record(sample, [0.4, 0.5, 2.0], "Dorin")
    assert clear["prediction"] == "Dorin Valemo" and clear["correct"] is True


def test_an_option_record_holds_clears_probability_truth_ratio_and_rouge():
    (sample,) = TASKS["forget_face"].samples([_face_row(["Ana Bel", "Cor Tes"])])
    record = TASKS["forget_face"].record(sample, [1.0, 2.0, 4.0], "Dorin Valemo is here")
    # probability e^-1 / (e^-1 + e^-2 + e^-4); truth ratio exp(mean(2, 4) - 1) = e^2; ROUGE-L recall 2/2
    expected = math.exp(-1) / (math.exp(-1) + math.exp(-2) + math.exp(-4))
    assert record["probability"] == pytest.approx(expected)
    assert record["truth_ratio"] == pytest.approx(math.exp(2)) and record["rouge_l"] == 1.0
    assert sample.example.prompt == "The name of the person on the image is ", "CLEAR's fixed face prompt"


def test_real_options_get_the_true_answer_once_and_keep_their_order():
    row = {"image": Image.new("RGB", (8, 8)), "answer": "Ana Bel", "options": ["Cor Tes", "Ana Bel", "Cor Tes", "Ed"]}
    (sample,) = TASKS["real_faces"].samples([row])
    assert sample.answers == ("Ana Bel", "Cor Tes", "Ed")
    assert sample.example.prompt == "The name of the person on the image is "


def test_real_world_prompt_is_the_bare_question_not_the_prompt_column():
    row = {
        "question": "What colour is the object?",
        "answer": "red",
        "image": Image.new("RGB", (8, 8)),
        "prompt": "USER: <image>\nWhat colour is the object? ASSISTANT:",
        "options": ["blue", "red", "green", "yellow"],
    }
    example, options = multiple_choice(row)
    assert example.prompt == "What colour is the object?", "options are scored, never listed in the prompt"
    assert "<image>" not in example.prompt and options == ["red", "blue", "green", "yellow"]
