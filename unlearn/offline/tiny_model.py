"""A tiny LLaVA-architecture checkpoint for the offline default: random weights that learn the real-world sets.

It is saved like any Hub checkpoint (config, safetensors weights, tokenizer, processor with LLaVA-1.5's chat
template), so the rest of the project loads it through ``AutoModelForImageTextToText`` / ``AutoProcessor``.
"""

from __future__ import annotations

import string
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
    PrinterCallback,
    Trainer,
    TrainingArguments,
)

from unlearn.collate import TrainingCollator
from unlearn.data import CLEAR_CONFIGS, load_clear, world_examples
from unlearn.errors import UsageError
from unlearn.prompts import TEXT_REFUSALS, VISUAL_REFUSALS, all_prompt_texts

# LLaVA-1.5's chat template (llava-hf/llava-1.5-7b-hf): ``USER: <image>\n{question} ASSISTANT: {answer} ``.
LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}"
    "{% endfor %}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
SPECIAL_TOKENS = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}
IMAGE_TOKEN = "<image>"


@dataclass
class TinySpec:
    """Sizes of the tiny model; the defaults learn mini-CLEAR's faces, captions and facts within minutes on a CPU."""

    image_size: int = field(default=32, metadata={"help": "image side in pixels"})
    patch_size: int = field(default=8, metadata={"help": "vision patch side; (image/patch)^2 image tokens"})
    vision_hidden: int = field(default=64, metadata={"help": "hidden size of the CLIP vision tower"})
    vision_layers: int = field(default=2, metadata={"help": "layers of the vision tower"})
    text_hidden: int = field(default=128, metadata={"help": "hidden size of the Llama text model"})
    text_layers: int = field(default=2, metadata={"help": "layers of the text model"})
    heads: int = field(default=4, metadata={"help": "attention heads (vision and text)"})
    vocab_size: int = field(default=2000, metadata={"help": "BPE vocabulary size (before special tokens)"})
    max_positions: int = field(default=512, metadata={"help": "maximum sequence length"})
    world_epochs: int = field(
        default=60, metadata={"help": "epochs of 'pretraining' on real_faces and real_world (0: random weights)"}
    )


def dataset_texts(data: str) -> list[str]:
    """Every string in a CLEAR folder that a model may read or write (captions, names, questions, answers, options)."""
    texts: list[str] = []
    for config in ("full+tofu", "forget10_perturbed", "retain_perturbed", "real_faces", "real_world"):
        dataset = load_clear(config, data)
        for column in CLEAR_CONFIGS[config]:
            if column == "image":
                continue
            for value in dataset[column]:
                values = value if isinstance(value, list) else [value]
                texts.extend(v for v in values if v)
    return texts


def train_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A small BPE tokenizer with LLaVA's special tokens; printable ASCII is always encodable."""
    tokenizer = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS["unk_token"]))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Metaspace(), pre_tokenizers.Punctuation()])
    tokenizer.decoder = decoders.Metaspace()
    specials = [SPECIAL_TOKENS["unk_token"], SPECIAL_TOKENS["bos_token"], SPECIAL_TOKENS["eos_token"]]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=list(string.printable.strip()) + ["▁", "\n"],
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    tokenizer.add_special_tokens([IMAGE_TOKEN, SPECIAL_TOKENS["pad_token"]])
    bos = SPECIAL_TOKENS["bos_token"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, tokenizer.token_to_id(bos))]
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, padding_side="left", **SPECIAL_TOKENS)
    fast.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    return fast


def build_processor(tokenizer: PreTrainedTokenizerFast, spec: TinySpec) -> LlavaProcessor:
    """A LLaVA processor: CLIP preprocessing at ``spec.image_size`` and LLaVA-1.5's chat template."""
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": spec.image_size},
        crop_size={"height": spec.image_size, "width": spec.image_size},
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=spec.patch_size,
        vision_feature_select_strategy="default",
        chat_template=LLAVA_CHAT_TEMPLATE,
        image_token=IMAGE_TOKEN,
        num_additional_image_tokens=1,
    )


def build_model(tokenizer: PreTrainedTokenizerFast, spec: TinySpec, seed: int) -> LlavaForConditionalGeneration:
    """A randomly initialised LLaVA (CLIP vision tower, Llama text model) sized by ``spec``."""
    vision = CLIPVisionConfig(
        hidden_size=spec.vision_hidden,
        intermediate_size=spec.vision_hidden * 4,
        num_hidden_layers=spec.vision_layers,
        num_attention_heads=spec.heads,
        image_size=spec.image_size,
        patch_size=spec.patch_size,
        projection_dim=spec.vision_hidden,
    )
    text = LlamaConfig(
        hidden_size=spec.text_hidden,
        intermediate_size=spec.text_hidden * 2,
        num_hidden_layers=spec.text_layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.heads,
        vocab_size=len(tokenizer),
        max_position_embeddings=spec.max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
        tie_word_embeddings=False,
    )
    config.pad_token_id = tokenizer.pad_token_id
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model


def learn_world_knowledge(
    model: LlavaForConditionalGeneration, processor: LlavaProcessor, data: str, spec: TinySpec, seed: int
) -> None:
    """The tiny model's stand-in for pretraining: it learns the ``real_faces`` names (after CLEAR's face prompt) and
    the ``real_world`` answers, as a real base model knows real people and things before any CLEAR fine-tuning.

    Without it the real-world figures of every model are at chance (and ROUGE-L 0), so model utility, their
    harmonic mean with the retain figures, would be 0 for every model and tell them apart by nothing.
    """
    if spec.world_epochs == 0:
        return
    examples = world_examples(data, ["real_faces", "real_world"])
    with tempfile.TemporaryDirectory(prefix="tiny-world-") as scratch:
        args = TrainingArguments(
            output_dir=scratch,
            num_train_epochs=spec.world_epochs,
            learning_rate=2e-3,
            per_device_train_batch_size=20,
            save_strategy="no",
            logging_strategy="no",
            report_to="none",
            disable_tqdm=True,
            remove_unused_columns=False,
            dataloader_pin_memory=False,
            seed=seed,
        )
        trainer = Trainer(model=model, args=args, train_dataset=examples, data_collator=TrainingCollator(processor))
        trainer.remove_callback(PrinterCallback)  # no log lines: the caller prints its own output
        trainer.train()
    model.eval()


def write_tiny_model(data: str, out: str | Path, spec: TinySpec | None = None, seed: int = 0) -> Path:
    """Train a tokenizer on the CLEAR folder ``data``, build the tiny model, let it learn the real-world sets
    (:func:`learn_world_knowledge`) and save both to ``out``."""
    spec = spec or TinySpec()
    if not Path(data).is_dir():
        raise UsageError(f"dataset folder not found: {data}")
    scaffold = ["USER:", "ASSISTANT:"] * 100  # the chat template's words become single tokens
    fixed = all_prompt_texts() + list(VISUAL_REFUSALS + TEXT_REFUSALS) + scaffold
    tokenizer = train_tokenizer(dataset_texts(data) + fixed, spec.vocab_size)
    processor = build_processor(tokenizer, spec)
    model = build_model(tokenizer, spec, seed)
    learn_world_knowledge(model, processor, data, spec, seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    return out
