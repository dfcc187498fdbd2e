"""Compare evaluation runs: a markdown table of the headline figures, per-task figures, a CSV and plots."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from eval.plots import plot_tasks, plot_tradeoff, plot_truth_ratios
from eval.robustness import GUIDE, plot_leakage, plot_precision, plot_relearning, read_probes, robustness_table
from eval.runs import Run, load_runs, run_from_summary, task_columns
from unlearn.figures import FIGURES

__all__ = [
    "MAIN_COLUMNS",
    "Run",
    "figure_table",
    "load_runs",
    "results_table",
    "run_from_summary",
    "task_table",
    "write_report",
]

# (column title, summary key): the headline figures, in their table's order
MAIN_COLUMNS = tuple((figure.label, figure.key) for figure in FIGURES)


def format_value(value: float | None, reason: str | None = None) -> str:
    """Three decimals; small non-zero values (p-values) in scientific notation; ``-`` when missing; ``n/a (inf)``
    for a figure written as null with its reason (``inf``, ``-inf``, ``nan``: :meth:`Run.reason`), and
    ``n/a (nan)`` for a non-finite float of an older file."""
    if value is None:
        return f"n/a ({reason})" if reason else "-"
    if not math.isfinite(value):
        return f"n/a ({value})"
    if value != 0 and abs(value) < 1e-3:
        return f"{value:.2e}"
    return f"{value:.3f}"


def format_interval(value: float | None, interval: list[float | None] | None, reason: str | None = None) -> str:
    """``value [low, high]`` (the 95% interval; a null bound is ``-``), or the value alone without one or without
    a value."""
    if interval is None or value is None:
        return format_value(value, reason)
    return f"{format_value(value)} [{format_value(interval[0])}, {format_value(interval[1])}]"


def _cell(run: Run, key: str, value: float | None) -> str:
    """A table cell: the figure ``key`` (headline or ``task/figure``) of ``run`` with its interval or its reason."""
    return format_interval(value, run.interval(key), run.reason(key))


def run_label(run: Run, runs: list[Run]) -> str:
    """The run's name, with its precision when the runs were not all evaluated in one precision."""
    return f"{run.name} ({run.precision})" if len({r.precision for r in runs}) > 1 else run.name


def _samples(run: Run) -> str:
    counts = run.summary.get("forget_quality_samples") or {}
    return f"{counts['model']}/{counts['gold']}" if {"model", "gold"} <= set(counts) else "-"


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def results_table(runs: list[Run]) -> str:
    """Markdown: one row per run with the headline figures and their 95% intervals, and the forget-caption sample
    counts (model/gold) behind forget quality; runs of mixed precisions carry theirs in the name."""
    rows = [
        [
            run_label(run, runs),
            *(_cell(run, key, run.summary.get(key)) for _, key in MAIN_COLUMNS),
            _samples(run),
        ]
        for run in runs
    ]
    return _markdown(["Run", *(title for title, _ in MAIN_COLUMNS), "Forget quality samples (model/gold)"], rows)


def figure_table(runs: list[Run], columns: list[tuple[str, str]]) -> str:
    """Markdown: one row per run, one column per ``(title, "task/figure")`` in ``columns``, with intervals."""
    rows = [
        [run_label(run, runs), *(_cell(run, key, run.task_figures().get(key)) for _, key in columns)] for run in runs
    ]
    return _markdown(["Run", *(title for title, _ in columns)], rows)


def task_table(runs: list[Run]) -> str:
    """Markdown: one row per task figure (``task``, ``figure``), one column per run, with intervals; the samples
    of each task in its own row."""
    rows = []
    for column in task_columns(runs):
        task, figure = column.split("/")
        if (not rows or rows[-1][0] != task) and any("samples" in (run.summary.get(task) or {}) for run in runs):
            counts = [str((run.summary.get(task) or {}).get("samples", "-")) for run in runs]
            rows.append([task, "samples", *counts])
        rows.append([task, figure, *(_cell(run, column, run.task_figures().get(column)) for run in runs)])
    return _markdown(["Task", "Figure", *(run_label(run, runs) for run in runs)], rows)


def write_csv(runs: list[Run], path: Path) -> Path:
    """``results.csv``: run, path, precision, then each headline and per-task figure with its interval's bounds."""
    columns = [key for _, key in MAIN_COLUMNS] + task_columns(runs)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["run", "path", "precision", *(f"{c}{s}" for c in columns for s in ("", "_ci_low", "_ci_high"))]
        )
        for run in runs:
            values = {**{key: run.summary.get(key) for _, key in MAIN_COLUMNS}, **run.task_figures()}
            cells = []
            for column in columns:
                interval = run.interval(column) or ["", ""]
                cells += ["" if values.get(column) is None else values[column], *interval]
            writer.writerow([run.name, str(run.path), run.precision, *cells])
    return path


def _robustness_section(runs: list[Run], out: Path) -> tuple[list[str], list[Path]]:
    """The ``## Robustness`` lines of results.md for the runs whose folder holds a ``probes.json`` (a table per run,
    the plots across runs), and the plots written into ``out``; nothing when no run has one."""
    probes = {run.name: found for run in runs if (found := read_probes(run.path)) is not None}
    if not probes:
        return [], []
    plots = [
        plot_relearning(probes, out / "relearning_curves.png"),
        plot_precision(probes, out / "precision.png"),
        plot_leakage(probes, out / "leakage.png"),
    ]
    plots = [plot for plot in plots if plot is not None]
    lines = ["## Robustness", "", "From each run's `probes.json` (`python -m scripts.probe`).", "", GUIDE, ""]
    for name, found in probes.items():
        lines += [f"### {name}", "", robustness_table(found), ""]
    if plots:
        lines += [*(f"![{p.stem}]({p.name})" for p in plots), ""]
    return lines, plots


def write_report(runs: list[Run], out: str | Path) -> list[Path]:
    """Write ``results.md``, ``results.csv`` and the PNG plots into ``out``, with a robustness section for the runs
    that hold a ``probes.json``; return the files written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plots = [plot_tradeoff(runs, out / "forget_vs_utility.png"), plot_tasks(runs, out / "tasks.png")]
    truth = plot_truth_ratios(runs, out / "truth_ratios.png")
    plots += [truth] if truth else []
    lines = [
        "# CLEAR evaluation results",
        "",
        *(f"- **{figure.label}**: {figure.described()}." for figure in FIGURES),
        "",
        "Brackets: 95% bootstrap intervals over the samples (docs/evaluation.md). A run evaluated in another",
        "precision than the others carries its precision in its name.",
        "",
        results_table(runs),
        "",
        "## Per-task figures",
        "",
        task_table(runs),
        "",
        "## Plots",
        "",
        *(f"![{p.stem}]({p.name})" for p in plots),
        "",
    ]
    if truth is None:
        lines += ["No truth-ratio histograms: no run was evaluated with `--gold` (or its gold folder is gone).", ""]
    robustness, robustness_plots = _robustness_section(runs, out)
    md = out / "results.md"
    md.write_text("\n".join(lines + robustness), encoding="utf-8")
    return [md, write_csv(runs, out / "results.csv"), *plots, *robustness_plots]
