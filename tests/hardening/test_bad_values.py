"""No traceback for any bad value: every script answers a bad option with one ``error: ...`` line on stderr, exit
code 2 and nothing written, before any work.

The bad values are drawn from the scripts' own parsers: each option's type and choices, and its rule in
``unlearn.errors.RULES`` (or the script's ``OPTION_RULES``). A new option is covered without touching this file; a
new numeric option without a rule fails ``test_every_numeric_option_has_a_rule``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import app
from scripts import (
    bench_app,
    bench_data,
    bench_eval,
    bench_train,
    evaluate,
    finetune,
    probe,
    push,
    quickstart,
    report,
    unlearn,
)
from unlearn.errors import (
    RULES,
    Existing,
    Number,
    UsageError,
    Writable,
    check_options,
    one_line_errors,
    parse_checked,
    run_cli,
)
from unlearn.methods import METHODS

REPO = Path(__file__).resolve().parents[2]
# xdist hands out the groups with the most tests first: with this module's draws the app's first-start group is the
# largest, so its demo build (minutes) starts at once, beside the rest of the suite, instead of last.
XDIST_GROUP = "first_start"
DRAWS_PER_SCRIPT = 20  # at most, for each of DRAWN_SCRIPTS (hypothesis stops early where it runs out of values)
NOT_NUMBERS = ("abc", "", "1,5", "0x", "--")
NUMERIC_TYPES = (int, float)


class WorkStarted(Exception):  # noqa: N818 - the name says what went wrong
    """A bad value reached a script's work: the check missed it."""


def _work(*_args, **_kwargs):
    raise WorkStarted("the script began its work with a bad value")


@dataclass(frozen=True)
class Script:
    """How to call one script: its module, its parser, a valid command line in ``folder`` and where its work starts."""

    name: str
    module: ModuleType
    argv: Callable[[Path], list[str]]
    work: tuple[str, ...]  # attributes of the module replaced by a function that raises WorkStarted
    parser: Callable[[], argparse.ArgumentParser] | None = None

    def build_parser(self) -> argparse.ArgumentParser:
        return (self.parser or self.module.build_parser)()

    def rules(self) -> dict:
        return getattr(self.module, "OPTION_RULES", RULES)


def _inputs(folder: Path) -> dict[str, str]:
    """Existing inputs (empty folders: a bad value stops the script before it reads them) and a plain file."""
    paths = {name: folder / name for name in ("model", "data", "adapter", "gold", "run")}
    for path in paths.values():
        path.mkdir(exist_ok=True)
    (folder / "a_file").write_text("not a folder\n")
    return {name: str(path) for name, path in paths.items()}


def _unlearn_argv(method: str) -> Callable[[Path], list[str]]:
    def argv(folder: Path) -> list[str]:
        paths = _inputs(folder)
        return ["--model", paths["model"], "--data", paths["data"], "--method", method, "--output_dir", "out"]

    return argv


def _model_data(folder: Path) -> list[str]:
    paths = _inputs(folder)
    return ["--model", paths["model"], "--data", paths["data"], "--output_dir", "out"]


def _probe(folder: Path) -> list[str]:
    p = _inputs(folder)
    return [*_model_data(folder), "--adapter", p["adapter"], "--gold", p["gold"]]


def _push(folder: Path) -> list[str]:
    return ["--adapter", _inputs(folder)["adapter"], "--repo", "user/name", "--dry-run", "out"]


def _report(folder: Path) -> list[str]:
    return [_inputs(folder)["run"], "--out", "out"]


def _out(folder: Path) -> list[str]:
    _inputs(folder)
    return ["--out", "out"]


def _app(folder: Path) -> list[str]:
    return ["--base", _inputs(folder)["model"], "--quickstart", "out"]


def _bench_train(folder: Path) -> list[str]:
    return ["--model", _inputs(folder)["model"], "--out", "out.json"]


def _bench_file(folder: Path) -> list[str]:
    _inputs(folder)
    return ["--out", "out.json"]


