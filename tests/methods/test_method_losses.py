"""The pure losses of DPO, LLMU, SCRUB, RMU, SKU and SimNPO against values computed by hand (IDK: a stub test)."""

from __future__ import annotations

import math

import pytest
import torch
from peft import LoraConfig, get_peft_model

from unlearn.methods import get_method
from unlearn.methods.dpo import dpo_loss
from unlearn.methods.llmu import llmu_loss
from unlearn.methods.rmu import control_vector, masked_mse, misdirection, predicting_positions
from unlearn.methods.scrub import MAX, MIN, scrub_max_loss, scrub_min_loss, scrub_phase
from unlearn.methods.simnpo import answer_lengths, simnpo_loss
from unlearn.methods.sku import negate_lora, sku_loss

T = torch.tensor


def log_sigmoid(z: float) -> float:
    return -math.log(1 + math.exp(-z))


def test_simnpo_loss_by_hand():
    # beta 2, gamma 0.5: z_1 = -(2/2)(-2) - 0.5 = 1.5 and z_2 = -(2/3)(-6) - 0.5 = 3.5.
    expected = -(2 / 2) * (log_sigmoid(1.5) + log_sigmoid(3.5)) / 2
    loss = simnpo_loss(T([-2.0, -6.0]), T([2, 3]), beta=2.0, gamma=0.5)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(0.115582, abs=1e-6)


def test_simnpo_normalises_by_the_answer_length():
    # The same per-token log-probability gives the same loss whatever the answer length.
    short = simnpo_loss(T([-1.0]), T([1]), beta=2.5, gamma=0.0)
    long = simnpo_loss(T([-5.0]), T([5]), beta=2.5, gamma=0.0)
    assert short.item() == pytest.approx(long.item())


def test_answer_lengths_count_the_shifted_answer_tokens():
    labels = T([[-100, -100, 5, 6], [-100, 7, 8, 9], [-100, -100, -100, -100]])
    assert answer_lengths(labels).tolist() == [2, 3, 1]  # an empty answer counts 1 (no division by zero)


def test_dpo_loss_by_hand():
    # Sample 1: (−3 − −5) − (−4 − −2) = 4, beta 0.5 → 2.  Sample 2: (−3 − −2) − (−1 − −2) = −2 → −1.
    loss = dpo_loss(T([-3.0, -3.0]), T([-4.0, -1.0]), T([-5.0, -2.0]), T([-2.0, -2.0]), beta=0.5)
    assert loss.item() == pytest.approx(-(log_sigmoid(2.0) + log_sigmoid(-1.0)) / 2, abs=1e-6)
    assert loss.item() == pytest.approx(0.720095, abs=1e-6)


def test_dpo_prefers_the_chosen_answer():
    # Raising the chosen answer's probability lowers the loss; raising the rejected one's raises it.
    base = dpo_loss(T([-3.0]), T([-3.0]), T([-3.0]), T([-3.0]), beta=0.1)
    assert base.item() == pytest.approx(math.log(2))
    assert dpo_loss(T([-2.0]), T([-3.0]), T([-3.0]), T([-3.0]), beta=0.1) < base
    assert dpo_loss(T([-3.0]), T([-2.0]), T([-3.0]), T([-3.0]), beta=0.1) > base


def test_llmu_loss_by_hand():
    # -0.5 * 2 + 1.0 * 3 + 2.0 * 0.25 = 2.5: ascent on f, descent on the mismatch, KL kept small.
    loss = llmu_loss(T(2.0), T(3.0), T(0.25), forget_weight=0.5, mismatch_weight=1.0, kl_weight=2.0)
    assert loss.item() == pytest.approx(2.5)


def test_sku_stage_one_strengthens_f_and_diverges_on_r():
    # 0.5 * 2 + 1.0 * 3 - 2.0 * 0.25 = 3.5: descent on f and on the mismatch, the KL on r raised.
    loss = sku_loss(T(2.0), T(3.0), T(0.25), forget_weight=0.5, mismatch_weight=1.0, kl_weight=2.0)
    assert loss.item() == pytest.approx(3.5)


