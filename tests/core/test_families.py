"""Model families: the anatomy discovered from each model, the labels of each chat template, the pixel budget, and
the Qwen processors built without torchvision."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from eval.evaluator import evaluate
from unlearn.architectures import ARCHITECTURES, FAMILIES, PixelBudget, anatomy, anatomy_of_checkpoint, architecture_of
from unlearn.collate import IGNORE_INDEX, answer_end, answer_texts, prompt_texts, training_batch
from unlearn.data import split_examples
from unlearn.errors import UsageError
from unlearn.models import LoraSettings, add_lora, load_model, pixels_of
from unlearn.offline.tiny_model import TINY_FAMILIES
from unlearn.prompts import Example, chat_messages
from unlearn.training.config import UnlearnConfig
from unlearn.training.runs import unlearn

# The patterns the project named LLaVA-1.5's layers with before they were discovered.
LLAVA_LANGUAGE = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
LLAVA_PROJECTOR = r".*multi_modal_projector\.linear_[12]"
LLAVA_VISION = r".*vision_tower.*\.(q_proj|k_proj|v_proj|out_proj|fc1|fc2)"


def family_of(path: str) -> str:
    return architecture_of(json.loads((Path(path) / "config.json").read_text())["model_type"]).family


def matched(pattern: str, names: list[str]) -> set[str]:
    return {name for name in names if re.fullmatch(pattern, name)}


def test_every_family_of_the_table_has_a_tiny_model():
    assert set(FAMILIES) == set(TINY_FAMILIES)
    assert all(row.hub_ids for row in ARCHITECTURES)


def test_real_llava_discovered_layers_are_exactly_the_ones_it_always_had(real_llava):
    parts = anatomy_of_checkpoint(real_llava)
    from transformers import AutoConfig, AutoModelForImageTextToText

    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(AutoConfig.from_pretrained(real_llava))
    names = [name for name, _ in model.named_modules()]
    assert (parts.language, parts.vision, parts.projector) == (
        "model.language_model",
        "model.vision_tower",
        "model.multi_modal_projector",
    )
    for old, new, count in (
        (LLAVA_LANGUAGE, parts.language_targets, 32 * 7),
        (LLAVA_PROJECTOR, parts.projector_targets, 2),
        (LLAVA_VISION, parts.vision_targets, 24 * 6),
    ):
        assert matched(new, names) == matched(old, names) and len(matched(old, names)) == count
    assert parts.not_quantized() == ["lm_head", r"model\.vision_tower", r"model\.multi_modal_projector"]


def test_discovered_targets_are_exactly_the_linear_layers_of_each_part(family_model):
    model, _ = load_model(family_model)
    parts = anatomy(model)
    linears = {name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}
    names = [name for name, _ in model.named_modules()]
    language = {name for name in linears if name.startswith(f"{parts.language}.")}
    projector = {name for name in linears if name.startswith(f"{parts.projector}.")}
    vision = {name for name in linears if name.startswith(f"{parts.vision}.")} - projector
    assert language and vision and projector
    assert matched(parts.language_targets, names) == language
    assert matched(parts.vision_targets, names) == vision
    assert matched(parts.projector_targets, names) == projector
    adapted = add_lora(model, LoraSettings(projector=True))
    wrapped = {name.removeprefix("base_model.model.") for name, m in adapted.named_modules() if hasattr(m, "lora_A")}
    assert wrapped == language | projector, "LoRA on the language model and the projector, nothing else"
    assert anatomy(adapted) == parts, "a model with LoRA layers has the same anatomy"


def test_4bit_quantizes_the_language_model_only(family_model):
    model, _ = load_model(family_model, quantization="4bit")
    parts = anatomy(model)
    quantized = {name for name, module in model.named_modules() if type(module).__name__ == "Linear4bit"}
    assert quantized and all(name.startswith(f"{parts.language}.") for name in quantized)


def test_labels_cover_the_answer_and_its_end_token_after_image_expansion(family_model, mini_clear):
    _, processor = load_model(family_model)
    examples = split_examples(mini_clear, "forget10", "both", face_naming=True)[:2] + [
        Example("Where was Dorin Valemo born?", "Dorin Valemo was born in Kestria.", None)
    ]
    batch = training_batch(processor, examples)
    tokenizer = processor.tokenizer
    end = tokenizer.convert_tokens_to_ids({"llava": "</s>", "qwen2_vl": "<|im_end|>"}[family_of(family_model)])
    for row, example in enumerate(examples):
        labels = batch["labels"][row]
        kept = labels[labels != IGNORE_INDEX]
        assert kept[-1].item() == end
        assert tokenizer.decode(kept[:-1]).strip() == example.answer
        assert (batch["input_ids"][row] == processor.image_token_id).sum().item() == (
            16 if example.image is not None else 0
        )
        positions = (labels != IGNORE_INDEX).nonzero().flatten()
        assert torch.equal(batch["input_ids"][row, positions], kept)
        assert positions[-1].item() == int(batch["attention_mask"][row].sum()) - 1, "nothing after the end token"


def test_qwen_template_ends_the_answer_with_im_end_and_trains_nothing_after(tiny_models):
    _, processor = load_model(tiny_models("qwen2_vl"))
    example = Example("Who is this?", "Dorin Valemo", Image.new("RGB", (64, 64)))
    rendered = processor.apply_chat_template(chat_messages(example, with_answer=True))
    assert rendered.endswith("<|im_start|>assistant\nDorin Valemo<|im_end|>\n")
    (text,) = answer_texts(processor, [example])
    assert text == rendered.removesuffix("\n"), "trained up to <|im_end|>: the newline after it is not"
    ids = training_batch(processor, [example])["input_ids"][0]
    assert ids[-1].item() == processor.tokenizer.convert_tokens_to_ids("<|im_end|>")


def test_the_pixel_budget_bounds_the_image_tokens_and_fixed_size_families_ignore_it(tiny_models):
    big = Example("Who is this?", "Dorin Valemo", Image.new("RGB", (512, 384)))
    _, qwen = load_model(tiny_models("qwen2_vl"), pixels=PixelBudget(min_pixels=256, max_pixels=64 * 64))
    tokens = (training_batch(qwen, [big])["input_ids"] == qwen.image_token_id).sum().item()
    assert 0 < tokens <= 64 * 64 // 16**2, "at most max_pixels / (patch * merge)^2 image tokens"
    _, roomy = load_model(tiny_models("qwen2_vl"), pixels=PixelBudget(min_pixels=256, max_pixels=256 * 256))
    assert (training_batch(roomy, [big])["input_ids"] == roomy.image_token_id).sum().item() > tokens
    _, llava = load_model(tiny_models("llava"), pixels=PixelBudget(min_pixels=256, max_pixels=64 * 64))
    assert llava.image_processor.size == {"shortest_edge": 32}, "LLaVA's fixed input size is kept"
    with pytest.raises(UsageError, match="min_pixels"):
        PixelBudget(min_pixels=10, max_pixels=5)


def test_qwen_processor_loads_without_torchvision_and_saves_as_qwen(tiny_models, tmp_path):
    _, processor = load_model(tiny_models("qwen2_vl"))
    assert type(processor).__name__ == "Qwen2VLProcessor" and not hasattr(processor, "video_processor")
    processor.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "processor_config.json").read_text())["processor_class"] == "Qwen2VLProcessor"


def test_evaluation_reads_the_pixel_budget_from_the_adapter_or_the_fine_tuned_model(tmp_path):
    (tmp_path / "run_config.json").write_text(json.dumps({"min_pixels": 1024, "max_pixels": 4096}))
    assert pixels_of(None, None, str(tmp_path)) == PixelBudget(1024, 4096)
    assert pixels_of(None, 8192, str(tmp_path)) == PixelBudget(1024, 8192), "a given bound wins"
    assert pixels_of(None, None, None) == PixelBudget()
    assert pixels_of(None, None, None, str(tmp_path)) == PixelBudget(1024, 4096), "a fine-tuned model's own budget"


def test_qwen2_5_vl_builds_trains_4bit_unlearning_steps_and_evaluates(tiny_models, mini_clear, tmp_path):
    model = tiny_models("qwen2_5_vl")
    config = UnlearnConfig(
        model=model,
        data=mini_clear,
        method="npo_gd",
        quantization="4bit",
        output_dir=str(tmp_path / "npo_gd"),
        max_steps=3,
        per_device_train_batch_size=2,
        learning_rate=1e-3,
        report_to="none",
        disable_tqdm=True,
        save_strategy="no",
        min_pixels=256,
        max_pixels=64 * 64,
    )
    out = unlearn(config)
    recorded = json.loads((out / "run_config.json").read_text())
    assert (recorded["min_pixels"], recorded["max_pixels"]) == (256, 64 * 64)
    adapted, processor = load_model(model, quantization="4bit", adapter=str(out))
    assert type(adapted.get_base_model()).__name__ == "Qwen2_5_VLForConditionalGeneration"
    summary = evaluate(adapted, processor, mini_clear, max_samples=2, bootstrap=0, output_dir=tmp_path / "eval")
    assert 0 <= summary["forget_face"]["probability"] <= 1 and summary["forget_caption"]["rouge_l"] >= 0


def hub_layout(tiny: str, folder: Path) -> Path:
    """``tiny`` laid out as the Hub's Qwen2-VL repos are: ``preprocessor_config.json`` naming the processor class
    and holding Qwen's own pixel range (up to 12.8 M pixels), no ``processor_config.json``."""
    shutil.copytree(tiny, folder)
    saved = json.loads((folder / "processor_config.json").read_text())
    image = {
        **saved.pop("image_processor"),
        "min_pixels": 3136,
        "max_pixels": 12845056,
        "processor_class": saved["processor_class"],
    }
    image["size"] = {"shortest_edge": 3136, "longest_edge": 12845056}
    (folder / "preprocessor_config.json").write_text(json.dumps(image))
    (folder / "processor_config.json").unlink()
    return folder