UNLEARN_METHODS = sorted(METHODS)
SCRIPTS = [
    *(
        Script(
            f"unlearn[{method}]", unlearn, _unlearn_argv(method), ("unlearn",), lambda m=method: unlearn.build_parser(m)
        )
        for method in UNLEARN_METHODS
    ),
    Script("finetune", finetune, _model_data, ("finetune",)),
    Script("evaluate", evaluate, _model_data, ("evaluate_checkpoint",)),
    Script("probe", probe, _probe, ("run_probes",)),
    Script("push", push, _push, ("read_checkpoint", "stage", "push")),
    Script("report", report, _report, ("load_runs", "write_report")),
    Script("quickstart", quickstart, _out, ("run_protocol",)),
    Script("app", app, _app, ("choose_models", "build_offline_demo")),
    Script("bench_app", bench_app, _out, ("tempfile",)),
    Script("bench_data", bench_data, _bench_file, ("tempfile",)),
    Script("bench_eval", bench_eval, _bench_file, ("tempfile",)),
    Script("bench_train", bench_train, _bench_train, ("tempfile", "check_cpu_memory")),
]
# One unlearn entry per method in SCRIPTS (each method adds its own flags); the draws go to a few of them.
DRAWN_SCRIPTS = [s for s in SCRIPTS if not s.name.startswith("unlearn[")] + [
    s for s in SCRIPTS if s.name in ("unlearn[npo_gd]", "unlearn[scrub]", "unlearn[rmu]")
]
DRAW_COUNT = {"random": 0, "sweep": 0}


def _drawable(action: argparse.Action) -> bool:
    """An option that takes a value (not --help, not a switch)."""
    return not isinstance(action, argparse._HelpAction | argparse._StoreTrueAction | argparse._StoreFalseAction)


def command_line(valid: list[str], action: argparse.Action, value: str) -> tuple[list[str], str]:
    """``valid`` with ``value`` for ``action`` (after its flag, which overrides an earlier one; a positional's value
    replaces the valid one, first in ``valid``), and the name the error must give: the flag or the metavar."""
    if action.option_strings:
        return [*valid, action.option_strings[0], value], action.option_strings[0]
    return [value, *valid[1:]], str(action.metavar)


def _bad_numbers(rule: Number, integer_type: bool) -> st.SearchStrategy[str]:
    """Numbers that break ``rule``, as text the way a user types them."""
    outside = []
    if integer_type:
        if not math.isinf(rule.low):
            outside.append(st.integers(max_value=math.ceil(rule.low) - (0 if rule.open_low else 1)))
        if not math.isinf(rule.high):
            outside.append(st.integers(min_value=math.floor(rule.high) + (0 if rule.open_high else 1)))
        numbers = st.one_of(outside).filter(lambda value: value not in rule.special) if outside else st.nothing()
        return numbers.map(str) | st.sampled_from(["1.5", "nan", "inf", "1e3"])  # argparse's int() refuses these
    if not math.isinf(rule.low):
        outside.append(st.floats(max_value=rule.low, exclude_max=not rule.open_low, allow_nan=False))
    if not math.isinf(rule.high):
        outside.append(st.floats(min_value=rule.high, exclude_min=not rule.open_high, allow_nan=False))
    numbers = st.one_of(*outside).filter(lambda value: _outside(rule, value)) if outside else st.nothing()
    special = st.sampled_from(["nan", "inf", "-inf", "NaN", "1e400", "-1e400"])
    return (numbers.map(repr) | special).filter(lambda text: float(text) not in rule.special)


def _outside(rule: Number, value: float) -> bool:
    """``value`` lies outside ``rule``'s bounds (-0.0 is 0: a closed bound at 0 takes it)."""
    above = value > rule.low if rule.open_low else value >= rule.low
    below = value < rule.high if rule.open_high else value <= rule.high
    return not (above and below)


def _bad_paths(rule: Existing | Writable) -> st.SearchStrategy[str]:
    if isinstance(rule, Existing):
        wrong_kind = "a_file" if rule.kind == "folder" else "model"
        return st.sampled_from(["missing", "./no/such/folder", "/no/such/place/x", wrong_kind])
    under_a_file = ["a_file/out", "a_file/deeper/out"] + (["a_file"] if rule.kind == "folder" else ["model"])
    return st.sampled_from(under_a_file + (["read_only/out"] if os.geteuid() != 0 else []))


def bad_values(action: argparse.Action, rule) -> st.SearchStrategy[str]:
    """Values ``action`` must refuse: from its rule, its choices, or its type."""
    if isinstance(rule, Number):
        return _bad_numbers(rule, action.type is int or rule.integer and action.type not in NUMERIC_TYPES)
    if isinstance(rule, Existing | Writable):
        return _bad_paths(rule)
    if action.choices is not None:
        return st.text(alphabet="abcxyz_", min_size=1, max_size=8).filter(lambda text: text not in action.choices)
    if action.type in NUMERIC_TYPES:
        return st.sampled_from(NOT_NUMBERS)
    if action.type is not None:  # bools and other converters: words that are not theirs
        return st.sampled_from(["maybe", "abc", "2"]).filter(lambda text: not _converts(action, text))
    return st.nothing()


