"""The robustness probes' ``probes.json`` in the report: its tables and PNG plots comparing runs.

The file is read and its tables written by :mod:`unlearn.hub.robustness`, shared with the model card (the library
does not import ``eval``); this module adds the plots, in :mod:`eval.plots`' style. Each plot takes the probes of
several runs (run name -> probes dict) and returns None when no run holds its probe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from eval.plots import _save
from unlearn.hub.robustness import (
    GUIDE,
    LOST_SHARE,
    MODALITIES,
    PROBED,
    RELEARNING_FIGURES,
    SPLITS,
    number,
    read_probes,
    robustness_table,
)

__all__ = ["GUIDE", "plot_leakage", "plot_precision", "plot_relearning", "read_probes", "robustness_table"]


def _value(value: Any) -> float:
    """A number as a float; NaN for null (undefined) or anything else, which matplotlib leaves out."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else np.nan


def _entries(probes_by_run: dict[str, dict[str, Any]], probe: str) -> dict[str, dict[str, Any]]:
    """Run name -> its ``probe`` entry, for the runs that hold that probe."""
    return {name: probes[probe] for name, probes in probes_by_run.items() if isinstance(probes.get(probe), dict)}


def _recovery(points: Any, figure: str) -> tuple[list[float], list[float]]:
    """A relearning curve: the steps and the recovery of ``figure`` at each (NaN where undefined)."""
    points = [point for point in points or [] if isinstance(point, dict)]
    steps = [point.get("steps") for point in points]
    return steps, [_value((point.get("recovery") or {}).get(figure)) for point in points]


def plot_relearning(probes_by_run: dict[str, dict[str, Any]], path: Path) -> Path | None:
    """Recovery against relearning steps, one panel per split (rows) and figure (columns): a solid line per run for
    its adapter and a dashed one, in the same colour, for gold relearning the same data (the floor); the dotted line
    at 1 is vanilla. None when no run holds a relearning probe."""
    runs = _entries(probes_by_run, "relearning")
    splits = [split for split in SPLITS if any(isinstance(probe.get(split), dict) for probe in runs.values())]
    if not splits:
        return None
    figure = Figure(figsize=(4.8 * len(RELEARNING_FIGURES), 3.6 * len(splits)))
    for i, split in enumerate(splits):
        for j, (key, label) in enumerate(RELEARNING_FIGURES.items()):
            axes = figure.add_subplot(len(splits), len(RELEARNING_FIGURES), i * len(RELEARNING_FIGURES) + j + 1)
            for name, probe in runs.items():
                data = probe.get(split)
                if not isinstance(data, dict):
                    continue
                (line,) = axes.plot(*_recovery(data.get("model"), key), marker="o", label=name)
                axes.plot(*_recovery(data.get("gold"), key), ls="--", color=line.get_color(), label=f"{name}: gold")
            axes.axhline(1.0, color="grey", lw=0.8, ls=":")
            axes.set(
                xlabel="relearning steps",
                ylabel=f"recovery of {label[0].lower()}{label[1:]}",
                title=f"{split} split: {label}",
            )
            axes.grid(alpha=0.3)
            axes.legend(fontsize=7)
    return _save(figure, path)


def _face_probability(row: Any, who: str) -> float:
    return _value(((row.get(who) or {}) if isinstance(row, dict) else {}).get("forget_face_probability"))


def plot_precision(probes_by_run: dict[str, dict[str, Any]], path: Path) -> Path | None:
    """Per run, bars of the forget-face probability at each precision for the adapter and vanilla, with the lost
    threshold (``LOST_SHARE`` of vanilla's) over each precision and ``LOST`` under the precisions that crossed it.
    None when no run holds a precision probe."""
    runs = _entries(probes_by_run, "precision")
    if not runs:
        return None
    figure = Figure(figsize=(4.5 * len(runs), 3.8))
    for i, (name, probe) in enumerate(runs.items()):
        axes = figure.add_subplot(1, len(runs), i + 1)
        precisions = [precision for precision, row in probe.items() if isinstance(row, dict)]
        x = np.arange(len(precisions))
        vanilla = np.array([_face_probability(probe[p], "vanilla") for p in precisions])
        axes.bar(x - 0.2, [_face_probability(probe[p], "model") for p in precisions], 0.4, label="adapter")
        axes.bar(x + 0.2, vanilla, 0.4, label="vanilla")
        axes.hlines(
            LOST_SHARE * vanilla,
            x - 0.4,
            x + 0.4,
            colors="red",
            linestyles="--",
            label=f"lost above {LOST_SHARE:g} x vanilla",
        )
        axes.set_xticks(x, [f"{p}\nLOST" if probe[p].get("lost") is True else p for p in precisions])
        axes.set(ylabel="forget-face probability", title=name, ylim=(0, 1.25))
        axes.legend(fontsize=7, ncols=3, loc="upper center")
    return _save(figure, path)


def plot_leakage(probes_by_run: dict[str, dict[str, Any]], path: Path) -> Path | None:
    """Per run, the leakage matrix as a heatmap (rows: modality unlearned, columns: modality probed) of the forgotten
    share, each cell with the share and the adapter's headline figure written in it, ``n/a`` where the share is
    undefined. None when no run holds a cross-modal probe with a row."""
    runs = {
        name: probe
        for name, probe in _entries(probes_by_run, "cross_modal").items()
        if any(modality in (probe.get("rows") or {}) for modality in MODALITIES)
    }
    if not runs:
        return None
    figure = Figure(figsize=(4.2 * len(runs), 3.6))
    colours = colormaps["viridis"].with_extremes(bad="lightgrey")
    undefined = False
    for i, (name, probe) in enumerate(runs.items()):
        matrix, headline = probe["rows"], probe.get("headline") or {}
        modalities = [modality for modality in MODALITIES if modality in matrix]
        axes = figure.add_subplot(1, len(runs), i + 1)
        shares = np.array([[_value((matrix[m].get("forgotten") or {}).get(p)) for p in PROBED] for m in modalities])
        image = axes.imshow(np.ma.masked_invalid(shares), cmap=colours, vmin=0.0, vmax=1.0)
        for (row, column), share in np.ndenumerate(shares):
            raw = number((matrix[modalities[row]].get("figures") or {}).get(headline.get(PROBED[column])))
            text = f"n/a\n({raw})" if np.isnan(share) else f"{number(float(share))}\n({raw})"
            colour = "white" if not np.isnan(share) and share < 0.5 else "black"
            axes.text(column, row, text, ha="center", va="center", fontsize=8, color=colour)
            undefined |= bool(np.isnan(share))
        axes.set_xticks(range(len(PROBED)), PROBED)
        axes.set_yticks(range(len(modalities)), modalities)
        axes.set(xlabel="modality probed", ylabel="modality unlearned", title=name)
        figure.colorbar(image, ax=axes, label="forgotten share (1 = gold, 0 = vanilla)")
    if undefined:
        figure.text(0.01, 0.01, "n/a: vanilla and gold have the same figure, so no share is defined", fontsize=7)
    return _save(figure, path)
