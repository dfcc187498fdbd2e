"""The relearning attack's training: measured at step 0 and the asked steps, one run standing for several."""

from __future__ import annotations

import pytest
import torch

from unlearn.data import split_examples
from unlearn.errors import UsageError
from unlearn.models import load_trainable_adapter
from unlearn.offline.random_adapters import write_random_adapters
from unlearn.training.relearn import relearn


@pytest.fixture(scope="module")
def adapter(tiny_model, tmp_path_factory):
    return write_random_adapters(tiny_model, tmp_path_factory.mktemp("relearn"), [{"method": "npo"}])[0]


def lora_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters() if "lora_" in name}


def relearned(tiny_model, adapter, examples, steps):
    model, processor = load_trainable_adapter(tiny_model, str(adapter))
    seen = {}
    modes = []

    def measure(step):
        seen[step] = lora_weights(model)
        modes.append(model.training)

    relearn(model, processor, examples, steps, measure, learning_rate=1e-2, batch_size=2, seed=0)
    return model, seen, modes


def test_one_run_gives_the_model_each_shorter_run_would_end_with(tiny_model, mini_clear, adapter):
    examples = split_examples(mini_clear, "forget10")[:6]
    model, seen, modes = relearned(tiny_model, adapter, examples, [1, 3])
    assert sorted(seen) == [0, 1, 3] and modes == [False, False, False], "measured in eval mode"
    assert any(not torch.equal(seen[0][n], seen[3][n]) for n in seen[0]), "relearning changed the adapter"
    _, short, _ = relearned(tiny_model, adapter, examples, [1])
    for name, weight in short[1].items():
        torch.testing.assert_close(weight, seen[1][name], msg=f"{name} after 1 step differs between the runs")
    frozen = [name for name, p in model.named_parameters() if p.requires_grad and "lora_" not in name]
    assert frozen == [], "only the adapter's LoRA weights train"


def test_relearning_refuses_no_examples_and_steps_below_one(tiny_model, adapter):
    model, processor = load_trainable_adapter(tiny_model, str(adapter))
    with pytest.raises(UsageError, match="examples"):
        relearn(model, processor, [], [1], lambda step: None, 1e-3, 2)
    with pytest.raises(UsageError, match="at least 1"):
        relearn(model, processor, [object()], [0, 2], lambda step: None, 1e-3, 2)