def test_a_hub_layout_qwen_loads_without_torchvision_and_keeps_the_project_budget(tiny_models, tmp_path):
    folder = hub_layout(tiny_models("qwen2_vl"), tmp_path / "hub")
    _, processor = load_model(str(folder), pixels=PixelBudget(min_pixels=256, max_pixels=64 * 64))
    assert type(processor).__name__ == "Qwen2VLProcessor"
    big = Example("Who is this?", "Dorin Valemo", Image.new("RGB", (512, 384)))
    tokens = (training_batch(processor, [big])["input_ids"] == processor.image_token_id).sum().item()
    assert 0 < tokens <= 16, "the checkpoint's own 12.8 M-pixel range is overridden"


def test_the_answer_ends_with_the_templates_special_token_else_end_of_sequence(tiny_model):
    _, processor = load_model(tiny_model)
    tokenizer = processor.tokenizer
    assert answer_end(processor, " ") == tokenizer.eos_token == "</s>"
    assert answer_end(processor, f"{tokenizer.pad_token}\nUSER:") == tokenizer.pad_token, "the template's own token"
    empty = Example("Where was Dorin Valemo born?", "", None)
    (text,) = answer_texts(processor, [empty])
    assert text == prompt_texts(processor, [empty])[0] + "</s>", "an empty answer is its end token alone"
    repeated = Example("Say ASSISTANT", "ASSISTANT", None)
    assert answer_texts(processor, [repeated])[0].endswith("ASSISTANT: ASSISTANT</s>")
