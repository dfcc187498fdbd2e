"""PNG plots of evaluation runs (matplotlib's object API on the Agg canvas: no pyplot, no global state)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from eval.logs import truth_ratios
from eval.metrics import distribution_similarity, forget_quality, log_ratios
from eval.runs import Run, task_columns
from unlearn.errors import UsageError
from unlearn.figures import HEADLINE

PLOT_LOG_LIMIT = 20.0  # |log R| beyond this is drawn at the limit


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    FigureCanvasAgg(figure).print_png(str(path))
    return path


def _finite(value: float | None) -> bool:
    return value is not None and bool(np.isfinite(value))


def _error(value: float | None, interval: list[float | None] | None) -> list[list[float]]:
    """Matplotlib's asymmetric error ``[[below], [above]]`` of ``value`` for its interval (zero without one, or
    where the value or a bound is null or not finite)."""
    if interval is None or not _finite(value) or not all(_finite(bound) for bound in interval):
        return [[0.0], [0.0]]
    return [[max(0.0, value - interval[0])], [max(0.0, interval[1] - value)]]


def plot_tradeoff(runs: list[Run], path: Path) -> Path:
    """Forget score (y) against model utility (x), one labelled point per run, with 95% intervals as error bars."""
    figure = Figure(figsize=(5.5, 4.5))
    axes = figure.add_subplot()
    for i, run in enumerate(runs):
        utility, forget = run.summary.get("model_utility"), run.summary.get("forget")
        if not _finite(utility) or not _finite(forget):  # absent, or null for a non-finite figure
            continue
        axes.errorbar(
            utility,
            forget,
            xerr=_error(utility, run.interval("model_utility")),
            yerr=_error(forget, run.interval("forget")),
            fmt="o",
            capsize=3,
        )
        # labels of nearby points are staggered in height so that they stay readable
        axes.annotate(
            run.name,
            (utility, forget),
            textcoords="offset points",
            xytext=(4, 6 + 12 * (i % 3)),
            fontsize=8,
            arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "grey"},
        )
    axes.set(
        xlabel=f"{HEADLINE['model_utility'].label} ({HEADLINE['model_utility'].direction})",
        ylabel=f"{HEADLINE['forget'].label} ({HEADLINE['forget'].direction})",
        title="Forgetting against utility",
        xlim=(0, 1.05),
        ylim=(-0.05, 1.05),
    )
    axes.grid(alpha=0.3)
    return _save(figure, path)


def plot_tasks(runs: list[Run], path: Path) -> Path:
    """Grouped bars: every ``task/figure`` on the x axis, one bar per run, with 95% intervals as error bars."""
    columns = task_columns(runs)
    figure = Figure(figsize=(min(16.0, 3.0 + 0.5 * len(columns) * len(runs) ** 0.5), 4.8))
    axes = figure.add_subplot()
    x = np.arange(len(columns))
    width = 0.8 / max(1, len(runs))
    for i, run in enumerate(runs):
        figures = run.task_figures()
        heights = [np.nan if figures.get(c) is None else figures[c] for c in columns]  # null: no bar
        errors = np.array([_error(h, run.interval(c)) for h, c in zip(heights, columns, strict=True)])
        errors = errors.reshape(len(columns), 2).T
        axes.bar(x + (i - (len(runs) - 1) / 2) * width, heights, width, yerr=errors, capsize=2, label=run.name)
    axes.set_xticks(x, columns, rotation=60, ha="right", fontsize=7)
    axes.set(ylabel="figure", title="Per-task figures", ylim=(0, 1.05))
    axes.legend(fontsize=7)
    return _save(figure, path)


def _gold_pairs(runs: list[Run]) -> list[tuple[Run, np.ndarray, np.ndarray]]:
    pairs = []
    for run in runs:
        gold = (run.summary.get("config") or {}).get("gold")
        if not gold:
            continue
        try:
            pairs.append((run, truth_ratios(run.path), truth_ratios(gold)))
        except UsageError:  # the gold folder (or the run's log) is gone: the report notes the missing plot
            continue
    return pairs


def plot_truth_ratios(runs: list[Run], path: Path, bins: int = 20) -> Path | None:
    """Per run evaluated with a gold model: histograms of its forget-caption log truth ratios and the gold model's on
    shared bins, titled with both forget-quality figures. None when no run has a readable gold evaluation."""
    pairs = _gold_pairs(runs)
    if not pairs:
        return None
    figure = Figure(figsize=(4.5 * len(pairs), 3.8))
    for i, (run, ratios, gold) in enumerate(pairs):
        axes = figure.add_subplot(1, len(pairs), i + 1)
        # equal-width display bins over both samples, clipped at |log R| = PLOT_LOG_LIMIT so that one extreme ratio
        # stays visible at the edge (1-JS itself is computed on gold's quantile bins with overflow bins)
        shown = [np.clip(log_ratios(values), -PLOT_LOG_LIMIT, PLOT_LOG_LIMIT) for values in (gold, ratios)]
        edges = np.histogram_bin_edges(np.concatenate(shown), bins=bins)
        axes.hist(shown[0], bins=edges, alpha=0.5, label=f"gold (n={len(gold)})")
        axes.hist(shown[1], bins=edges, alpha=0.5, label=f"{run.name} (n={len(ratios)})")
        ks, js = forget_quality(ratios, gold), distribution_similarity(ratios, gold, bins)
        axes.set(xlabel="log truth ratio (log R)", ylabel="samples", title=f"{run.name}\nKS p={ks:.3g}, 1-JS={js:.3f}")
        axes.legend(fontsize=7)
    return _save(figure, path)
