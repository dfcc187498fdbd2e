"""The layout's rules, read from the imports (``ast``): data flows one way, from the library to evaluation to scripts.

- nothing in ``unlearn/`` imports ``eval``, ``scripts`` or ``app``;
- nothing in ``eval/`` trains: it imports neither ``unlearn.training`` nor ``unlearn.methods``;
- ``unlearn/`` keeps a small core at its top and one folder per stage.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "unlearn": ("eval", "scripts", "app"),
    "eval": ("unlearn.training", "unlearn.methods", "scripts", "app"),
}
STAGES = ("training", "methods", "hub", "serving", "offline")
MAX_CORE_MODULES = 8


def imported_modules(source: str) -> set[str]:
    """Every module an ``import`` or ``from ... import`` names anywhere in ``source`` (also inside functions)."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def violations(package: str, files: dict[str, str]) -> list[str]:
    """``file imports module`` for each import of ``files`` (name -> source) that ``package``'s rule forbids."""
    found = []
    for name, source in sorted(files.items()):
        for module in sorted(imported_modules(source)):
            if any(module == banned or module.startswith(f"{banned}.") for banned in FORBIDDEN[package]):
                found.append(f"{name} imports {module}")
    return found


def sources(package: str) -> dict[str, str]:
    return {str(path.relative_to(REPO)): path.read_text(encoding="utf-8") for path in (REPO / package).rglob("*.py")}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_flow_one_way(package):
    files = sources(package)
    assert files, f"no Python files found in {package}/"
    assert violations(package, files) == []


def test_the_checker_sees_imports_at_any_depth():
    nested = "def f():\n    from unlearn.training.runs import finetune\n    import scripts.quickstart\n"
    assert violations("eval", {"x.py": nested}) == [
        "x.py imports scripts.quickstart",
        "x.py imports unlearn.training.runs",
        "x.py imports unlearn.training.runs.finetune",
    ]
    assert violations("unlearn", {"y.py": "from eval import metrics\nimport evaluation\n"}) == [
        "y.py imports eval",
        "y.py imports eval.metrics",
    ]


def test_unlearn_has_a_small_core_and_a_folder_per_stage():
    core = sorted(path.name for path in (REPO / "unlearn").glob("*.py"))
    assert len(core) <= MAX_CORE_MODULES, core
    for stage in STAGES:
        assert (REPO / "unlearn" / stage / "__init__.py").is_file(), f"unlearn/{stage}/ is a package"
