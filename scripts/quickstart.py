"""Run the whole CLEAR protocol on the offline default and print the results table.

Writes a mini-CLEAR and a tiny model (LLaVA-1.5 by default, or --family qwen2_vl / qwen2_5_vl), fine-tunes the
vanilla (full+tofu) and gold (retain90+tofu) models, unlearns forget10 from the vanilla model with each method
(4-bit base, LoRA), evaluates everything and writes the report. Each stage has its own folder under --out; a rerun
skips the stages that finished (so an interrupted run resumes).
"""

# The pipeline lives here, not in eval/, because it trains as well as evaluates.

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

import datasets
import torch

from eval.evaluator import evaluate
from eval.report import figure_table, results_table, write_report
from eval.robustness import robustness_table
from eval.runs import load_runs
from scripts import probe
from scripts.probe import run_probes
from unlearn.data import RETAIN_OF
from unlearn.errors import UsageError, parse_checked, run_cli
from unlearn.figures import write_json_strict
from unlearn.methods import METHODS, get_method
from unlearn.models import load_model
from unlearn.offline.mini_clear import write_mini_clear
from unlearn.offline.tiny_model import TINY_FAMILIES, write_tiny_model
from unlearn.training.config import FinetuneConfig, UnlearnConfig
from unlearn.training.runs import finetune
from unlearn.training.trainer import save_folder_atomically

FORGET = "forget10"
PROBED_MODALITIES = ("visual", "text")  # the one-modality variants the leakage matrix needs
PROBE_SAMPLES = 40  # --max_samples of the probes: every forget sample, 40 of each retain task
# The tiny base model's world knowledge (its stand-in for pretraining), mixed into fine-tuning: see docs/offline.md.
WORLD_SETS = "real_faces,real_world"
SUMMARY = "summary.json"
# Method options tuned per tiny family (the defaults elsewhere). NPO's beta 0.1 over-forgets the tiny Qwen2-VL's
# forget captions (their truth ratios fall below gold's, KS p 6e-6); 0.15 meets every target (docs/models.md).
TUNED_OPTIONS: dict[str, dict[str, dict[str, Any]]] = {"qwen2_vl": {"npo_gd": {"beta": 0.15}}}
# What the quickstart shows beside the group scores: did the model forget the forget persons and keep the others?
HEADLINE_TASKS = [
    ("Forget faces: accuracy", "forget_face/accuracy"),
    ("Forget faces: probability", "forget_face/probability"),
    ("Retain faces: accuracy", "retain_face/accuracy"),
    ("Forget captions: ROUGE-L", "forget_caption/rouge_l"),
    ("Retain captions: ROUGE-L", "retain_caption/rouge_l"),
    ("Forget text: ROUGE-L", "forget_text/rouge_l"),
    ("Retain text: ROUGE-L", "retain_text/rouge_l"),
]


@dataclass
class ProtocolSettings:
    """Settings of the offline protocol, measured to learn and unlearn the mini-CLEAR within minutes on 2 cores."""

    out: Path
    methods: list[str] = field(default_factory=lambda: ["npo_gd"])
    family: str = "llava"
    persons: int = 20
    images_per_person: int = 15  # forget10 = 2 persons: 30 forget captions, enough for the KS test to move
    seed: int = 0
    finetune_epochs: float = 20
    finetune_lr: float = 2e-3
    finetune_batch: int = 20
    unlearn_epochs: float = 10
    unlearn_lr: float = 1e-3
    unlearn_batch: int = 4
    eval_batch: int = 16
    unlearn_quantization: str | None = "4bit"
    # CLEAR never trains face naming. The offline default does, and replays the tiny base model's world knowledge
    # (WORLD_SETS) during fine-tuning: CLEAR's face prompt serves its own persons and the real faces alike, and a
    # full fine-tune of the tiny model would otherwise overwrite one with the other (docs/offline.md).
    face_naming: bool = True
    threads: int = 1  # the tiny model runs fastest on one thread
    method_options: dict[str, dict[str, Any]] | None = None  # per method; None: TUNED_OPTIONS of the family

    def __post_init__(self) -> None:
        unknown = [name for name in self.methods if name not in METHODS]
        if unknown:
            raise UsageError(f"unknown method {unknown[0]!r}; choose from {', '.join(sorted(METHODS))}")
        if not self.methods:
            raise UsageError("give at least one method")
        if self.family not in TINY_FAMILIES:
            raise UsageError(f"unknown family {self.family!r}; choose from {', '.join(TINY_FAMILIES)}")
        if self.method_options is None:
            self.method_options = TUNED_OPTIONS.get(self.family, {})


def _say(message: str) -> None:
    print(f"[quickstart {time.strftime('%H:%M:%S')}] {message}", flush=True)


