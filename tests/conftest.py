"""Shared session fixtures: a small mini-CLEAR and the tiny model, written once per test session, and the real
LLaVA-1.5 processor files from ``../shared``."""

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no network here; never let a test wait on the Hub
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# The tiny models run several times faster on one thread than on two contended ones.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
# The real llava-hf/llava-1.5-7b-hf configuration, tokenizer, chat template and processor files (no weights).
REAL_LLAVA = REPO.parent / "shared" / "models" / "llava-1.5-7b-hf"
REAL_LLAVA_FILES = ("config.json", "tokenizer.json", "preprocessor_config.json")
MINI_CLEAR = {"persons": 10, "seed": 0, "images_per_person": 3, "questions_per_person": 4}


@pytest.fixture(scope="session")
def mini_clear(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Path (str) of a mini-CLEAR folder with MINI_CLEAR's settings, loadable with ``load_clear(config, path)``."""
    from unlearn.offline.mini_clear import write_mini_clear

    return str(write_mini_clear(tmp_path_factory.mktemp("mini_clear"), **MINI_CLEAR))


# The families every family-parametrised test runs for (Qwen2.5-VL has its own smoke test: tests/core/test_families.py).
TESTED_FAMILIES = ("llava", "qwen2_vl")


@pytest.fixture(scope="session")
def tiny_models(mini_clear: str, tmp_path_factory: pytest.TempPathFactory):
    """``tiny_models(family)``: the path (str) of that family's tiny checkpoint for ``mini_clear``, built once."""
    from unlearn.offline.tiny_model import write_tiny_model

    built: dict[str, str] = {}

    def get(family: str) -> str:
        if family not in built:
            built[family] = str(write_tiny_model(mini_clear, tmp_path_factory.mktemp(f"tiny_{family}"), family=family))
        return built[family]

    return get


@pytest.fixture(scope="session")
def tiny_model(tiny_models) -> str:
    """Path (str) of the tiny LLaVA checkpoint (tokenizer trained on ``mini_clear``): the offline default."""
    return tiny_models("llava")


@pytest.fixture(scope="session", params=TESTED_FAMILIES)
def family_model(request: pytest.FixtureRequest, tiny_models) -> str:
    """The tiny checkpoint of each tested family in turn: a test using it runs once per family."""
    return tiny_models(request.param)


@pytest.fixture(scope="session")
def real_llava() -> Path:
    """The folder of the real LLaVA-1.5 files; the test is skipped, saying where they were looked for, without them."""
    missing = [name for name in REAL_LLAVA_FILES if not (REAL_LLAVA / name).is_file()]
    if missing:
        pytest.skip(f"needs the real llava-hf/llava-1.5-7b-hf files in {REAL_LLAVA} (missing {', '.join(missing)})")
    return REAL_LLAVA


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups into the test ids
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """One worker per module (``--dist loadgroup``), so module fixtures are built once; a module sets
    ``XDIST_GROUP`` to share a worker, and so a session fixture, with another (the app's first-start tests share the
    one demo build)."""
    for item in items:
        module = getattr(item, "module", None)
        group = getattr(module, "XDIST_GROUP", None) or (module.__name__ if module is not None else item.nodeid)
        item.add_marker(pytest.mark.xdist_group(group))
