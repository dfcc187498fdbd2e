"""Configuration parsing (YAML file, flags, checks), the resolved run configuration, and forget/retain pairing."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoProcessor

from unlearn.data import data_fingerprint, split_examples
from unlearn.errors import UsageError
from unlearn.methods import METHODS, get_method
from unlearn.models import LoraSettings
from unlearn.prompts import Example
from unlearn.training.config import parse_finetune_args, parse_unlearn_args, run_config
from unlearn.training.pairing import ForgetRetainPairs, PairCollator
from unlearn.training.trainer import write_run_config


def unlearn_argv(tmp_path, *extra: str) -> list[str]:
    return ["--model", "some/model", "--output_dir", str(tmp_path / "out"), *extra]


def test_flags_override_the_yaml_file(tmp_path):
    config_file = tmp_path / "run.yaml"
    config_file.write_text("method: npo\nbeta: 0.3\nlearning_rate: 0.001\nforget: forget05\nl1_lambda: 0.5\n")
    config, options = parse_unlearn_args(unlearn_argv(tmp_path, "--config", str(config_file), "--beta", "0.7"))
    assert (config.method, config.forget, config.retain) == ("npo", "forget05", "retain95")
    assert (config.learning_rate, config.l1_lambda, options.beta) == (0.001, 0.5, 0.7)


def test_paper_defaults_for_unlearning(tmp_path):
    config, options = parse_unlearn_args(unlearn_argv(tmp_path, "--method", "npo"))
    batching = (config.per_device_train_batch_size, config.gradient_accumulation_steps)
    assert (config.num_train_epochs, *batching) == (5, 1, 2)
    lora = (config.lora_r, config.lora_alpha, config.lora_dropout)
    assert (config.learning_rate, *lora, config.l1_lambda) == (1e-5, 8, 32, LoraSettings().dropout, 0.0)
    assert LoraSettings().dropout == 0.05
    assert options.beta == 0.1


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_parses_with_its_options(tmp_path, name):
    config, options = parse_unlearn_args(unlearn_argv(tmp_path, "--method", name))
    assert config.method == name and isinstance(options, get_method(name).options_class)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ((), "--method is required"),
        (("--method", "forgetful"), "unknown method"),
        (("--method", "ga", "--forget", "forget20"), "unknown forget split"),
        (("--method", "ga", "--retain", "retain50"), "unknown retain split"),
        (("--method", "ga", "--forget-modality", "audio"), "unknown modality"),
        (("--method", "ga", "--quantization", "3bit"), "unknown quantization"),
        (("--method", "ga", "--no-such-flag", "1"), "not used"),
    ],
)
def test_bad_unlearning_options_are_usage_errors(tmp_path, extra, message):
    with pytest.raises(UsageError, match=message):
        parse_unlearn_args(unlearn_argv(tmp_path, *extra))


def test_bad_fine_tuning_options_are_usage_errors(tmp_path):
    base = ["--model", "some/model", "--output_dir", str(tmp_path)]
    with pytest.raises(UsageError, match="unknown CLEAR config"):
        parse_finetune_args([*base, "--split", "everything"])
    with pytest.raises(UsageError, match="cannot fine-tune"):
        parse_finetune_args([*base, "--split", "real_faces"])
    with pytest.raises(UsageError, match="--full"):
        parse_finetune_args([*base, "--full", "--quantization", "4bit"])
    with pytest.raises(UsageError, match="cannot replay 'forget10'"):
        parse_finetune_args([*base, "--replay", "real_faces,forget10"])
    assert parse_finetune_args([*base, "--replay", "real_faces, real_world"]).replay_configs() == [
        "real_faces",
        "real_world",
    ]
    config_file = tmp_path / "bad.yaml"
    config_file.write_text("learning_rat: 0.1\n")
    with pytest.raises(UsageError, match="unknown options .*learning_rat"):
        parse_finetune_args([*base, "--config", str(config_file)])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU behaviour")
def test_mixed_precision_is_off_on_the_cpu(tmp_path):
    config = parse_finetune_args(["--model", "m/m", "--output_dir", str(tmp_path), "--bf16", "true"])
    assert not config.bf16 and not config.fp16 and config.use_cpu


def test_run_config_holds_the_run_and_never_a_token(tmp_path):
    config, options = parse_unlearn_args(unlearn_argv(tmp_path, "--method", "npo_gd", "--hub_token", "hf_secret"))
    values = run_config(config, options)
    for key in ("method", "forget", "retain", "model", "data", "forget_modality", "quantization", "learning_rate"):
        assert key in values
    assert values["beta"] == 0.1 and values["retain_weight"] == 1.0
    assert not any(key.endswith("_token") for key in values)
    assert "hf_secret" not in str(values)


def test_run_config_pins_the_data_and_records_face_naming(tmp_path, mini_clear):
    config, options = parse_unlearn_args([*unlearn_argv(tmp_path, "--method", "ga"), "--data", mini_clear])
    values = run_config(config, options)
    assert values["face_naming"] is False, "CLEAR trains no face naming unless asked"
    assert values["data_fingerprint"] == data_fingerprint(mini_clear)
    config_file = tmp_path / "run_config.json"
    config_file.write_text(json.dumps(values))
    again, _ = parse_unlearn_args(["--config", str(config_file), "--face-naming", "true"])
    assert again.face_naming is True and again.data == mini_clear, "the record is skipped when read back"


def test_run_config_records_the_options_asked_for_and_not_the_resumed_checkpoint(tmp_path):
    argv = unlearn_argv(tmp_path, "--method", "ga", "--bf16", "true", "--resume_from_checkpoint", "true")
    values = run_config(*parse_unlearn_args(argv))
    assert "resume_from_checkpoint" not in values
    assert (values["bf16"], values["fp16"], values["use_cpu"]) == (True, False, False), "not what a CPU forces"


def examples(prefix: str, count: int) -> list[Example]:
    return [Example(f"{prefix}{i}?", f"{prefix}{i}") for i in range(count)]


def test_pairs_cycle_through_the_retain_set_epoch_after_epoch():
    pairs = ForgetRetainPairs(examples("f", 3), examples("r", 7), seed=0)
    seen = []
    for epoch in range(3):
        pairs.epoch = epoch
        seen += [pairs[i][1].answer for i in range(len(pairs))]
    assert [pairs[i][0].answer for i in range(3)] == ["f0", "f1", "f2"]
    assert sorted(seen[:7]) == [f"r{i}" for i in range(7)], "every retain example before any repeats"
    assert seen[7:9] == seen[:2], "then the same cycle again"


def test_pairs_depend_only_on_the_seed():
    def partners(seed: int) -> list[str]:
        pairs = ForgetRetainPairs(examples("f", 5), examples("r", 20), seed=seed)
        return [pairs[i][1].answer for i in range(5)]

    assert partners(1) == partners(1)
    assert partners(1) != partners(2)


def test_pair_collator_builds_named_batches_with_pixel_values(mini_clear, tiny_model):
    processor = AutoProcessor.from_pretrained(tiny_model)
    forget = split_examples(mini_clear, "forget10", "visual")[:2]
    retain = split_examples(mini_clear, "retain90", "text")[:2]
    batches = PairCollator(processor, get_method("gd")().examples)(list(zip(forget, retain, strict=True)))
    assert set(batches) == {"forget", "retain"}
    assert batches["forget"]["pixel_values"].shape[0] == 2
    assert "pixel_values" not in batches["retain"], "text-only rows carry no image"
    assert (batches["forget"]["labels"] != -100).any()
    only_forget = PairCollator(processor, get_method("ga")().examples)(list(zip(forget, retain, strict=True)))
    assert set(only_forget) == {"forget"}


def test_empty_splits_are_usage_errors():
    with pytest.raises(UsageError, match="must both hold examples"):
        ForgetRetainPairs([], examples("r", 2), seed=0)


def test_run_config_json_reproduces_the_run_through_config(tmp_path):
    first = parse_unlearn_args(unlearn_argv(tmp_path, "--method", "kl", "--kl_weight", "3", "--lora_r", "4"))
    saved = tmp_path / "run_config.json"
    write_run_config(tmp_path, run_config(*first))
    again = parse_unlearn_args(["--config", str(saved)])
    assert json.loads(saved.read_text()) == json.loads(json.dumps(run_config(*again), default=str))