def stage(name: str, done: Path, run: Callable[[], object]) -> None:
    """Run one stage unless ``done`` exists (its last output, written only when the stage finished)."""
    if done.exists():
        _say(f"{name}: done already ({done.parent}), skipped")
        return
    _say(f"{name} ...")
    started = time.perf_counter()
    run()
    _say(f"{name}: finished in {time.perf_counter() - started:.0f} s")


def _training_arguments(output_dir: Path, settings: ProtocolSettings) -> dict[str, Any]:
    return {
        "output_dir": str(output_dir),
        "seed": settings.seed,
        "save_strategy": "no",
        "report_to": "none",
        "logging_steps": 10,
        "disable_tqdm": False,
        "gradient_accumulation_steps": 1,
        "lr_scheduler_type": "linear",
        "warmup_steps": 5,
    }


def _finetune(settings: ProtocolSettings, split: str, output_dir: Path) -> None:
    config = FinetuneConfig(
        model=str(settings.out / "base"),
        data=str(settings.out / "data"),
        split=split,
        full=True,
        replay=WORLD_SETS,
        learning_rate=settings.finetune_lr,
        num_train_epochs=settings.finetune_epochs,
        per_device_train_batch_size=settings.finetune_batch,
        face_naming=settings.face_naming,
        **_training_arguments(output_dir, settings),
    )
    finetune(config)


def _unlearn(settings: ProtocolSettings, method: str, output_dir: Path, modality: str = "both") -> None:
    from unlearn.training.runs import unlearn

    config = UnlearnConfig(
        model=str(settings.out / "vanilla"),
        data=str(settings.out / "data"),
        method=method,
        forget=FORGET,
        forget_modality=modality,
        quantization=settings.unlearn_quantization,
        learning_rate=settings.unlearn_lr,
        num_train_epochs=settings.unlearn_epochs,
        per_device_train_batch_size=settings.unlearn_batch,
        face_naming=settings.face_naming,
        **_training_arguments(output_dir, settings),
    )
    method_class = get_method(method)
    options = method_class.options_class(**settings.method_options.get(method, {}))
    unlearn(config, options)


def _evaluate(
    settings: ProtocolSettings, model: Path, output_dir: Path, gold: Path, quantization: str | None, adapter: bool
) -> dict[str, Any]:
    """Evaluate ``model`` (the vanilla model with the adapter in ``output_dir`` when ``adapter``) in ``quantization``
    into ``output_dir``, against the gold evaluation ``gold``."""
    adapter_path = str(output_dir) if adapter else None
    loaded, processor = load_model(str(model), quantization=quantization, adapter=adapter_path)
    return evaluate(
        loaded,
        processor,
        str(settings.out / "data"),
        forget=FORGET,
        batch_size=settings.eval_batch,
        gold_dir=str(gold),
        output_dir=output_dir,
        model_name=str(model),
        adapter=adapter_path,
        quantization=quantization,
        seed=settings.seed,
    )


def check_settings(settings: ProtocolSettings) -> None:
    """Record the settings in ``out/settings.json``, or refuse an ``out`` made with other settings.

    Finished stages are skipped on a rerun, so mixing settings in one folder would silently reuse the old models.
    Only ``methods`` may differ (a rerun with more methods trains just the new ones).
    """
    stamp = settings.out / "settings.json"
    current = {key: value for key, value in vars(settings).items() if key not in ("out", "methods")}
    if not stamp.exists():
        write_json_strict(stamp, current, sort_keys=True)
        return
    # A setting added since the folder was made holds its default there.
    recorded = {
        **{f.name: f.default for f in fields(settings) if f.default is not MISSING},
        **json.loads(stamp.read_text()),
    }
    changed = [
        f"{key} {recorded.get(key)!r} -> {value!r}" for key, value in current.items() if recorded.get(key) != value
    ]
    if changed:
        raise UsageError(f"{settings.out} was made with other settings ({', '.join(changed)}); choose another --out")


def _probe(settings: ProtocolSettings, method: str, gold: Path) -> dict[str, Any]:
    """Every probe of ``unlearn-<method>`` into its folder (``probes.json``), its one-modality variants filling the
    leakage matrix; the probes already done are kept (``scripts.probe`` resumes probe by probe)."""
    out, folder = settings.out, settings.out / f"unlearn-{method}"
    variants = []
    for modality in PROBED_MODALITIES:
        variant = out / f"unlearn-{method}-{modality}"
        stage(
            f"unlearn {FORGET} with {method}, {modality} only",
            variant / "adapter_model.safetensors",
            lambda m=modality, v=variant: _unlearn(settings, method, v, m),
        )
        variants.append(str(variant))
    arguments = [
        *("--model", str(out / "vanilla"), "--adapter", str(folder), "--gold", str(gold)),
        *("--data", str(out / "data"), "--forget", FORGET, "--output_dir", str(folder)),
        *("--modality_adapters", *variants, "--max_samples", str(PROBE_SAMPLES)),
        *("--batch_size", str(settings.eval_batch), "--relearn_lr", str(settings.unlearn_lr)),
        *("--relearn_batch", str(settings.unlearn_batch), "--seed", str(settings.seed)),
    ]
    _say(f"probes of unlearn-{method} ...")
    started = time.perf_counter()
    figures = run_probes(probe.parse_args(arguments))
    _say(f"probes of unlearn-{method}: finished in {time.perf_counter() - started:.0f} s")
    return figures


