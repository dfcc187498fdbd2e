"""Describe a checkpoint folder (adapter or full model) and write its Hugging Face model card.

A folder made by this project holds its weights, a ``run_config.json`` (how it was made), once evaluated a
``summary.json``, and once probed a ``probes.json`` (:mod:`unlearn.hub.robustness`). Both the card and
:func:`describe_adapter` (used by the app) read them through :func:`read_checkpoint`, so the Hub page and the app
show the same names and figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData, metadata_load
from transformers import TrainingArguments

from unlearn.data import CLEAR_SOURCE, RETAIN_OF
from unlearn.errors import UsageError
from unlearn.figures import HEADLINE, NONFINITE, NONFINITE_VALUES, dumps_strict, is_task_figure
from unlearn.hub.resolve import REPO_ID, check_weights, hub_id, resolve, split_revision
from unlearn.hub.robustness import GUIDE, read_json_object, read_probes, robustness_table

TEMPLATE = Path(__file__).with_name("card_template.md")
# Entries of summary.json that describe the evaluation rather than a task.
SUMMARY_RECORDS = ("config", "data_fingerprint", "forget_quality_samples")
FORGET_SHARE = {"forget01": "1%", "forget05": "5%", "forget10": "10%"}
FORGET_OF = {retain: forget for forget, retain in RETAIN_OF.items()}
TRAINING_ARGUMENTS = {argument.name for argument in fields(TrainingArguments)}
MAIN_TRAINING_ARGUMENTS = {
    "learning_rate",
    "num_train_epochs",
    "max_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "seed",
}
UNKNOWN = "unknown"  # the card's license or architecture when neither the checkpoint nor a local base says


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; {} when the file is absent; a UsageError when it is not a JSON object
    (:func:`unlearn.hub.robustness.read_json_object`, which reads ``probes.json``)."""
    found = read_json_object(path)
    return {} if found is None else found


