"""The robustness probes' ``probes.json`` (written by ``scripts.probe``) as compact markdown tables.

The model card and the evaluation report (through :mod:`eval.robustness`) both read the file here, so the two show
the same tables and the same explanation of them. Every probe is optional; a null figure (one whose denominator is
0, or a non-finite one, written as null with a ``<key>_nonfinite`` reason) is printed as ``undefined``, never as a
number, with a footnote saying why.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from unlearn.errors import UsageError
from unlearn.figures import is_reason_key

PROBES = "probes.json"
UNDEFINED = "undefined"
MISSING = "-"  # a figure the file does not hold at all
# as eval.probes.LOST: forgetting is lost where the forget-face probability exceeds this share of vanilla's
LOST_SHARE = 0.5
SPLITS = ("image", "text")
PRECISION_TASKS = ("forget_caption", "forget_face", "retain_caption", "retain_face")  # its samples, in this order
RELEARNING_FIGURES = {"face_probability": "Face probability", "caption_rouge_l": "Caption ROUGE-L"}
MODALITIES = ("both", "visual", "text")  # the rows of the leakage matrix, in this order
PROBED = ("visual", "text")  # its columns
GUIDE = (
    "How to read it. **Recovery** (relearning): the share of what unlearning removed that a few fine-tuning steps on "
    "some of the forget persons' data bring back on the rest, (figure after - figure at step 0) / (vanilla's - "
    "figure at step 0): 0 still forgotten, 1 back to the vanilla model. Gold, which never saw these persons, "
    "relearning the same data shows what learning them from scratch gives: an adapter far above gold's curve had "
    "hidden the knowledge rather than removed it. **Lost** (precision): at that precision the adapter's forget-face "
    "probability is back above half of vanilla's, so quantizing or merging undoes the forgetting. **Rephrased**: "
    "the forget-face figures under new wordings and altered images, which should stay as low as on the original. "
    "**Forgotten share** (cross-modal leakage): for the adapter that unlearned the row's modality, (vanilla - "
    "adapter) / (vanilla - gold) of the probed column's figure: 1 forgot as much as gold never knew, 0 nothing. "
    "**Gap from gold** (membership inference): (AUC model - AUC gold) / AUC gold per attack, negative when the "
    "forget examples still look like training data, positive when they look stranger than data never seen. "
    f"`{UNDEFINED}` marks a figure whose denominator is 0 (to rounding). Details: docs/evaluation.md of this project."
)
FOOTNOTES = {
    "relearning": f"{UNDEFINED}: the figure at step 0 is vanilla's (to rounding), so nothing was forgotten to "
    "recover (recovery's denominator is 0).",
    "cross_modal": f"{UNDEFINED}: vanilla and gold have the same figure (to rounding), so there is no gap to "
    "forget (the share's denominator is 0).",
    "membership": f"{UNDEFINED}: gold's AUC is 0 (the gap's denominator).",
}
NULL = f"{UNDEFINED}: the probe recorded no value (null)."


def read_json_object(path: str | Path) -> dict[str, Any] | None:
    """The JSON object in ``path`` (the model card reads its folder's files with it too); None when the file is
    absent; a one-line UsageError when it is not valid JSON or not an object. Lenient as Python's parser is: files of
    older versions may hold ``NaN`` or ``Infinity``, read as floats; this version writes them as null with a reason
    (:func:`unlearn.figures.dumps_strict`)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise UsageError(f"{path} does not hold a JSON object")
    return value


def read_probes(folder: str | Path) -> dict[str, Any] | None:
    """The folder's ``probes.json``; None when it has none; a one-line UsageError when it is not a JSON object."""
    return read_json_object(Path(folder) / PROBES)


def number(value: Any) -> str:
    """Three decimals (small non-zero values in scientific notation); ``undefined`` for null; ``-`` for anything else
    (a figure the file does not hold); ``inf``/``nan`` as such for a non-finite number of an older file."""
    if value is None:
        return UNDEFINED
    if not isinstance(value, int | float) or isinstance(value, bool):
        return MISSING
    if not math.isfinite(value):
        return str(value)
    if value != 0 and abs(value) < 1e-3:
        return f"{value:.2e}"
    return f"{value:.3f}"


def _keys(data: Any) -> list[Any]:
    """The keys of a dict that name entries, not the ``<key>_nonfinite`` reason of a null one (none for a non-dict)."""
    return [key for key in data if not is_reason_key(key)] if isinstance(data, dict) else []


def _at(data: Any, *keys: str | int) -> Any:
    """``data[k1][k2]...``, or ``-`` where a key is absent (null stays None: an undefined figure)."""
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return MISSING
        data = data[key]
    return data


def _precision(value: Any) -> str:
    """A recorded precision; null is full precision."""
    return "full precision" if value is None else str(value)


def _counts(samples: Any) -> str:
    """``15 forget_face, 15 forget_caption``."""
    return ", ".join(f"{count} {task}" for task, count in samples.items()) if isinstance(samples, dict) else MISSING


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _block(title: str, caption: str, header: list[str], rows: list[list[str]], footnote: str = NULL) -> str:
    """``**title**: caption``, the table, and the footnote when a cell is undefined."""
    text = f"**{title}**: {caption}\n\n{_table(header, rows)}"
    return text + f"\n\n{footnote}" if any(UNDEFINED in cell for row in rows for cell in row) else text


def _relearning(probes: dict[str, Any]) -> list[str]:
    """One table per split: the recovery (and figure) of the adapter and of gold after each number of steps."""
    blocks = []
    for split in (s for s in SPLITS if s in probes):
        data = probes[split]
        by_step = {who: {p["steps"]: p for p in data.get(who) or []} for who in ("model", "gold")}
        header = ["Steps", *(f"{label}: {who}" for label in RELEARNING_FIGURES.values() for who in ("model", "gold"))]
        rows = [
            [
                str(step),
                *(
                    f"{number(_at(by_step[who], step, 'recovery', figure))} ({number(_at(by_step[who], step, figure))})"
                    if step in by_step[who]
                    else MISSING
                    for figure in RELEARNING_FIGURES
                    for who in ("model", "gold")
                ),
            ]
            for step in sorted({*by_step["model"], *by_step["gold"]})
        ]
        vanilla = ", ".join(
            f"{label[0].lower()}{label[1:]} {number(_at(data, 'vanilla', key))}"
            for key, label in RELEARNING_FIGURES.items()
        )
        caption = (
            f"relearned on {_at(data, 'relearned_on')}: {_at(data, 'relearn_examples')} examples, learning rate "
            f"{_at(probes, 'learning_rate')}, batch {_at(probes, 'batch_size')}, seed {_at(probes, 'seed')}; "
            f"adapter in {_precision(_at(probes, 'precision'))}, gold in {_precision(_at(probes, 'gold_precision'))}; "
            f"probed on {_counts(data.get('samples'))}. Cells: recovery (figure); vanilla: {vanilla}."
        )
        blocks.append(_block(f"Relearning, {split} split", caption, header, rows, FOOTNOTES["relearning"]))
    return blocks


def _precision_probe(probes: dict[str, Any]) -> list[str]:
    """One row per precision: forget and retain scores and forget-face probability, adapter and vanilla, lost."""
    figures = ("forget", "retain", "forget_face_probability")
    rows = [
        [
            precision,
            *(number(_at(row, who, figure)) for figure in figures for who in ("model", "vanilla")),
            "LOST" if _at(row, "lost") is True else "no",
            "/".join(str(_at(row, "model", "samples", task)) for task in PRECISION_TASKS),
        ]
        for precision, row in probes.items()
        if precision != "lost_at" and not is_reason_key(precision)
    ]
    header = ["Precision", "Forget: model", "Forget: vanilla", "Retain: model", "Retain: vanilla"]
    header += ["Forget-face probability: model", "Forget-face probability: vanilla", "Lost"]
    header += ["Samples (forget caption/face, retain caption/face)"]
    caption = (
        "the adapter and vanilla on a 4-bit and an 8-bit base and merged into the full-precision one; lost where "
        f"the adapter's forget-face probability is back above {LOST_SHARE:g} of vanilla's (lost at: "
        f"{', '.join(probes.get('lost_at') or []) or 'none'})."
    )
    return [_block("Precision", caption, header, rows)]


def _rephrased(probes: dict[str, Any]) -> list[str]:
    """One row per variant (wording or image alteration): forget-face probability and accuracy of the adapter,
    vanilla and (when probed) gold."""
    runs = [who for who in ("model", "vanilla", "gold") if isinstance(probes.get(who), dict)]
    rows = [
        [
            variant,
            *(number(_at(probes, who, variant, key)) for key in ("probability", "accuracy") for who in runs),
            str(_at(probes, "model", variant, "samples")),
        ]
        for variant in _keys(probes.get("model"))
    ]
    header = ["Variant", *(f"{label}: {who}" for label in ("Probability", "Accuracy") for who in runs), "Samples"]
    gold = f", gold in {_precision(_at(probes, 'gold_precision'))}" if "gold" in runs else ""
    caption = (
        "the forget faces asked in other wordings and with altered images; adapter and vanilla in "
        f"{_precision(_at(probes, 'precision'))}{gold}."
    )
    return [_block("Rephrased inputs", caption, header, rows)]


def _cross_modal(probes: dict[str, Any]) -> list[str]:
    """The leakage matrix: rows the modality unlearned, columns the modality probed, cells forgotten share (figure)."""
    headline, matrix = probes.get("headline") or {}, probes.get("rows") or {}
    rows = [
        [
            modality,
            *(
                f"{number(_at(matrix, modality, 'forgotten', probed))} "
                f"({number(_at(matrix, modality, 'figures', headline.get(probed, MISSING)))})"
                for probed in PROBED
            ),
        ]
        for modality in MODALITIES
        if modality in matrix
    ]
    references = "; ".join(
        f"{who} " + ", ".join(f"{number(_at(probes, who, headline.get(m, MISSING)))} {m}" for m in PROBED)
        for who in ("vanilla", "gold")
    )
    probed = ", ".join(f"{m} = {headline.get(m, MISSING)}" for m in PROBED)
    caption = (
        f"rows: the modality the adapter unlearned; columns: the modality probed, by {probed}. Cells: forgotten "
        f"share (the adapter's figure); {references}; adapters and vanilla in {_precision(_at(probes, 'precision'))}, "
        f"gold in {_precision(_at(probes, 'gold_precision'))}; samples: {_counts(probes.get('samples'))}."
    )
    return [_block("Cross-modal leakage", caption, ["Unlearned \\ probed", *PROBED], rows, FOOTNOTES["cross_modal"])]


def _membership(probes: dict[str, Any]) -> list[str]:
    """One row per attack: the AUC of the adapter, vanilla and gold, and the gap from gold."""
    runs = ("model", "vanilla", "gold")
    attacks = dict.fromkeys([*_keys((probes.get("model") or {}).get("auc")), *_keys(probes.get("gap_from_gold"))])
    rows = [
        [
            attack,
            *(number(_at(probes, who, "auc", attack)) for who in runs),
            number(_at(probes, "gap_from_gold", attack)),
        ]
        for attack in attacks
    ]
    counts = "; ".join(
        f"{who} {_at(probes, who, 'samples', 'forget')}/{_at(probes, who, 'samples', 'retain')} in "
        f"{_precision(_at(probes, who, 'precision'))}"
        for who in runs
    )
    caption = (
        f"AUC of telling retain (members) from forget examples, k {_at(probes, 'model', 'k')}; samples "
        f"(forget/retain): {counts}."
    )
    header = ["Attack", "AUC: model", "AUC: vanilla", "AUC: gold", "Gap from gold"]
    return [_block("Membership inference", caption, header, rows, FOOTNOTES["membership"])]


TABLES: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "relearning": _relearning,
    "precision": _precision_probe,
    "rephrased": _rephrased,
    "cross_modal": _cross_modal,
    "membership": _membership,
}


def robustness_table(probes: dict[str, Any]) -> str:
    """Markdown: a short table per probe in ``probes`` (relearning per split, precision, rephrased inputs, cross-modal
    leakage, membership inference), each with its sample counts; a line saying so when it holds none of them."""
    blocks = [block for name, table in TABLES.items() if name in probes for block in table(probes[name])]
    return "\n\n".join(blocks) if blocks else f"No robustness probe in {PROBES}."