def run_protocol(settings: ProtocolSettings, probes: bool = False) -> str:
    """Run every stage that is not done yet; returns the results table and the headline task figures (markdown),
    and with ``probes`` each method's robustness table (:func:`_probe`)."""
    out = settings.out
    out.mkdir(parents=True, exist_ok=True)
    check_settings(settings)
    torch.set_num_threads(settings.threads)
    datasets.disable_progress_bars()
    data, base, vanilla, gold = out / "data", out / "base", out / "vanilla", out / "gold"
    stage(
        "mini-CLEAR",
        data,
        lambda: save_folder_atomically(
            data, lambda tmp: write_mini_clear(tmp, settings.persons, settings.seed, settings.images_per_person)
        ),
    )
    stage(
        f"tiny base model ({settings.family})",
        base,
        lambda: save_folder_atomically(base, lambda tmp: write_tiny_model(str(data), tmp, family=settings.family)),
    )
    stage(
        "vanilla fine-tune (full+tofu)",
        vanilla / "model.safetensors",
        lambda: _finetune(settings, "full+tofu", vanilla),
    )
    gold_split = f"{RETAIN_OF[FORGET]}+tofu"
    stage(f"gold fine-tune ({gold_split})", gold / "model.safetensors", lambda: _finetune(settings, gold_split, gold))
    # Every model is evaluated in full precision and in the adapters' precision, each against the gold model in the
    # same precision: the report compares like with like.
    low = settings.unlearn_quantization
    gold_low, vanilla_low = out / f"gold-{low}", out / f"vanilla-{low}"
    stage("evaluate gold", gold / SUMMARY, lambda: _evaluate(settings, gold, gold, gold, None, adapter=False))
    stage("evaluate vanilla", vanilla / SUMMARY, lambda: _evaluate(settings, vanilla, vanilla, gold, None, False))
    runs = [vanilla, gold]
    if low:
        stage(
            f"evaluate gold in {low}",
            gold_low / SUMMARY,
            lambda: _evaluate(settings, gold, gold_low, gold_low, low, False),
        )
        stage(
            f"evaluate vanilla in {low}",
            vanilla_low / SUMMARY,
            lambda: _evaluate(settings, vanilla, vanilla_low, gold_low, low, False),
        )
        runs += [vanilla_low, gold_low]
    for method in settings.methods:
        folder = out / f"unlearn-{method}"
        stage(
            f"unlearn {FORGET} with {method}",
            folder / "adapter_model.safetensors",
            lambda m=method, f=folder: _unlearn(settings, m, f),
        )
        stage(
            f"evaluate unlearn-{method}",
            folder / SUMMARY,
            lambda f=folder: _evaluate(settings, vanilla, f, gold_low if low else gold, low, adapter=True),
        )
        runs.append(folder)
    tables = []
    if probes:
        for method in settings.methods:
            figures = _probe(settings, method, gold_low if low else gold)
            tables.append(f"Robustness of unlearn-{method}:\n\n{robustness_table(figures)}")
    _say("report (rewritten every time: it lists the runs of this call)")
    write_report(load_runs(runs), out / "report")
    loaded = load_runs(runs)
    return "\n\n".join([results_table(loaded), figure_table(loaded, HEADLINE_TASKS), *tables])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.quickstart", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="outputs/quickstart", help="output folder (default: %(default)s)")
    parser.add_argument("--method", default="npo_gd", help="unlearning method (default: %(default)s)")
    parser.add_argument("--methods", help="comma-separated methods to run instead of --method, e.g. ga,npo_gd,idk")
    parser.add_argument(
        "--family", default="llava", help=f"tiny model family: {', '.join(TINY_FAMILIES)} (default: %(default)s)"
    )
    parser.add_argument("--persons", type=int, default=20, help="persons in the mini-CLEAR (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data, models and training (default: 0)")
    parser.add_argument(
        "--probes",
        action="store_true",
        help="also run every robustness probe (scripts.probe) on each method's adapter, training its visual-only "
        "and text-only variants for the leakage matrix, and print the robustness tables",
    )
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options, each checked against ``unlearn.errors.RULES`` before any work."""
    return parse_checked(build_parser(), argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    methods = [name.strip() for name in (args.methods or args.method).split(",") if name.strip()]
    settings = ProtocolSettings(
        out=Path(args.out), methods=methods, family=args.family, persons=args.persons, seed=args.seed
    )
    table = run_protocol(settings, probes=args.probes)
    print(f"\nResults ({args.out}/report/results.md, plots in {args.out}/report/):\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