def _finite(value: Any) -> bool:
    """A finite number (not a bool): what a figure's value in the card and its metadata may be."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _text(value: Any) -> str | None:
    """``value`` if it is a non-empty string, else None."""
    return value if isinstance(value, str) and value else None


@dataclass
class Checkpoint:
    """A folder to publish: a PEFT adapter or a full model, with its run configuration, evaluation summary and, when
    the folder holds a ``probes.json``, its robustness probes (``probes``; None without the file).

    ``kind`` is ``adapter``; for full models ``vanilla`` (trained on ``full``), ``gold`` (trained on a retain split
    only), ``fine-tuned`` (another split) or ``model`` (no run configuration, e.g. a base checkpoint).
    """

    path: Path
    kind: str
    run_config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    adapter_config: dict[str, Any] = field(default_factory=dict)
    summary_path: Path | None = None
    probes: dict[str, Any] | None = None

    @property
    def method(self) -> str | None:
        """The unlearning method (adapters only)."""
        return _text(self.run_config.get("method"))

    @property
    def trained_split(self) -> str | None:
        """The CLEAR split a full model was fine-tuned on (``full+tofu``, ``retain90+tofu``...)."""
        return _text(self.run_config.get("split"))

    @property
    def forget(self) -> str | None:
        """The forget split: run_config's, else the evaluated one in summary.json, else the one a gold model lacks.

        summary.json's top-level ``forget`` is normally the forget score (a number); the split is ``forget_split``
        (or ``config.forget``); a string under ``forget`` is taken as a split too.
        """
        config = self.summary.get("config")
        candidates = [self.run_config.get("forget"), self.summary.get("forget_split")]
        candidates += [config.get("forget") if isinstance(config, dict) else None, self.summary.get("forget")]
        if self.kind == "gold" and self.trained_split:
            candidates.append(FORGET_OF.get(self.trained_split.split("+")[0]))
        return next((c for c in map(_text, candidates) if c), None)

    @property
    def retain(self) -> str | None:
        """The retain split: from run_config, else the complement of the forget split."""
        return _text(self.run_config.get("retain")) or RETAIN_OF.get(self.forget or "")

    @property
    def figures(self) -> dict[str, float]:
        """The headline figures present in summary.json (see HEADLINE), in HEADLINE's order: finite numbers only
        (a null figure is in :attr:`nonfinite_figures`)."""
        return {key: float(self.summary[key]) for key in HEADLINE if _finite(self.summary.get(key))}

    @property
    def nonfinite_figures(self) -> dict[str, str]:
        """The headline figures summary.json holds as null beside a ``<key>_nonfinite`` reason (``inf``, ``-inf``,
        ``nan``), or as such a float (older files): key -> reason."""
        found = {}
        for key in HEADLINE:
            value, reason = self.summary.get(key), self.summary.get(f"{key}{NONFINITE}")
            if value is None and reason in NONFINITE_VALUES:
                found[key] = reason
            elif isinstance(value, float) and not math.isfinite(value):
                found[key] = str(value)
        return found

    @property
    def task_figures(self) -> dict[str, dict[str, float]]:
        """Per-task figures of summary.json (``forget_face`` -> {``accuracy``: ..}): finite numbers, without
        intervals and sample counts (a null figure is left out: the card's table shows ``–``,
        :attr:`nonfinite_task_figures`)."""
        tasks = {}
        for task, metrics in self._task_entries().items():
            numbers = {k: float(v) for k, v in metrics.items() if is_task_figure(k, v) and _finite(v)}
            if numbers:
                tasks[task] = numbers
        return tasks

    @property
    def nonfinite_task_figures(self) -> dict[str, dict[str, str]]:
        """Per-task figures held as null beside a ``<figure>_nonfinite`` reason: task -> figure -> reason."""
        tasks: dict[str, dict[str, str]] = {}
        for task, metrics in self._task_entries().items():
            for key, value in metrics.items():
                reason = metrics.get(f"{key}{NONFINITE}")
                if value is None and reason in NONFINITE_VALUES:
                    tasks.setdefault(task, {})[key] = reason
        return tasks

    @property
    def task_samples(self) -> dict[str, int]:
        """The number of samples each task was evaluated on (from summary.json)."""
        return {
            task: int(m["samples"]) for task, m in self._task_entries().items() if isinstance(m.get("samples"), int)
        }

    def interval(self, key: str) -> list[float] | None:
        """The 95% interval of a headline figure, when summary.json has one."""
        interval = self.summary.get(f"{key}_ci")
        return interval if isinstance(interval, list) and len(interval) == 2 else None

    def _task_entries(self) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.summary.items() if isinstance(v, dict) and k not in SUMMARY_RECORDS}

    @property
    def named_bases(self) -> list[str]:
        """The checkpoint below this one as run_config's ``model`` and the adapter config's base name it."""
        named = [self.run_config.get("model"), self.adapter_config.get("base_model_name_or_path")]
        return [name for name in map(_text, named) if name]

    @property
    def _folders(self) -> list[Path]:
        """This folder, then the local folders (or Hub-cache snapshots) named as the checkpoints below it."""
        return [self.path, *(Path(name) for name in self.named_bases if Path(name).is_dir())]

    @property
    def license(self) -> str:
        """The ``license`` of the first model card (README.md metadata) that names one, in this folder or a local
        base below it: fine-tunes and adapters inherit their base's terms. ``unknown`` when none says."""
        for folder in self._folders:
            metadata = metadata_load(folder / "README.md") if (folder / "README.md").is_file() else None
            if metadata and isinstance(metadata.get("license"), str):
                return metadata["license"]
        return UNKNOWN

    @property
    def architecture(self) -> str:
        """The model class (``architectures[0]`` of config.json) of this folder or a local base, else ``unknown``."""
        for folder in self._folders:
            config = _read_json(folder / "config.json")
            if isinstance(config.get("architectures"), list) and config["architectures"]:
                return str(config["architectures"][0])
        return UNKNOWN

    def base_model(self, base_model_id: str | None = None) -> str | None:
        """Hub id (``USER/NAME[@REV]``) of the checkpoint below this one, or None for a model without run config.

        ``base_model_id`` wins; otherwise the first of :attr:`named_bases` that is a Hub id or a Hub-cache snapshot.
        """
        if base_model_id is not None:
            if not REPO_ID.match(base_model_id):
                raise UsageError(f"--base-model-id must be a Hub id USER/NAME[@REVISION], not {base_model_id!r}")
            return base_model_id
        found = next(filter(None, map(hub_id, self.named_bases)), None)
        if found is None and self.named_bases:
            raise UsageError(
                f"the base model {self.named_bases[0]} is a local folder; "
                "pass its Hub id with --base-model-id USER/NAME[@REV]"
            )
        return found


