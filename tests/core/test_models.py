"""The tiny checkpoint loads like a Hub model, runs forward and generate, and trains in 4-bit with LoRA."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from unlearn import models
from unlearn.collate import generation_batch, training_batch
from unlearn.data import split_examples
from unlearn.errors import UsageError
from unlearn.models import LoraSettings, add_lora, load_model, quantization_config


@pytest.fixture(scope="module")
def batch_examples(mini_clear):
    examples = split_examples(mini_clear, "forget10")
    return [examples[0], examples[1], split_examples(mini_clear, "forget10", "text")[0]]


def test_loads_with_auto_classes_and_generates_with_image(tiny_model, batch_examples):
    model = AutoModelForImageTextToText.from_pretrained(tiny_model)
    processor = AutoProcessor.from_pretrained(tiny_model)
    assert type(model).__name__ == "LlavaForConditionalGeneration"
    batch = training_batch(processor, batch_examples)
    assert torch.isfinite(model(**batch).loss)
    prompts = generation_batch(processor, batch_examples[:1])
    assert (prompts["input_ids"] == model.config.image_token_index).sum() == 16
    output = model.generate(**prompts, max_new_tokens=4, do_sample=False)
    assert output.shape[1] > prompts["input_ids"].shape[1]


def test_tiny_template_renders_like_llava_15(tiny_model, batch_examples):
    processor = AutoProcessor.from_pretrained(tiny_model)
    from unlearn.prompts import chat_messages

    example = batch_examples[1]
    rendered = processor.apply_chat_template(chat_messages(example, with_answer=True))
    assert rendered == f"USER: <image>\n{example.prompt} ASSISTANT: {example.answer} "


def _lora_b_grads(model) -> list[float]:
    return [p.grad.abs().sum().item() for n, p in model.named_parameters() if "lora_B" in n and p.grad is not None]


def test_4bit_lora_with_gradient_checkpointing_gets_gradients_after_an_evaluation(tiny_model, batch_examples):
    model, processor = load_model(tiny_model, quantization="4bit")
    assert type(model.model.language_model.layers[0].mlp.down_proj).__name__ == "Linear4bit"
    assert type(model.lm_head).__name__ == "Linear", "lm_head stays out of quantization"
    assert type(model.model.vision_tower.encoder.layers[0].mlp.fc1).__name__ == "Linear"
    batch = training_batch(processor, batch_examples)
    model.eval()
    with torch.no_grad():  # the no-grad evaluation forward that makes bitsandbytes repack weights on some CPUs
        model(**batch)
    model = add_lora(model, LoraSettings(), gradient_checkpointing=True)
    model.train()
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert not any("vision_tower" in n for n in trainable), "the vision tower is frozen"
    model(**batch).loss.backward()
    grads = _lora_b_grads(model)
    assert len(grads) == 7 * model.config.text_config.num_hidden_layers, "all seven projections of every layer"
    assert all(g > 0 for g in grads), "every LoRA weight receives a gradient"
    first_layer_grad = [p.grad for n, p in model.named_parameters() if "layers.0.self_attn.q_proj.lora_B" in n][0]
    assert first_layer_grad.abs().sum() > 0, "gradients reach the first layer through the checkpointed blocks"


def test_a_model_folder_without_processor_files_is_a_usage_error(tiny_model, tmp_path):
    for name in ("config.json", "model.safetensors"):
        shutil.copy(Path(tiny_model) / name, tmp_path / name)
    with pytest.raises(UsageError, match="cannot load model"):
        load_model(str(tmp_path))


def test_each_process_loads_the_model_onto_its_own_gpu(tiny_model, monkeypatch):
    placed = {}

    def from_pretrained(path, **kwargs):
        placed.update(kwargs)
        return torch.nn.Linear(1, 1)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(models, "PartialState", lambda: SimpleNamespace(local_process_index=1))
    monkeypatch.setattr(models.AutoModelForImageTextToText, "from_pretrained", from_pretrained)
    load_model(tiny_model, dtype=torch.float32)
    assert placed["device_map"] == {"": 1}, "the second process of accelerate launch on the second GPU"


def test_unknown_quantization_and_missing_model_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="quantization"):
        quantization_config("3bit", torch.float32, [])
    with pytest.raises(UsageError, match="not found"):
        load_model(str(tmp_path / "missing"))
