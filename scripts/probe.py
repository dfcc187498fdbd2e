"""Does the forgetting hold? Robustness probes of an unlearned adapter, beside the vanilla and gold models.

python -m scripts.probe --model VANILLA --adapter ADAPTER --gold GOLD_EVAL_DIR --data D --forget forget10 \
    --output_dir OUT [--probes membership]

Writes ``OUT/probes.json``, one top-level key per probe, every figure with its sample counts:

- ``membership``: the adapter (``model``), the vanilla model in the same precision (``vanilla``) and the gold model
  (``gold``: the model its evaluation in ``GOLD_EVAL_DIR`` recorded), and the adapter's gap from gold;
- ``precision``: per precision (4-bit, 8-bit, merged into full precision) the adapter and vanilla, ``lost_at``;
- ``rephrased``: forget-face probability and accuracy under new wordings and altered images, adapter and vanilla.
 The file is rewritten after each probe, and a probe already in
it is not run again, so an interrupted run resumes probe by probe. So far ``membership``, ``precision`` and
``rephrased`` exist (issue 15).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from eval.logs import read_summary, write_json
from eval.probes import membership_gap, membership_probe, membership_sets, precision_probe
from eval.rephrased import rephrased_figures
from eval.tasks import TASKS
from unlearn.data import FORGET_SPLITS, load_clear
from unlearn.errors import UsageError, run_cli
from unlearn.models import load_model, precision_of

PROBES = ("membership", "precision", "rephrased")
PROBES_FILE = "probes.json"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.probe",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="the vanilla model the adapter was unlearned from")
    parser.add_argument("--adapter", required=True, help="the unlearned LoRA adapter (folder with run_config.json)")
    parser.add_argument("--gold", required=True, metavar="GOLD_EVAL_DIR", help="an evaluation folder of the gold model")
    parser.add_argument("--data", required=True, help="CLEAR: Hub dataset id or local folder")
    parser.add_argument("--forget", default="forget10", choices=FORGET_SPLITS, help="forget split")
    parser.add_argument("--output_dir", required=True, help="folder for probes.json (created)")
    parser.add_argument("--probes", help=f"comma-separated subset of {','.join(PROBES)} (default: all)")
    parser.add_argument(
        "--max_samples",
        type=int,
        help="membership: at most N forget examples, evenly spread; precision: the first N samples of each task "
        "(default: all)",
    )
    parser.add_argument("--k", type=float, default=0.2, help="share of tokens min-k%% and min-k%%++ average over")
    parser.add_argument("--batch_size", type=int, default=8, help="examples per forward pass")
    return parser


def probe_names(text: str | None) -> list[str]:
    names = [name.strip() for name in text.split(",")] if text else list(PROBES)
    unknown = [name for name in names if name not in PROBES]
    if unknown:
        raise UsageError(f"unknown probes {unknown}; choose from {', '.join(PROBES)}")
    return names


def check_inputs(args: argparse.Namespace) -> dict[str, Any]:
    """Refuse bad input before any work; the gold evaluation's summary."""
    if not Path(args.adapter, "run_config.json").is_file():
        raise UsageError(f"{args.adapter} has no run_config.json: not an adapter written by scripts.unlearn")
    if not 0 < args.k <= 1:
        raise UsageError(f"--k is a share of the tokens in (0, 1], not {args.k}")
    for name in ("max_samples", "batch_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name} must be at least 1, got {value}")
    gold = read_summary(args.gold)
    if gold.get("forget_split") != args.forget:
        raise UsageError(f"the gold evaluation in {args.gold} is on {gold.get('forget_split')}, not {args.forget}")
    return gold


def run_membership(args: argparse.Namespace, gold: dict[str, Any]) -> dict[str, Any]:
    """The membership probe of the adapter, the vanilla model in the adapter's precision, and the gold model in the
    precision its evaluation used."""
    sets = membership_sets(args.data, args.forget, args.max_samples)
    quantization = precision_of(None, args.adapter)
    gold_quantization = (gold.get("config") or {}).get("quantization")
    figures = {}
    for name, (path, adapter, precision) in {
        "model": (args.model, args.adapter, quantization),
        "vanilla": (args.model, None, quantization),
        "gold": (gold["model"], None, gold_quantization),
    }.items():
        model, processor = load_model(path, quantization=precision, adapter=adapter)
        figures[name] = {**membership_probe(model, processor, sets, args.k, args.batch_size), "precision": precision}
        del model
    figures["gap_from_gold"] = membership_gap(figures["model"], figures["gold"])
    return figures


def run_precision(args: argparse.Namespace, gold: dict[str, Any]) -> dict[str, Any]:
    """The precision probe; its evaluations go to ``OUT/precision/<precision>/<model|vanilla>``."""
    out = Path(args.output_dir) / "precision"
    return precision_probe(args.model, args.adapter, args.data, args.forget, out, args.max_samples, args.batch_size)


def run_rephrased(args: argparse.Namespace, gold: dict[str, Any]) -> dict[str, Any]:
    """Forget-face figures under new wordings and altered images, for the adapter and vanilla in its precision."""
    task = TASKS["forget_face"]
    samples = list(task.samples(load_clear(task.config(args.forget), args.data)))[: args.max_samples]
    quantization = precision_of(None, args.adapter)
    figures = {}
    for name, adapter in (("model", args.adapter), ("vanilla", None)):
        model, processor = load_model(args.model, quantization=quantization, adapter=adapter)
        figures[name] = rephrased_figures(model, processor, samples, args.batch_size)
        del model
    return {**figures, "precision": quantization}


RUNNERS = {"membership": run_membership, "precision": run_precision, "rephrased": run_rephrased}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    names = probe_names(args.probes)
    gold = check_inputs(args)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / PROBES_FILE
    figures = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    for name in names:
        if name in figures:
            print(f"{name}: already in {path}, kept")
            continue
        figures[name] = RUNNERS[name](args, gold)
        write_json(path, figures)
        print(f"{name}: {json.dumps(figures[name])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
