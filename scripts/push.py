"""Push an unlearned adapter (or a vanilla / gold model folder) to the Hugging Face Hub with a generated model card.

The token comes from HF_TOKEN or `hf auth login`; it is never printed or written. --dry-run writes exactly what
would be uploaded to a folder and uploads nothing.
"""

from __future__ import annotations

import argparse

from unlearn.errors import parse_checked, run_cli
from unlearn.hub.card import read_checkpoint
from unlearn.hub.push import Staged, push, stage


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scripts.push", description=__doc__)
    parser.add_argument("--adapter", required=True, metavar="DIR", help="adapter folder (or a full model folder)")
    parser.add_argument("--repo", required=True, metavar="USER/NAME", help="Hub repository (created if missing)")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--revision", metavar="BRANCH", help="branch to push to (created if missing; default main)")
    parser.add_argument("--commit-message", metavar="TEXT", help="commit message (default: says what is uploaded)")
    parser.add_argument(
        "--base-model-id",
        metavar="USER/NAME[@REV]",
        help="Hub id of the model below this one, needed when it was a local folder",
    )
    parser.add_argument("--summary", metavar="FILE", help="evaluation summary.json (default: DIR/summary.json if any)")
    parser.add_argument(
        "--license", help="license in the card's metadata (default: the base model's card's license, else unknown)"
    )
    parser.add_argument(
        "--dry-run", metavar="OUT", help="write what would be uploaded to the folder OUT; upload nothing"
    )
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options, each checked against ``unlearn.errors.RULES`` before any work."""
    return parse_checked(build_parser(), argv)


def _describe(staged: Staged) -> str:
    left_out = f"\nleft out: {', '.join(staged.left_out)}" if staged.left_out else ""
    return f"{len(staged.files)} files: {', '.join(staged.files)}{left_out}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.dry_run:
        checkpoint = read_checkpoint(args.adapter, args.summary)
        staged = stage(checkpoint, args.dry_run, args.repo, args.revision, args.base_model_id, args.license)
        print(f"dry run: wrote what would be uploaded to {args.repo} into {staged.folder}\n{_describe(staged)}")
        return 0
    info, staged = push(
        args.adapter,
        args.repo,
        private=args.private,
        revision=args.revision,
        commit_message=args.commit_message,
        base_model_id=args.base_model_id,
        summary=args.summary,
        license=args.license,
    )
    print(f"pushed {_describe(staged)}\nto {info.commit_url}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
