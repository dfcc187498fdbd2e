"""Does the forgetting hold? Robustness probes of an unlearned adapter, beside the vanilla and gold models.

python -m scripts.probe --model VANILLA --adapter ADAPTER --gold GOLD_EVAL_DIR --data D --forget forget10 \
    --output_dir OUT [--probes relearning,precision,rephrased,cross_modal,membership] \
    [--modality_adapters VISUAL_ADAPTER TEXT_ADAPTER]

Writes ``OUT/probes.json``, one top-level key per probe, every figure with its sample counts, and the per-sample
logs under ``OUT/probes/<probe>/`` (docs/evaluation.md explains each probe and how to read it):

- ``relearning``: the adapter trained further on half of each forget person's images, or on their text answers,
  for ``--relearn_steps``; face probability and caption ROUGE on what was not relearned, their recovery towards
  vanilla, and gold relearning the same data as the floor;
- ``precision``: the adapter and vanilla on a 4-bit base, an 8-bit base and merged into full precision;
- ``rephrased``: forget-face probability and accuracy under new wordings and altered images;
- ``cross_modal``: the forget figures of both modalities for adapters unlearned on one (``--modality_adapters``);
- ``membership``: membership-inference AUCs of the adapter, vanilla and gold, and the adapter's gap from gold.

``probes.json`` is rewritten after each probe and a probe already in it is not run again, so an interrupted run
resumes probe by probe. With ``--output_dir ADAPTER`` the file lands in the adapter's folder, where the report
(``scripts.report``) and the model card (``scripts.push``) find it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from eval.logs import read_summary, write_json
from eval.relearning import RELEARN_STEPS
from eval.robustness import read_probes, robustness_table
from scripts.probe_runners import RUNNERS, forget_modality, run_config_of
from unlearn.data import FORGET_SPLITS
from unlearn.errors import UsageError, one_line_errors, parse_checked, run_cli
from unlearn.models import precision_of

PROBES = tuple(RUNNERS)
PROBES_FILE = "probes.json"


def steps_list(text: str) -> list[int]:
    """``1,5,20`` -> ``[1, 5, 20]`` (sorted, each at least 1)."""
    try:
        steps = sorted({int(step) for step in text.split(",") if step.strip()})
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of step counts: {text!r}") from exc
    if not steps or steps[0] < 1:
        raise argparse.ArgumentTypeError(f"step counts must be at least 1, got {text!r}")
    return steps


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.probe",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    one_line_errors(parser)
    parser.add_argument("--model", required=True, help="the vanilla model the adapter was unlearned from")
    parser.add_argument("--adapter", required=True, help="the unlearned LoRA adapter (folder with run_config.json)")
    parser.add_argument("--gold", required=True, metavar="GOLD_EVAL_DIR", help="an evaluation folder of the gold model")
    parser.add_argument("--data", required=True, help="CLEAR: Hub dataset id or local folder")
    parser.add_argument("--forget", default="forget10", choices=FORGET_SPLITS, help="forget split")
    parser.add_argument("--output_dir", required=True, help="folder for probes.json and the logs (created)")
    parser.add_argument("--probes", help=f"comma-separated subset of {','.join(PROBES)} (default: all)")
    parser.add_argument(
        "--modality_adapters",
        nargs="*",
        default=[],
        metavar="ADAPTER",
        help="cross_modal: adapters of the same method unlearned with --forget-modality visual or text, one row each "
        "of the leakage matrix beside --adapter's",
    )
    parser.add_argument(
        "--max_samples",
        type=int,
        help="at most N samples per task (membership: N forget examples; relearning: N probed, evenly spread) "
        "(default: all)",
    )
    parser.add_argument("--k", type=float, default=0.2, help="share of tokens min-k%% and min-k%%++ average over")
    parser.add_argument("--batch_size", type=int, default=8, help="examples per forward pass")
    parser.add_argument(
        "--relearn_steps",
        type=steps_list,
        default=list(RELEARN_STEPS),
        help="relearning: optimiser steps after which the figures are taken (comma-separated)",
    )
    parser.add_argument("--relearn_lr", type=float, default=1e-4, help="relearning: constant AdamW learning rate")
    parser.add_argument("--relearn_batch", type=int, default=4, help="relearning: examples per step")
    parser.add_argument("--seed", type=int, default=0, help="relearning: seed of the batches and new LoRA weights")
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options, each checked against ``unlearn.errors.RULES`` before any work."""
    return parse_checked(build_parser(), argv)


def probe_names(text: str | None) -> list[str]:
    names = [name.strip() for name in text.split(",")] if text else list(PROBES)
    unknown = [name for name in names if name not in PROBES]
    if unknown:
        raise UsageError(f"unknown probes {unknown}; choose from {', '.join(PROBES)}")
    return names


def check_adapter(path: str, forget: str, precision: str | None) -> str:
    """Refuse a folder that is not an unlearned adapter of ``forget`` in ``precision``; its forget modality."""
    if not Path(path, "run_config.json").is_file():
        raise UsageError(f"{path} has no run_config.json: not an adapter written by scripts.unlearn")
    run_config = run_config_of(path)
    if run_config.get("forget", forget) != forget:
        raise UsageError(f"the adapter {path} unlearned {run_config['forget']}, not {forget}")
    if precision_of(None, path) != precision:
        raise UsageError(f"the adapter {path} was unlearned in {precision_of(None, path)}, not {precision}")
    return forget_modality(path)


def check_inputs(args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    """Refuse bad input before any work; the gold evaluation's summary."""
    precision = precision_of(None, args.adapter) if Path(args.adapter, "run_config.json").is_file() else None
    modalities = [check_adapter(path, args.forget, precision) for path in [args.adapter, *args.modality_adapters]]
    if len(set(modalities)) < len(modalities):
        raise UsageError(f"two adapters unlearned the same modality ({', '.join(modalities)}): one row each")
    if args.modality_adapters and "cross_modal" not in names:
        raise UsageError("--modality_adapters serve the cross_modal probe, which --probes leaves out")
    gold = read_summary(args.gold)
    if gold.get("forget_split") != args.forget:
        raise UsageError(f"the gold evaluation in {args.gold} is on {gold.get('forget_split')}, not {args.forget}")
    return gold


def run_probes(args: argparse.Namespace) -> dict[str, Any]:
    """Run each asked probe not yet in ``OUT/probes.json``, rewriting the file after each; the file's content."""
    names = probe_names(args.probes)
    gold = check_inputs(args, names)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / PROBES_FILE
    figures = read_probes(out) or {}  # a broken file is a one-line error; null figures are kept as they are
    for name in names:
        if name in figures:
            print(f"{name}: already in {path}, kept")
            continue
        figures[name] = RUNNERS[name](args, gold)
        write_json(path, figures)
        print(f"{name}: written to {path}")
    return figures


def main(argv: list[str] | None = None) -> int:
    print(robustness_table(run_probes(parse_args(argv))))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