def _converts(action: argparse.Action, text: str) -> bool:
    try:
        action.type(text)
    except (ValueError, TypeError, argparse.ArgumentTypeError):
        return False
    return True


def _targets(script: Script) -> list[tuple[argparse.Action, object]]:
    """The options of ``script`` that can be given a bad value, each with its rule (None when it has none)."""
    rules = script.rules()
    found = []
    for action in script.build_parser()._actions:
        if not _drawable(action):
            continue
        rule = rules.get(action.dest)
        if rule is not None or action.choices is not None or action.type not in (None, str):
            found.append((action, rule))
    return found


def _tree(folder: Path) -> set[tuple[str, int]]:
    return {(str(path.relative_to(folder)), path.stat().st_mtime_ns) for path in folder.rglob("*")}


def call(script: Script, argv: list[str]) -> tuple[int, str, str]:
    """Run ``script`` as ``python -m`` does (``run_cli(main)``), in-process, its work replaced by WorkStarted;
    the exit code, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        for name in script.work:
            replacement = SimpleNamespace(TemporaryDirectory=_work) if name == "tempfile" else _work
            patch.setattr(script.module, name, replacement)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = run_cli(script.module.main, argv)
            except SystemExit as exc:
                code = exc.code
    return code, out.getvalue(), err.getvalue()


def assert_refused(script: Script, argv: list[str], flag: str, folder: Path) -> None:
    """Exit code 2, one ``error:`` line naming ``flag`` on stderr, nothing new in ``folder``."""
    before = _tree(folder)
    code, _, err = call(script, argv)
    lines = err.splitlines()
    assert code == 2, f"{script.name} {argv}: exit code {code}, stderr {err!r}"
    assert len(lines) == 1 and lines[0].startswith("error: "), f"{script.name} {argv}: stderr {err!r}"
    assert flag in lines[0], f"{script.name} {argv}: the error does not name {flag}: {lines[0]!r}"
    assert _tree(folder) == before, f"{script.name} {argv} wrote {sorted(_tree(folder) - before)}"


@contextlib.contextmanager
def workspace():
    """A fresh folder as the current directory, with the inputs a valid command line names."""
    with tempfile.TemporaryDirectory(prefix="bad-values-") as name, pytest.MonkeyPatch.context() as patch:
        folder = Path(name)
        patch.chdir(folder)
        read_only = folder / "read_only"
        read_only.mkdir()
        read_only.chmod(0o555)
        try:
            yield folder
        finally:
            read_only.chmod(0o755)


# Options that name files or folders: each must have a path rule (Existing or Writable), so the draws reach it.
PATH_OPTIONS = {"model", "data", "adapter", "base", "processor", "modality_adapters", "summary"}
PATH_OPTIONS |= {"output_dir", "out", "dry_run"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda script: script.name)
def test_every_path_option_has_a_path_rule(script):
    rules = script.rules()
    dests = {action.dest for action in script.build_parser()._actions} & PATH_OPTIONS
    missing = sorted(dest for dest in dests if not isinstance(rules.get(dest), Existing | Writable))
    assert missing == [], f"{script.name}: add a path rule to unlearn.errors.RULES for {missing}"


@pytest.mark.parametrize("script", DRAWN_SCRIPTS, ids=lambda script: script.name)
@settings(
    max_examples=DRAWS_PER_SCRIPT,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(data=st.data())
def test_a_bad_value_is_one_error_line_exit_2_and_nothing_written(script, data):
    action, rule = data.draw(st.sampled_from(_targets(script)), label="option")
    value = data.draw(bad_values(action, rule), label="value")
    with workspace() as folder:
        assert_refused(script, *command_line(script.argv(folder), action, value), folder)
    DRAW_COUNT["random"] += 1


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda script: script.name)
def test_the_valid_command_line_reaches_the_work(script):
    """The command line the draws start from passes every check: each refusal is the drawn value's."""
    with workspace() as folder, pytest.raises(WorkStarted):
        call(script, script.argv(folder))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda script: script.name)
def test_every_numeric_option_has_a_rule(script):
    rules = script.rules()
    missing = [
        action.dest
        for action in script.build_parser()._actions
        if action.type in NUMERIC_TYPES and action.dest not in rules
    ]
    assert missing == [], f"{script.name}: add a rule to unlearn.errors.RULES for {missing}"


