"""The robustness tables and plots of probes.json, from probes dicts written by hand after scripts.probe's schema."""

from __future__ import annotations

import copy
import json

import pytest

from eval.probes import LOST
from eval.robustness import plot_leakage, plot_precision, plot_relearning, read_probes, robustness_table
from tests.robustness_probes import PROBES, probes
from unlearn.errors import UsageError
from unlearn.hub.robustness import LOST_SHARE, UNDEFINED

PNG = b"\x89PNG\r\n\x1a\n"
PLOTS = {"relearning": plot_relearning, "precision": plot_precision, "cross_modal": plot_leakage}


def block(table: str, title: str) -> str:
    """The part of the markdown from the bold ``title`` up to the next probe's."""
    return table.split(f"**{title}**")[1].split("\n\n**")[0]


def test_relearning_shows_each_steps_recovery_and_figure_for_model_and_gold_per_split():
    table = robustness_table(probes(precision=None, rephrased=None, cross_modal=None, membership=None))
    image = block(table, "Relearning, image split")
    assert "| Steps | Face probability: model | Face probability: gold | Caption ROUGE-L: model |" in image
    assert "| 0 | 0.000 (0.010) | 0.000 (0.350) | 0.000 (0.100) | 0.000 (0.300) |" in image
    assert "| 20 | 0.927 (0.900) | 0.403 (0.600) | 0.845 (0.700) | 0.392 (0.500) |" in image
    assert (
        "probed on 15 forget_face, 15 forget_caption" in image
        and "images: 30 examples, learning rate 0.0001, batch 4, seed 0;" in image
    )
    assert "adapter in 4bit, gold in full precision" in image
    assert "vanilla: face probability 0.970, caption ROUGE-L 0.810" in image
    assert "probed on 30 forget_face, 30 forget_caption" in block(table, "Relearning, text split")
    assert UNDEFINED not in table


def test_precision_rows_give_both_scores_the_face_probability_and_the_lost_flag():
    table = block(robustness_table(PROBES), "Precision")
    assert "| 4bit | 0.021 | 0.021 | 0.832 | 0.832 | 0.011 | 0.971 | no | 30/30/40/40 |" in table
    assert "| 8bit | 0.021 | 0.021 | 0.832 | 0.832 | 0.600 | 0.980 | LOST | 30/30/40/40 |" in table
    assert "| merged |" in table and "(lost at: 8bit)" in table and "lost_at" not in table


def test_rephrased_rows_compare_model_vanilla_and_gold_per_variant():
    table = block(robustness_table(PROBES), "Rephrased inputs")
    assert "| Variant | Probability: model | Probability: vanilla | Probability: gold | Accuracy: model |" in table
    assert "| original | 0.011 | 0.999 | 0.350 | 0.000 | 0.000 | 0.000 | 30 |" in table
    assert "| grayscale | 0.796 | 0.971 | 0.300 | 0.900 | 0.900 | 0.900 | 30 |" in table
    assert table.count("\n| wording_") == 5 and "adapter and vanilla in 4bit, gold in full precision" in table
    without_gold = {key: value for key, value in PROBES["rephrased"].items() if not key.startswith("gold")}
    table = block(robustness_table({"rephrased": without_gold}), "Rephrased inputs")
    assert "| original | 0.011 | 0.999 | 0.000 | 0.000 | 30 |" in table and "gold" not in table


def test_cross_modal_matrix_has_unlearned_modalities_as_rows_and_probed_ones_as_columns():
    table = block(robustness_table(PROBES), "Cross-modal leakage")
    lines = table.splitlines()
    header = lines.index("| Unlearned \\ probed | visual | text |")
    assert lines[header + 2 :] == [
        "| both | 1.000 (0.350) | 1.000 (0.420) |",
        "| visual | 1.500 (0.040) | 0.158 (0.900) |",
    ]
    assert "vanilla 0.970 visual, 0.990 text; gold 0.350 visual, 0.420 text" in table
    assert "samples: 30 forget_face, 30 forget_caption, 40 forget_text" in table


