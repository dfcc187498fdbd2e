"""The evaluations behind the models an app serves: which ``summary.json`` belong to them, as report rows and plot.

The rows are each served adapter's evaluation, then references at the adapters' precision: the gold model the
first adapter was compared with (``config.gold`` of its summary) and the original model's evaluation in the precision
it is served in (its folder, or its sibling ``<folder>-<precision>`` as the quickstart names its 4-bit runs).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from eval.logs import SUMMARY, read_summary
from eval.plots import plot_tradeoff
from eval.runs import Run, load_runs
from unlearn.errors import UsageError
from unlearn.figures import HEADLINE
from unlearn.hub.resolve import resolve

_GENERIC_FOLDERS = ("adapter", "model")


def evaluation_folder(source: str) -> Path | None:
    """The folder holding ``source``'s summary.json (the model folder, or its parent for ``.../adapter``)."""
    try:
        folder = Path(resolve(source))
    except UsageError:
        return None
    for candidate in (folder, folder.parent) if folder.name in _GENERIC_FOLDERS else (folder,):
        if (candidate / SUMMARY).is_file():
            return candidate
    return None


def _precision(folder: Path) -> str:
    return (read_summary(folder).get("config") or {}).get("quantization") or "full"


def original_folder(base: str, quantization: str | None) -> Path | None:
    """The original model's evaluation in the precision it is served in (``none``/None: full), if there is one."""
    folder = evaluation_folder(base)
    if folder is None:
        return None
    precision = quantization if quantization not in (None, "none") else "full"
    for candidate in (folder, folder.with_name(f"{folder.name}-{precision}")):
        if (candidate / SUMMARY).is_file() and _precision(candidate) == precision:
            return candidate
    return None


def original_figures(base: str, quantization: str | None) -> dict[str, float] | None:
    """The headline figures (HEADLINE's order, finite numbers only) of the original's evaluation at the served
    precision (:func:`original_folder`), for its column's title; None without one."""
    folder = original_folder(base, quantization)
    if folder is None:
        return None
    summary = read_summary(folder)
    return {key: float(summary[key]) for key in HEADLINE if isinstance(summary.get(key), int | float)}


def served_runs(base: str, adapters: Sequence[str], quantization: str | None) -> list[Run]:
    """The runs to show: each adapter's evaluation, the gold its first evaluation names and the original's."""
    folders = [folder for folder in map(evaluation_folder, adapters) if folder is not None]
    if folders:
        gold = (read_summary(folders[0]).get("config") or {}).get("gold")
        if isinstance(gold, str) and (Path(gold) / SUMMARY).is_file():
            folders.append(Path(gold))
    original = original_folder(base, quantization)
    folders += [original] if original is not None else []
    unique = list(dict.fromkeys(folder.resolve() for folder in folders))
    return load_runs(unique) if unique else []


def served_plot(runs: list[Run], path: Path) -> Path | None:
    """The forget-against-utility plot of ``runs`` at ``path``; None when no run has both figures."""
    if not any(run.summary.get("forget") is not None and run.summary.get("model_utility") is not None for run in runs):
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    return plot_tradeoff(runs, path)