def _sweep() -> list[tuple[Script, argparse.Action, object]]:
    """Every option with a rule or choices, once (an unlearn option shared by the methods under the first)."""
    seen, found = set(), []
    for script in SCRIPTS:
        family = script.module.__name__
        for action, rule in _targets(script):
            if (family, action.dest) not in seen and (rule is not None or action.choices is not None):
                seen.add((family, action.dest))
                found.append((script, action, rule))
    return found


def test_each_option_with_a_rule_or_choices_refuses_a_bad_value():
    """Beside the random draws: every option with a rule or choices, with one bad value each."""
    for script, action, rule in _sweep():
        with workspace() as folder:
            assert_refused(script, *command_line(script.argv(folder), action, _first_bad(action, rule)), folder)
        DRAW_COUNT["sweep"] += 1


def _first_bad(action: argparse.Action, rule) -> str:
    if isinstance(rule, Number):
        if action.type is int and not math.isinf(rule.low) and math.ceil(rule.low) - 1 not in rule.special:
            return str(math.ceil(rule.low) - 1)
        return "nan"
    if isinstance(rule, Existing):
        return "missing"
    if isinstance(rule, Writable):
        return "a_file/out"
    return "no_such_choice"


def test_the_draw_count_is_reported():
    """Runs after the draws: the number of bad values tried (``pytest -s`` shows it)."""
    print(f"\nbad values tried in-process: {DRAW_COUNT} ({sum(DRAW_COUNT.values())})")


# The real command line, once per script: ``python -m scripts.X`` with a bad value, in a fresh folder.
SUBPROCESS_CASES = [
    ("unlearn", ["--model", "model", "--data", "data", "--method", "ga", "--learning_rate", "-1", "--max_steps", "1"]),
    ("finetune", ["--model", "model", "--data", "data", "--max_steps", "nan"]),
    ("evaluate", ["--model", "model", "--data", "data", "--output_dir", "a_file/out", "--bootstrap", "10"]),
    (
        "probe",
        [
            "--model",
            "model",
            "--adapter",
            "model",
            "--gold",
            "data",
            "--data",
            "data",
            "--k",
            "nan",
            "--output_dir",
            "o",
        ],
    ),
    ("push", ["--adapter", "missing", "--repo", "user/name", "--dry-run", "out"]),
    ("report", ["model", "--out", "a_file"]),
    ("quickstart", ["--out", "out", "--persons", "1"]),
]