def test_membership_rows_give_each_attacks_auc_and_the_gap():
    table = block(robustness_table(PROBES), "Membership inference")
    assert "| zlib | 0.980 | 0.470 | 1.000 | -0.020 |" in table and "| min_k | 0.950 | 0.491 | 0.900 | 0.056 |" in table
    assert "model 38/38 in 4bit; vanilla 38/38 in 4bit; gold 38/38 in full precision" in table


def test_null_figures_are_undefined_with_a_footnote_never_a_number():
    changed = probes()
    changed["relearning"]["image"]["model"][2]["recovery"]["face_probability"] = None
    changed["cross_modal"]["rows"]["visual"]["forgotten"]["text"] = None
    changed["membership"]["gap_from_gold"]["zlib"] = None
    table = robustness_table(changed)
    assert "| 5 | undefined (0.500) | 0.081 (0.400) |" in block(table, "Relearning, image split")
    assert "nothing was forgotten to recover" in block(table, "Relearning, image split")
    assert "nothing was forgotten" not in block(table, "Relearning, text split"), "no footnote without a null"
    assert "| visual | 1.500 (0.040) | undefined (0.900) |" in block(table, "Cross-modal leakage")
    assert "vanilla and gold have the same figure" in block(table, "Cross-modal leakage")
    assert "| zlib | 0.980 | 0.470 | 1.000 | undefined |" in block(table, "Membership inference")
    assert not {"None", "nan", "null"} & set(table.replace("|", " ").split())


def test_only_the_probes_present_get_a_table():
    table = robustness_table(probes(relearning=None, precision=None, rephrased=None, cross_modal=None))
    assert table.startswith("**Membership inference**") and table.count("**") == 2
    assert robustness_table({}) == "No robustness probe in probes.json."


def test_read_probes_reads_the_file_is_none_without_it_and_refuses_a_broken_one(tmp_path):
    assert read_probes(tmp_path) is None
    (tmp_path / "probes.json").write_text(json.dumps(PROBES))
    assert read_probes(tmp_path) == PROBES
    for broken, words in (('{"membership": ', "not valid JSON"), ("[1, 2]", "JSON object")):
        (tmp_path / "probes.json").write_text(broken)
        with pytest.raises(UsageError, match=words) as error:
            read_probes(tmp_path)
        assert len(str(error.value).splitlines()) == 1


@pytest.mark.parametrize("probe", sorted(PLOTS))
def test_each_plot_is_written_for_the_runs_with_its_probe_and_none_without(probe, tmp_path):
    with_nulls = probes()
    with_nulls["relearning"]["text"]["gold"][1]["recovery"]["caption_rouge_l"] = None
    with_nulls["cross_modal"]["rows"]["both"]["forgotten"]["visual"] = None
    runs = {"npo": PROBES, "idk": with_nulls, "scrub": probes(**{probe: None})}
    path = PLOTS[probe](runs, tmp_path / "plot.png")
    assert path == tmp_path / "plot.png" and path.read_bytes().startswith(PNG) and path.stat().st_size > 5000
    assert PLOTS[probe]({"scrub": probes(**{probe: None})}, tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()


def test_the_lost_threshold_is_the_precision_probes():
    assert LOST_SHARE == LOST


def test_a_null_figure_with_its_reason_is_undefined_and_the_reason_field_is_no_row():
    """probes.json is written by dumps_strict: a NaN gap is null beside ``<attack>_nonfinite``, which is no attack."""
    membership = copy.deepcopy(PROBES["membership"])
    attack = next(iter(membership["gap_from_gold"]))
    membership["gap_from_gold"] |= {attack: None, f"{attack}_nonfinite": "nan"}
    membership["model"]["auc"] |= {f"{attack}_nonfinite": "nan"}
    table = robustness_table({"membership": membership})
    assert "_nonfinite" not in table and table.count("\n| ") == len(PROBES["membership"]["gap_from_gold"]) + 1
    assert f"| {attack} |" in table and "undefined" in table.split(f"| {attack} |")[1].splitlines()[0]
    precision = copy.deepcopy(PROBES["precision"]) | {"lost_at_nonfinite": "nan"}
    assert robustness_table({"precision": precision}) == robustness_table({"precision": PROBES["precision"]})