def read_checkpoint(path: str | Path, summary: str | Path | None = None) -> Checkpoint:
    """Read an adapter or full-model folder (safetensors weights only) with its run_config.json, summary.json and
    probes.json.

    ``summary`` overrides the folder's own ``summary.json`` (e.g. an evaluation written to another folder).
    """
    folder = Path(path)
    if not folder.is_dir():
        raise UsageError(f"folder not found: {path}")
    summary_path = Path(summary) if summary is not None else folder / "summary.json"
    if summary is not None and not summary_path.is_file():
        raise UsageError(f"summary file not found: {summary}")
    run_config = _read_json(folder / "run_config.json")
    if (folder / "adapter_config.json").is_file():
        if not (folder / "adapter_model.safetensors").is_file():
            raise UsageError(f"{folder} has no adapter_model.safetensors (only safetensors weights are published)")
        kind = "adapter"
    elif (folder / "config.json").is_file():
        if not any(folder.glob("*.safetensors")):
            raise UsageError(f"{folder} has no .safetensors weights (only safetensors weights are published)")
        kind = _model_kind(_text(run_config.get("split")), bool(run_config))
    else:
        raise UsageError(f"{folder} holds neither a PEFT adapter (adapter_config.json) nor a model (config.json)")
    check_weights(folder)
    return Checkpoint(
        folder,
        kind,
        run_config,
        _read_json(summary_path),
        _read_json(folder / "adapter_config.json"),
        summary_path if summary_path.is_file() else None,
        read_probes(folder),
    )


def _model_kind(split: str | None, has_run_config: bool) -> str:
    """``vanilla`` for a model trained on ``full``, ``gold`` on a retain split, else ``fine-tuned`` / ``model``."""
    if split is None:
        return "fine-tuned" if has_run_config else "model"
    name = split.split("+")[0]
    return "vanilla" if name == "full" else "gold" if name in FORGET_OF else "fine-tuned"


def eval_results(checkpoint: Checkpoint) -> list[EvalResult]:
    """The headline figures as model-index entries (dataset therem/CLEAR, configuration = the forget split)."""
    return [
        EvalResult(
            task_type="image-text-to-text",
            task_name="Unlearning on CLEAR",
            dataset_type=CLEAR_SOURCE,
            dataset_name="CLEAR",
            dataset_config=checkpoint.forget,
            metric_type=key,
            metric_name=HEADLINE[key].label,
            metric_value=value,
        )
        for key, value in checkpoint.figures.items()
    ]