def test_scrub_phases_alternate_by_optimiser_step():
    assert [scrub_phase(step, max_steps=2, min_steps=1) for step in range(6)] == [MAX, MAX, MIN, MAX, MAX, MIN]
    assert [scrub_phase(step, max_steps=1, min_steps=1) for step in range(4)] == [MAX, MIN, MAX, MIN]


def test_scrub_losses_by_hand():
    assert scrub_max_loss(T(0.3)).item() == pytest.approx(-0.3)  # minimising it raises KL on f
    assert scrub_min_loss(T(0.3), T(2.0), kl_weight=1.0, task_weight=0.5).item() == pytest.approx(0.3 + 1.0)


def test_rmu_control_vector_has_norm_c_and_the_hidden_size():
    vector = control_vector(64, coefficient=6.5, seed=3)
    assert vector.shape == (64,)
    assert vector.norm().item() == pytest.approx(6.5, rel=1e-6)
    assert (vector >= 0).all(), "a uniform [0, 1) direction, as in RMU"
    assert torch.equal(vector, control_vector(64, coefficient=6.5, seed=3))
    assert not torch.equal(vector, control_vector(64, coefficient=6.5, seed=4))


def test_rmu_predicting_positions_are_shifted_from_the_labels():
    # Answer tokens at 2 and 3 (then padding): positions 1 and 2 predict them.
    labels = T([[-100, -100, 5, 6, -100]])
    assert predicting_positions(labels).tolist() == [[False, True, True, False, False]]


def test_rmu_masked_mse_by_hand():
    hidden = T([[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [5.0, 5.0]]])
    reference = T([[[1.0, 0.0], [0.0, 0.0]], [[0.0, 1.0], [9.0, 9.0]]])
    mask = T([[True, False], [True, False]])
    # ((1-1)^2 + (2-0)^2 + (0-0)^2 + (0-1)^2) / (2 positions * 2 dims) = 5 / 4.
    assert masked_mse(hidden, reference, mask).item() == pytest.approx(1.25)


def test_rmu_misdirection_broadcasts_one_vector_over_batch_and_tokens():
    hidden = T([[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [5.0, 5.0]]])
    control = T([1.0, 0.0])
    mask = T([[True, True], [True, False]])
    # ||(0,2)||^2 + ||(2,4)||^2 + ||(-1,0)||^2 = 4 + 20 + 1 = 25 over 3 positions * 2 dims.
    assert misdirection(hidden, mask, control).item() == pytest.approx(25 / 6)


@pytest.mark.parametrize("shape", [(2, 1), (1, 1, 2), (3,)])
def test_rmu_misdirection_rejects_a_control_vector_of_another_shape(shape):
    hidden = torch.zeros(2, 2, 2)
    with pytest.raises(ValueError, match="control vector"):
        misdirection(hidden, torch.ones(2, 2, dtype=torch.bool), torch.ones(shape))


def test_sku_negation_flips_the_lora_weight_change():
    torch.manual_seed(0)
    config = LoraConfig(r=2, lora_alpha=4, target_modules=["0"])
    model = get_peft_model(torch.nn.Sequential(torch.nn.Linear(4, 3)), config)
    layer = model.base_model.model[0]
    torch.nn.init.normal_(layer.lora_B["default"].weight)
    lora_a = layer.lora_A["default"].weight.detach().clone()
    learned = layer.get_delta_weight("default").detach().clone()
    assert learned.abs().sum() > 0
    x = torch.randn(5, 4)
    base = layer.base_layer(x).detach()

    assert negate_lora(model) == 1
    assert torch.allclose(layer.get_delta_weight("default"), -learned)
    assert torch.equal(layer.lora_A["default"].weight, lora_a), "only B changes sign (A too would cancel out)"
    assert torch.allclose(model(x), base - x @ learned.T, atol=1e-6)


def test_sku_refuses_to_finish_when_there_is_no_lora_layer_to_negate():
    with pytest.raises(ValueError, match="no active LoRA layer"):
        get_method("sku")().finish(torch.nn.Sequential(torch.nn.Linear(4, 3)))