def run_scripts(cases: list[tuple[str, list[str]]], root: Path) -> dict[str, str]:
    """Run each ``python -m scripts.NAME ARGV`` at the same time, each in a fresh folder under ``root``; assert exit
    code 2, one ``error:`` line and nothing written for each; their stderr by name."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    runs = {}
    for name, argv in cases:
        folder = root / name
        for inputs in ("model", "data"):
            (folder / inputs).mkdir(parents=True)
        (folder / "a_file").write_text("not a folder\n")
        command = [sys.executable, "-m", f"scripts.{name}", *argv]
        pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
        runs[name] = (subprocess.Popen(command, cwd=folder, env=env, text=True, **pipes), folder, _tree(folder))
    errors = {}
    for name, (process, folder, before) in runs.items():
        _, errors[name] = process.communicate(timeout=600)
        err = errors[name]
        assert process.returncode == 2, f"{name}: {err[-2000:]}"
        assert len(err.splitlines()) == 1 and err.startswith("error: "), f"{name}: {err[-2000:]}"
        assert _tree(folder) == before, f"{name} wrote {sorted(_tree(folder) - before)}"
    return errors


def test_the_issue_case_on_the_command_line(tmp_path):
    """``python -m scripts.unlearn ... --learning_rate -1 --max_steps 1`` was an optimiser traceback, exit code 1."""
    errors = run_scripts(SUBPROCESS_CASES[:1], tmp_path)
    assert errors["unlearn"] == "error: --learning_rate must be a finite number > 0 (got -1.0)\n"


@pytest.mark.slow  # six starts of torch at once: about 30 s on 2 free cores
def test_every_script_on_the_command_line(tmp_path):
    run_scripts(SUBPROCESS_CASES[1:], tmp_path)


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("learning_rate", 0, "--learning_rate must be a finite number > 0 (got 0)"),
        ("learning_rate", -1.0, "--learning_rate must be a finite number > 0 (got -1.0)"),
        ("learning_rate", math.nan, "--learning_rate must be a finite number > 0 (got nan)"),
        ("learning_rate", math.inf, "--learning_rate must be a finite number > 0 (got inf)"),
        ("learning_rate", 1e-3, None),
        ("learning_rate", "abc", "--learning_rate must be a finite number > 0 (got 'abc')"),
        ("learning_rate", None, "--learning_rate must be a finite number > 0 (got None)"),
        ("max_steps", -1, None),
        ("max_steps", 0, "--max_steps must be an integer in [1, 2147483647], or -1 (use --num_train_epochs) (got 0)"),
        ("max_steps", 2**31, "--max_steps must be an integer in [1, 2147483647], or -1 (use --num_train_epochs)"),
        ("max_steps", 2.0, "--max_steps must be an integer"),
        ("max_steps", True, "--max_steps must be an integer"),
        ("num_train_epochs", 0.5, None),
        ("num_train_epochs", 0.0, "--num_train_epochs must be a finite number in (0, 2147483647] (got 0.0)"),
        ("lora_dropout", 0.0, None),
        ("lora_dropout", 1.0, "--lora_dropout must be a finite number in [0, 1) (got 1.0)"),
        ("adam_beta2", 0.999, None),
        ("adam_beta2", -0.1, "--adam_beta2 must be a finite number in [0, 1)"),
        ("seed", 0, None),
        ("seed", 2**32, "--seed must be an integer in [0, 4294967295]"),
        ("seed", -1, "--seed must be an integer in [0, 4294967295] (got -1)"),
        ("beta", 0.1, None),
        ("beta", 0.0, "--beta must be a finite number > 0 (got 0.0)"),
        ("retain_weight", 0.0, None),
        ("retain_weight", -0.5, "--retain_weight must be a finite number >= 0 (got -0.5)"),
        ("gamma", -2.0, None),
        ("gamma", math.nan, "--gamma must be a finite number (got nan)"),
        ("k", 1.0, None),
        ("k", 0.0, "--k must be a finite number in (0, 1] (got 0.0)"),
        ("max_samples", None, None),
        ("max_samples", 0, "--max_samples must be an integer in [1, 2147483647] (got 0)"),
        ("relearn_steps", [1, 5, 20], None),
        ("relearn_steps", [0, 5], "--relearn_steps must be an integer in [1, 2147483647] (got [0, 5]: 0 among them)"),
        ("bootstrap", 0, None),
        ("bootstrap", 10**7, "--bootstrap must be an integer in [0, 1000000]"),
        ("port", 7860, None),
        ("port", 70000, "--port must be an integer in [1, 65535] (got 70000)"),
        ("persons", 1, "--persons must be an integer in [2, 500] (got 1)"),
        ("model", "user/name", None),
        ("model", "/no/such/model", "--model must be an existing folder or a Hub id USER/NAME[@REVISION] (got "),
        ("output_dir", "/no/such/parent/out", None),  # created with its parents
        ("no_rule_for_this", math.nan, None),
    ],
)
def test_the_rule_table_on_hand_picked_values(name, value, error):
    if error is None:
        check_options({name: value})
    else:
        with pytest.raises(UsageError) as raised:
            check_options({name: value})
        assert str(raised.value).startswith(error)


def test_paths_that_cannot_be_written_or_read(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for value, problem in [
        (a_file, "not a folder"),
        (a_file / "out", "is a file"),
        (a_file / "deeper" / "out", "is a file"),
    ]:
        with pytest.raises(UsageError, match=problem):
            check_options({"output_dir": str(value)})
    check_options({"output_dir": str(tmp_path / "new" / "deeper")})
    check_options({"out": str(a_file)}, rules={"out": Writable("file")})
    with pytest.raises(UsageError, match="not a file"):
        check_options({"out": str(tmp_path)}, rules={"out": Writable("file")})
    with pytest.raises(UsageError, match="not found"):
        check_options({"summary": str(tmp_path / "summary.json")})
    with pytest.raises(UsageError, match=r"'/no/such' not found"):
        check_options({"modality_adapters": [str(tmp_path), "/no/such"]})


def test_one_line_errors_and_flags_named_as_the_parser_spells_them(capsys):
    parser = argparse.ArgumentParser(prog="x")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--mode", choices=["a", "b"])
    with pytest.raises(SystemExit) as exit_info:
        one_line_errors(parser).parse_args(["--mode", "c"])
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: argument --mode: invalid choice: 'c'")
    with pytest.raises(UsageError, match=r"^--batch-size must be an integer in \[1, 2147483647\] \(got 0\)$"):
        parse_checked(parser, ["--batch-size", "0"])
    assert parse_checked(parser, ["--batch-size", "3"]).batch_size == 3
