"""Shared session fixtures: a small mini-CLEAR written once per test session."""

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no network here; never let a test wait on the Hub
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# The tiny models run several times faster on one thread than on two contended ones.
torch.set_num_threads(1)

MINI_CLEAR = {"persons": 10, "seed": 0, "images_per_person": 3, "questions_per_person": 4}


@pytest.fixture(scope="session")
def mini_clear(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Path (str) of a mini-CLEAR folder with MINI_CLEAR's settings, loadable with ``load_clear(config, path)``."""
    from unlearn.synthetic import write_mini_clear

    return str(write_mini_clear(tmp_path_factory.mktemp("mini_clear"), **MINI_CLEAR))


@pytest.fixture(scope="session")
def tiny_model(mini_clear: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Path (str) of a tiny randomly initialised LLaVA checkpoint whose tokenizer was trained on ``mini_clear``."""
    from unlearn.tiny import write_tiny_model

    return str(write_tiny_model(mini_clear, tmp_path_factory.mktemp("tiny_model")))
