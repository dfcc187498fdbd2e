"""IDK, DPO, LLMU, SCRUB, SKU and SimNPO wired as methods: their losses on a stub model, computed by hand, and the
examples they collate (refusals, mismatched answers)."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image
from transformers import AutoProcessor, BatchFeature

from tests.stub_models import StubPeftModel, stub_batch
from unlearn.data import split_examples
from unlearn.errors import UsageError
from unlearn.methods import METHODS, get_method
from unlearn.methods.mismatch import MismatchedAnswers, answer_kind
from unlearn.prompts import FACE_PROMPT, TEXT_REFUSALS, VISUAL_REFUSALS, Example
from unlearn.training.pairing import PairCollator

LN2, LN3 = math.log(2), math.log(3)
IGNORE = -100
# Vocabulary of 2, answer tokens 0 then 1 (predicted at positions 0 and 1).
# PEAKED: position 0 (0, 0) -> p(0) = 1/2; position 1 (ln 3, 0) -> p(1) = 1/4. log p(y) = -ln 8, NLL = 1.5 ln 2.
# UNIFORM: p = 1/2 everywhere. log p(y) = -ln 4, NLL = ln 2.
PEAKED = torch.tensor([[[0.0, 0.0], [LN3, 0.0], [5.0, -5.0]]])
UNIFORM = torch.zeros(1, 3, 2)
LABELS = torch.tensor([[IGNORE, 0, 1]])
NLL_PEAKED, NLL_UNIFORM = 1.5 * LN2, LN2
KL_UNIFORM_PEAKED = 0.25 * math.log(4 / 3)  # KL(uniform || peaked) per answer token: (0 + 1/2 ln(4/3)) / 2


def batches(*names: str) -> dict[str, BatchFeature]:
    return {name: stub_batch(name, LABELS) for name in names}


def method(name: str, **options):
    method_class = get_method(name)
    return method_class(method_class.options_class(**options))


def test_idk_is_the_nll_of_the_refusal_plus_the_retain_term():
    stub = StubPeftModel({"refusal": PEAKED, "retain": UNIFORM}, {})
    loss, logs = method("idk", retain_weight=0.5).loss(stub, batches("refusal", "retain"), step=0)
    assert loss.item() == pytest.approx(NLL_PEAKED + 0.5 * NLL_UNIFORM, abs=1e-6)
    assert logs == pytest.approx({"refusal_nll": NLL_PEAKED, "retain_nll": NLL_UNIFORM})


def test_dpo_returns_its_preference_loss():
    # chosen (refusal): log p - log p_ref = -ln 8 + ln 4 = -ln 2; rejected (forget): -ln 4 + ln 8 = ln 2.
    # beta 1: -log sigmoid(-2 ln 2) = ln(1 + 4) = ln 5.
    stub = StubPeftModel({"refusal": PEAKED, "forget": UNIFORM}, {"refusal": UNIFORM, "forget": PEAKED})
    loss, logs = method("dpo", beta=1.0, retain_weight=0.0).loss(stub, batches("refusal", "forget"), step=0)
    assert loss.item() == pytest.approx(math.log(5), abs=1e-6)
    assert logs["dpo"] == pytest.approx(math.log(5), abs=1e-6)
    stub.logits["retain"] = PEAKED
    loss, _ = method("dpo", beta=1.0, retain_weight=2.0).loss(stub, batches("refusal", "forget", "retain"), step=0)
    assert loss.item() == pytest.approx(math.log(5) + 2 * NLL_PEAKED, abs=1e-6)


def test_simnpo_needs_no_reference_model():
    # log p = -3 ln 2, |y| = 2, beta 2, gamma ln 2: z = 3 ln 2 - ln 2 = 2 ln 2 -> -(2/2) log sigmoid(z) = ln(5/4).
    stub = StubPeftModel({"forget": PEAKED, "retain": UNIFORM}, {})
    options = {"beta": 2.0, "gamma": LN2, "retain_weight": 3.0}
    loss, logs = method("simnpo", **options).loss(stub, batches("forget", "retain"), step=0)
    assert loss.item() == pytest.approx(math.log(5 / 4) + 3 * NLL_UNIFORM, abs=1e-6)
    assert logs["simnpo"] == pytest.approx(math.log(5 / 4), abs=1e-6)
    assert "forget" in stub.seen and not stub.disabled


@pytest.mark.parametrize(("name", "forget_sign", "kl_sign"), [("llmu", -1, 1), ("sku", 1, -1)])
def test_llmu_and_sku_signs_by_hand(name, forget_sign, kl_sign):
    stub = StubPeftModel(
        {"forget": PEAKED, "mismatch": UNIFORM, "retain": PEAKED}, {"forget": UNIFORM, "retain": UNIFORM}
    )
    weights = {"forget_weight": 0.5, "mismatch_weight": 2.0, "kl_weight": 3.0}
    loss, logs = method(name, **weights).loss(stub, batches("forget", "mismatch", "retain"), step=0)
    expected = forget_sign * 0.5 * NLL_PEAKED + 2.0 * NLL_UNIFORM + kl_sign * 3.0 * KL_UNIFORM_PEAKED
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert logs == pytest.approx(
        {"forget_nll": NLL_PEAKED, "mismatch_nll": NLL_UNIFORM, "retain_kl": KL_UNIFORM_PEAKED}, abs=1e-6
    )


def test_scrub_steps_are_either_max_or_min_never_their_sum():
    stub = StubPeftModel({"forget": PEAKED, "retain": PEAKED}, {"forget": UNIFORM, "retain": UNIFORM})
    scrub = method("scrub", max_steps_per_cycle=1, min_steps_per_cycle=2, kl_weight=2.0, task_weight=0.5)
    losses = []
    for step in range(4):
        stub.seen.clear()
        loss, logs = scrub.loss(stub, batches("forget", "retain"), step=step)
        losses.append((loss.item(), set(logs), set(stub.seen)))
    max_step = (-KL_UNIFORM_PEAKED, {"forget_kl"}, {"forget"})
    min_step = (2.0 * KL_UNIFORM_PEAKED + 0.5 * NLL_PEAKED, {"retain_kl", "retain_nll"}, {"retain"})
    for (loss, keys, seen), (expected, expected_keys, expected_seen) in zip(
        losses, [max_step, min_step, min_step, max_step], strict=True
    ):
        assert loss == pytest.approx(expected, abs=1e-6)
        assert (keys, seen) == (expected_keys, expected_seen)


def test_scrub_rejects_an_empty_cycle():
    with pytest.raises(UsageError, match="not both 0"):
        method("scrub", max_steps_per_cycle=0, min_steps_per_cycle=0)


def test_the_documented_methods_are_registered():
    assert set(METHODS) >= {
        *("retain_ft", "ga", "gd", "kl", "npo", "npo_gd"),
        *("idk", "dpo", "llmu", "scrub", "rmu", "sku", "simnpo"),
    }


IMAGE = Image.new("RGB", (8, 8))
FORGET = [
    Example(FACE_PROMPT, "Dorin Valemo", IMAGE),
    Example(FACE_PROMPT, "Ilsa Marrow", IMAGE),
    Example("Describe the image in detail.", "A man in a red coat.", IMAGE),
    Example("What is depicted in the image?", "A woman by a lake.", IMAGE),
    Example("Where was Dorin Valemo born?", "In Kestria."),
    Example("What does Ilsa Marrow do?", "She paints."),
]


@pytest.mark.parametrize("name", ["idk", "dpo"])
def test_idk_and_dpo_refusal_examples_hold_refusals(name):
    for forget in FORGET:
        examples = get_method(name)().examples(forget, Example("q?", "retain answer"))
        refusal = examples["refusal"]
        assert (refusal.prompt, refusal.image) == (forget.prompt, forget.image)
        assert refusal.answer in (VISUAL_REFUSALS if forget.image else TEXT_REFUSALS)
        assert forget.answer not in refusal.answer
        assert examples["retain"].answer == "retain answer"
    assert get_method("dpo")().examples(FORGET[0], FORGET[4])["forget"] == FORGET[0], "rejected: the forget answer"


def test_retain_weight_zero_drops_the_retain_batch():
    for name in ("idk", "dpo", "simnpo"):
        assert "retain" not in method(name, retain_weight=0.0).examples(FORGET[0], FORGET[4])


def test_collated_refusal_batch_labels_are_the_refusal(tiny_model, mini_clear):
    processor = AutoProcessor.from_pretrained(tiny_model)
    forget = split_examples(mini_clear, "forget10")
    retain = split_examples(mini_clear, "retain90")[: len(forget)]
    collated = PairCollator(processor, get_method("dpo")().examples)(list(zip(forget, retain, strict=True)))
    tokenizer = processor.tokenizer
    for row, example in enumerate(forget):
        refusal_labels = collated["refusal"]["labels"][row]
        refusal = tokenizer.decode(refusal_labels[refusal_labels != IGNORE], skip_special_tokens=True)
        forget_labels = collated["forget"]["labels"][row]
        answer = tokenizer.decode(forget_labels[forget_labels != IGNORE], skip_special_tokens=True)
        assert refusal.replace(" ", "") in {r.replace(" ", "") for r in (*VISUAL_REFUSALS, *TEXT_REFUSALS)}
        assert answer.replace(" ", "") == example.answer.replace(" ", "")
    assert collated["refusal"]["pixel_values"].shape == collated["forget"]["pixel_values"].shape


def test_mismatched_answers_are_another_answer_of_the_same_kind():
    mismatch = MismatchedAnswers(FORGET, seed=0)
    for example in FORGET:
        other = mismatch(example)
        assert (other.prompt, other.image) == (example.prompt, example.image)
        assert other.answer != example.answer
        assert answer_kind(FORGET[[e.answer for e in FORGET].index(other.answer)]) == answer_kind(example)
    assert [answer_kind(e) for e in FORGET] == ["face", "face", "image", "image", "text", "text"]


def test_mismatched_answers_depend_only_on_the_seed():
    pool = [Example(f"Where does person {i} live?", f"In town {i}.") for i in range(40)]

    def answers(seed: int) -> list[str]:
        mismatch = MismatchedAnswers(pool, seed)
        return [mismatch(example).answer for example in pool]

    assert answers(1) == answers(1)
    assert answers(1) != answers(2)


def test_mismatch_from_another_kind_when_the_kind_has_no_other_answer():
    only = [Example(FACE_PROMPT, "Dorin Valemo", IMAGE), Example("Where?", "In Kestria.")]
    assert MismatchedAnswers(only, seed=0)(only[0]).answer == "In Kestria."
    with pytest.raises(UsageError, match="at least two"):
        MismatchedAnswers(only[:1], seed=0)


@pytest.mark.parametrize(("name", "pool"), [("llmu", "retain"), ("sku", "forget")])
def test_llmu_draws_retain_answers_and_sku_other_forget_answers(name, pool):
    retain = [Example(FACE_PROMPT, "Retain Person", IMAGE), Example("Where?", "In Retainville.")]
    chosen = get_method(name)()
    chosen.prepare(torch.nn.Module(), FORGET, retain, seed=0)
    examples = chosen.examples(FORGET[0], retain[1])
    assert set(examples) == {"forget", "mismatch", "retain"}
    assert examples["mismatch"].prompt == FORGET[0].prompt
    expected = "Retain Person" if pool == "retain" else "Ilsa Marrow"
    assert examples["mismatch"].answer == expected
