"""Compare evaluation runs: a markdown table of the headline figures, per-task figures, a CSV and plots."""

from __future__ import annotations

import csv
from pathlib import Path

from eval.plots import plot_tasks, plot_tradeoff, plot_truth_ratios
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


def format_value(value: float | None) -> str:
    """Three decimals; small non-zero values (p-values) in scientific notation; ``-`` when missing."""
    if value is None:
        return "-"
    if value != 0 and abs(value) < 1e-3:
        return f"{value:.2e}"
    return f"{value:.3f}"


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def results_table(runs: list[Run]) -> str:
    """Markdown: one row per run with Real, Retain, Forget, forget quality (KS p-value, 1-JS) and model utility."""
    rows = [[run.name, *(format_value(run.summary.get(key)) for _, key in MAIN_COLUMNS)] for run in runs]
    return _markdown(["Run", *(title for title, _ in MAIN_COLUMNS)], rows)


def figure_table(runs: list[Run], columns: list[tuple[str, str]]) -> str:
    """Markdown: one row per run, one column per ``(title, "task/figure")`` in ``columns``."""
    rows = [[run.name, *(format_value(run.task_figures().get(key)) for _, key in columns)] for run in runs]
    return _markdown(["Run", *(title for title, _ in columns)], rows)


def task_table(runs: list[Run]) -> str:
    """Markdown: one row per task figure (``task``, ``figure``), one column per run."""
    figures = [run.task_figures() for run in runs]
    rows = [[*column.split("/"), *(format_value(f.get(column)) for f in figures)] for column in task_columns(runs)]
    return _markdown(["Task", "Figure", *(run.name for run in runs)], rows)


def write_csv(runs: list[Run], path: Path) -> Path:
    """``results.csv``: run, the main columns and every per-task figure (full precision)."""
    columns = [key for _, key in MAIN_COLUMNS] + task_columns(runs)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["run", "path", *columns])
        for run in runs:
            values = {**{key: run.summary.get(key) for _, key in MAIN_COLUMNS}, **run.task_figures()}
            writer.writerow([run.name, str(run.path), *("" if values.get(c) is None else values[c] for c in columns)])
    return path


def write_report(runs: list[Run], out: str | Path) -> list[Path]:
    """Write ``results.md``, ``results.csv`` and the PNG plots into ``out``; return the files written."""
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
    md = out / "results.md"
    md.write_text("\n".join(lines), encoding="utf-8")
    return [md, write_csv(runs, out / "results.csv"), *plots]
