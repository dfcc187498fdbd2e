"""The cross-modal leakage matrix's cells, against hand-computed values."""

from __future__ import annotations

import pytest

from eval.leakage import HEADLINE, forgotten_share, leakage_figures, leakage_row


def test_forgotten_share_is_the_closed_part_of_the_vanilla_to_gold_gap():
    assert forgotten_share(adapter=0.5, vanilla=0.9, gold=0.1) == pytest.approx(0.5)  # 0.4 / 0.8
    assert forgotten_share(adapter=0.9, vanilla=0.9, gold=0.1) == pytest.approx(0.0)
    assert forgotten_share(adapter=0.0, vanilla=0.9, gold=0.1) == pytest.approx(1.125), "below gold: over-forgetting"
    assert forgotten_share(adapter=0.3, vanilla=0.4, gold=0.4) is None
    assert forgotten_share(adapter=0.3, vanilla=0.4, gold=0.4 - 5e-8) is None, "a rounding-sized gap is no gap"


def test_a_row_holds_the_forgotten_share_of_each_probed_modality_headline():
    vanilla = {"forget_face/probability": 1.0, "forget_caption/rouge_l": 0.9, "forget_text/rouge_l": 0.8}
    gold = {"forget_face/probability": 0.2, "forget_caption/rouge_l": 0.3, "forget_text/rouge_l": 0.4}
    figures = {"forget_face/probability": 0.6, "forget_caption/rouge_l": 0.5, "forget_text/rouge_l": 0.8}
    row = leakage_row("adapters/visual", figures, vanilla, gold)
    assert row["adapter"] == "adapters/visual" and row["figures"] == figures
    assert row["forgotten"] == {"visual": pytest.approx(0.5), "text": pytest.approx(0.0)}  # 0.4/0.8; 0/0.4
    assert set(row["forgotten"]) == set(HEADLINE)


def test_leakage_figures_come_from_the_summary_tasks():
    summary = {
        "forget_face": {"probability": 0.1, "accuracy": 0.0},
        "forget_caption": {"rouge_l": 0.2, "probability": 0.3},
        "forget_text": {"rouge_l": 0.4},
    }
    assert leakage_figures(summary) == {
        "forget_face/probability": 0.1,
        "forget_caption/rouge_l": 0.2,
        "forget_text/rouge_l": 0.4,
    }