def _settings(run_config: dict[str, Any]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """run_config.json as table rows: (this project's settings and the main training arguments, the other training
    arguments). Non-strings are shown as JSON and ``|`` is escaped so the table holds."""
    rows: tuple[list[tuple[str, str]], list[tuple[str, str]]] = ([], [])
    for key, value in run_config.items():
        text = (value if isinstance(value, str) else dumps_strict(value)).replace("|", "\\|")
        rows[key in TRAINING_ARGUMENTS and key not in MAIN_TRAINING_ARGUMENTS].append((key, text))
    return rows


def model_card(
    checkpoint: Checkpoint,
    repo_id: str,
    revision: str | None = None,
    base_model_id: str | None = None,
    license: str | None = None,
) -> ModelCard:
    """The README.md of ``checkpoint`` published as ``repo_id`` (at branch ``revision``).

    Metadata: library (peft for adapters), base model, dataset therem/CLEAR, tags, license (``license``, else the
    base's, :attr:`Checkpoint.license`) and a model-index of the headline figures. Text: what the checkpoint is and
    its architecture, which split was forgotten, the figures, the robustness probes (with ``probes.json``), the
    settings and how to load it.
    """
    base = checkpoint.base_model(base_model_id)
    if checkpoint.kind == "adapter" and base is None:
        raise UsageError(f"{checkpoint.path}: cannot tell the adapter's base model; pass --base-model-id USER/NAME")
    results = eval_results(checkpoint)
    if checkpoint.kind == "adapter":
        tags = ["unlearning", "clear", "lora", checkpoint.method or "unlearned"]
    else:
        tags = ["unlearning", "clear"] + ([checkpoint.kind] if checkpoint.kind in ("vanilla", "gold") else [])
    data = ModelCardData(
        base_model=split_revision(base)[0] if base else None,
        library_name="peft" if checkpoint.kind == "adapter" else "transformers",
        license=license or checkpoint.license,
        datasets=[CLEAR_SOURCE],
        tags=tags,
        pipeline_tag="image-text-to-text",
        model_name=repo_id.split("/")[-1] if results else None,
        eval_results=results or None,
    )
    branch = revision if revision and revision != "main" else None
    settings, training_arguments = _settings(checkpoint.run_config)
    base_repo, base_revision = split_revision(base) if base else (None, None)
    return ModelCard.from_template(
        data,
        template_path=str(TEMPLATE),
        repo_id=repo_id,
        revision=branch,
        name=f"{repo_id}@{branch}" if branch else repo_id,
        kind=checkpoint.kind,
        base=base,
        base_repo=base_repo,
        base_revision=base_revision,
        method=checkpoint.method,
        forget=checkpoint.forget,
        forget_share=FORGET_SHARE.get(checkpoint.forget or ""),
        retain=checkpoint.retain,
        trained_split=checkpoint.trained_split,
        data_source=_text(checkpoint.run_config.get("data")),
        clear=CLEAR_SOURCE,
        quantization=_text(checkpoint.run_config.get("quantization")),
        architecture=checkpoint.architecture,
        license=data.license,
        figures=_figure_rows(checkpoint),
        forget_quality_samples=checkpoint.summary.get("forget_quality_samples"),
        task_samples=checkpoint.task_samples,
        task_columns=_task_columns(checkpoint),
        tasks=checkpoint.task_figures,
        robustness=robustness_table(checkpoint.probes) if checkpoint.probes is not None else None,
        robustness_guide=GUIDE,
        settings=settings,
        training_arguments=training_arguments,
    )


def _task_columns(checkpoint: Checkpoint) -> list[str]:
    """The figures of the card's task table: every per-task figure a task holds, as a number or as null (shown
    ``–``)."""
    tasks = [*checkpoint.task_figures.values(), *checkpoint.nonfinite_task_figures.values()]
    return sorted({metric for metrics in tasks for metric in metrics})


def _figure_rows(checkpoint: Checkpoint) -> list[tuple[str, str, str, str]]:
    """The card's figure table, in HEADLINE's order: label, value (``n/a (inf)`` for a non-finite one), interval and
    meaning."""
    values = {key: f"{value:.4g}" for key, value in checkpoint.figures.items()}
    values |= {key: f"n/a ({reason})" for key, reason in checkpoint.nonfinite_figures.items()}
    return [
        (HEADLINE[key].label, values[key], _interval_text(checkpoint.interval(key)), HEADLINE[key].described())
        for key in HEADLINE
        if key in values
    ]


def _interval_text(interval: list[float | None] | None) -> str:
    """``[low, high]``, each bound ``–`` when it is null or not finite; ``–`` without an interval."""
    if not interval:
        return "–"
    return "[" + ", ".join(f"{bound:.4g}" if _finite(bound) else "–" for bound in interval) + "]"


def describe_adapter(name: str) -> dict[str, Any]:
    """What the app shows about a checkpoint named by folder or ``USER/NAME[@REV]``.

    Returns ``name`` (as given), ``path`` (local folder), ``kind``, ``method``, ``forget`` (split), ``base_model``
    (a Hub id if one is known, else the local base folder, else None) and ``figures`` (the headline figures of
    summary.json by HEADLINE key; empty without a summary).
    """
    checkpoint = read_checkpoint(resolve(name))
    bases = checkpoint.named_bases
    return {
        "name": name,
        "path": str(checkpoint.path),
        "kind": checkpoint.kind,
        "method": checkpoint.method,
        "forget": checkpoint.forget,
        "base_model": next(filter(None, map(hub_id, bases)), bases[0] if bases else None),
        "figures": checkpoint.figures,
    }
