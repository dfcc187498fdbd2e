"""Every loss against a value computed by hand on tiny tensors, and every method's wiring on a stub model."""

from __future__ import annotations

import math

import pytest
import torch

from tests.stub_models import StubPeftModel, stub_batch
from unlearn.errors import UsageError
from unlearn.methods import METHODS, get_method
from unlearn.methods.logprobs import answer_kl, answer_logprob, answer_nll
from unlearn.methods.npo import npo_loss
from unlearn.training.trainer import ensure_finite, ensure_finite_gradients, ensure_finite_weights, lora_l1

LN2, LN3, LN4 = math.log(2), math.log(3), math.log(4)
IGNORE = -100


def logits_of(*rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


# Vocabulary of 2. Position 0 predicts label 1, position 1 predicts label 2 (the causal shift).
# Position 0: logits (0, 0) -> p = (1/2, 1/2).  Position 1: logits (ln 3, 0) -> p = (3/4, 1/4).
LOGITS = logits_of([[0.0, 0.0], [LN3, 0.0], [5.0, -5.0]])
LABELS = torch.tensor([[IGNORE, 0, 1]])  # answer tokens: 0 at t=1 (p 1/2), 1 at t=2 (p 1/4)


def test_answer_nll_is_the_mean_over_answer_tokens():
    # -(log 1/2 + log 1/4) / 2 = (ln 2 + ln 4) / 2
    assert answer_nll(LOGITS, LABELS).item() == pytest.approx((LN2 + LN4) / 2, abs=1e-6)


def test_answer_nll_counts_tokens_over_the_whole_batch():
    second = logits_of([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    logits = torch.cat([LOGITS, second])
    labels = torch.cat([LABELS, torch.tensor([[IGNORE, IGNORE, 1]])])  # one answer token, p = 1/2
    # three answer tokens in all: (ln 2 + ln 4 + ln 2) / 3
    assert answer_nll(logits, labels).item() == pytest.approx((LN2 + LN4 + LN2) / 3, abs=1e-6)


def test_answer_logprob_sums_per_sample_and_skips_masked_labels():
    assert answer_logprob(LOGITS, LABELS).tolist() == pytest.approx([-(LN2 + LN4)], abs=1e-6)
    masked = torch.tensor([[IGNORE, IGNORE, 1]])  # only log 1/4 is left
    assert answer_logprob(LOGITS, masked).tolist() == pytest.approx([-LN4], abs=1e-6)


def test_answer_kl_reference_to_model_per_answer_token():
    reference = logits_of([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])  # p_ref = (1/2, 1/2) everywhere
    # t=0: model p = (1/2, 1/2) -> KL 0. t=1: model p = (3/4, 1/4) -> 1/2 ln(2/3) + 1/2 ln 2 = 1/2 ln(4/3).
    expected = (0.0 + 0.5 * math.log(4 / 3)) / 2
    assert answer_kl(reference, LOGITS, LABELS).item() == pytest.approx(expected, abs=1e-6)
    only_second = torch.tensor([[IGNORE, IGNORE, 1]])
    assert answer_kl(reference, LOGITS, only_second).item() == pytest.approx(0.5 * math.log(4 / 3), abs=1e-6)


def test_npo_loss_by_hand():
    # beta 0.5; ratios p/p_ref = e^0 and e^1: (2/0.5) * mean(ln(1 + 1^0.5), ln(1 + e^0.5))
    value = npo_loss(torch.tensor([-1.0, -2.0]), torch.tensor([-1.0, -3.0]), beta=0.5)
    assert value.item() == pytest.approx(4 * (0.693147 + 0.974077) / 2, abs=1e-5)


def test_lora_l1_sums_trainable_lora_weights_only():
    model = torch.nn.Module()
    model.lora_A = torch.nn.Linear(2, 1, bias=False)
    model.frozen_lora_B = torch.nn.Linear(2, 1, bias=False)
    model.base = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.lora_A.weight.copy_(torch.tensor([[1.0, -2.0]]))
        model.frozen_lora_B.weight.fill_(10.0)
        model.base.weight.fill_(10.0)
    model.frozen_lora_B.weight.requires_grad_(False)
    assert lora_l1(model).item() == pytest.approx(3.0)


def test_ensure_finite_rejects_nan_and_infinity():
    ensure_finite(torch.tensor(1.5), step=0)
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(UsageError, match="diverged"):
            ensure_finite(torch.tensor(bad), step=3)


def test_ensure_finite_gradients_and_weights_reject_nan_and_infinity():
    model = torch.nn.Linear(2, 1)
    model.weight.grad = torch.ones(1, 2)
    ensure_finite_gradients(model, step=0)  # a parameter without a gradient (the bias) is skipped
    ensure_finite_weights(model)
    for bad in (float("nan"), float("inf")):
        model.weight.grad[0, 1] = bad
        with pytest.raises(UsageError, match="non-finite gradient at step 4"):
            ensure_finite_gradients(model, step=4)
        with torch.no_grad():
            model.bias.fill_(bad)
        with pytest.raises(UsageError, match="NaN or infinite"):
            ensure_finite_weights(model)
    model.bias.requires_grad_(False)
    ensure_finite_weights(model)  # only trainable weights are checked


UNIFORM = logits_of([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
# Forget: model p(answer) = 1/2 * 1/4 (log -ln 8), reference uniform (log -ln 4); retain: model as LOGITS too.
STUB = StubPeftModel({"forget": LOGITS, "retain": LOGITS}, {"forget": UNIFORM, "retain": UNIFORM})
BATCHES = {name: stub_batch(name, LABELS) for name in ("forget", "retain")}
NLL = (LN2 + LN4) / 2
KL = 0.25 * math.log(4 / 3)
NPO_HALF = 4 * math.log(1 + (1 / 8 / (1 / 4)) ** 0.5)  # beta 0.5, one sample: p/p_ref = 1/2
EXPECTED = {
    "retain_ft": ({}, NLL),
    "ga": ({}, -NLL),
    "gd": ({"forget_weight": 2.0, "retain_weight": 3.0}, -2 * NLL + 3 * NLL),
    "kl": ({"forget_weight": 1.0, "kl_weight": 2.0}, -NLL + 2 * KL),
    "npo": ({"beta": 0.5}, NPO_HALF),
    "npo_gd": ({"beta": 0.5, "retain_weight": 2.0}, NPO_HALF + 2 * NLL),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_method_loss_on_a_stub_model(name):
    method_class = get_method(name)
    options, expected = EXPECTED[name]
    method = method_class(method_class.options_class(**options))
    needed = method.examples(forget="f", retain="r")
    loss, logs = method.loss(STUB, {key: BATCHES[key] for key in needed}, step=0)
    assert loss.item() == pytest.approx(expected, abs=1e-5)
    assert logs and all(isinstance(value, float) for value in logs.values())


def test_methods_read_only_the_batches_they_need():
    assert set(get_method("ga")().examples("f", "r")) == {"forget"}
    assert set(get_method("npo")().examples("f", "r")) == {"forget"}
    assert set(get_method("retain_ft")().examples("f", "r")) == {"retain"}
    for name in ("gd", "kl", "npo_gd"):
        assert set(get_method(name)().examples("f", "r")) == {"forget", "retain"}


def test_the_first_methods_are_registered_with_descriptions():
    assert set(EXPECTED) <= set(METHODS)
    assert all(METHODS[name].description for name in METHODS)


def test_npo_uses_only_the_answer_tokens_the_labels_keep():
    reference = logits_of([[LN3, 0.0], [0.0, LN3], [0.0, 0.0]])  # p_ref: 3/4 for token 0 at t=0, 3/4 for 1 at t=1
    stub = StubPeftModel({"forget": LOGITS}, {"forget": reference})
    method = get_method("npo")(get_method("npo").options_class(beta=1.0))
    both = {"forget": stub_batch("forget", LABELS)}
    last = {"forget": stub_batch("forget", torch.tensor([[IGNORE, IGNORE, 1]]))}
    # both answer tokens: p = 1/2 * 1/4, p_ref = 3/4 * 3/4 -> ratio 2/9; the last only: 1/4 over 3/4 -> ratio 1/3
    assert method.loss(stub, both, 0)[0].item() == pytest.approx(2 * math.log(1 + 2 / 9), abs=1e-5)
    assert method.loss(stub, last, 0)[0].item() == pytest.approx(2 * math.log(1 + 1 / 3), abs=1e-5)
