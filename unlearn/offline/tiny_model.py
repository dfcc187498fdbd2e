"""Tiny checkpoints of each tested family for the offline default: random weights that learn the real-world sets.

Each is saved like any Hub checkpoint (config, safetensors weights, tokenizer, processor with the family's chat
template), so the rest of the project loads it through ``AutoModelForImageTextToText`` / ``AutoProcessor``. The
families' parts are in ``tiny_llava.py`` and ``tiny_qwen.py``.
"""

from __future__ import annotations

import string
import tempfile
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerFast,
    PrinterCallback,
    ProcessorMixin,
    Trainer,
    TrainingArguments,
)

from unlearn.collate import TrainingCollator
from unlearn.data import CLEAR_CONFIGS, load_clear, world_examples
from unlearn.errors import UsageError
from unlearn.offline.tiny_llava import LLAVA
from unlearn.offline.tiny_qwen import QWEN2_5_VL, QWEN2_VL
from unlearn.offline.tiny_spec import TinyFamily, TinySpec
from unlearn.prompts import TEXT_REFUSALS, VISUAL_REFUSALS, all_prompt_texts

TINY_FAMILIES = {family.name: family for family in (LLAVA, QWEN2_VL, QWEN2_5_VL)}
__all__ = ["TINY_FAMILIES", "TinySpec", "write_tiny_model"]


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


def train_tokenizer(texts: list[str], vocab_size: int, family: TinyFamily) -> PreTrainedTokenizerFast:
    """A small BPE tokenizer with the family's special tokens; printable ASCII is always encodable.

    With ``family.newline_tokens`` newlines are tokens of their own, so a prompt ending in one (Qwen's
    ``assistant\n``) tokenizes as a prefix of the prompt and answer.
    """
    specials = family.special_tokens
    tokenizer = Tokenizer(models.BPE(unk_token=specials["unk_token"]))
    tokenizer.normalizer = normalizers.NFKC()
    newlines = [pre_tokenizers.Split("\n", behavior="isolated")] if family.newline_tokens else []
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [*newlines, pre_tokenizers.Metaspace(), pre_tokenizers.Punctuation()]
    )
    tokenizer.decoder = decoders.Metaspace()
    trained = [specials[key] for key in ("unk_token", "bos_token", "eos_token") if key in specials]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=trained,
        initial_alphabet=list(string.printable.strip()) + ["▁", "\n"],
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    tokenizer.add_special_tokens([*family.extra_tokens, specials["pad_token"]])
    if "bos_token" in specials:
        bos = specials["bos_token"]
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, tokenizer.token_to_id(bos))]
        )
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, padding_side="left", **specials)
    fast.add_special_tokens({"additional_special_tokens": list(family.extra_tokens)})
    return fast


def learn_world_knowledge(
    model: PreTrainedModel, processor: ProcessorMixin, data: str, spec: TinySpec, seed: int
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


def write_tiny_model(
    data: str, out: str | Path, spec: TinySpec | None = None, seed: int = 0, family: str = "llava"
) -> Path:
    """Train a tokenizer on the CLEAR folder ``data``, build the tiny model of ``family``, let it learn the
    real-world sets (:func:`learn_world_knowledge`) and save both to ``out``."""
    spec = spec or TinySpec()
    if family not in TINY_FAMILIES:
        raise UsageError(f"unknown family {family!r}; choose from {', '.join(TINY_FAMILIES)}")
    if not Path(data).is_dir():
        raise UsageError(f"dataset folder not found: {data}")
    parts = TINY_FAMILIES[family]
    fixed = all_prompt_texts() + list(VISUAL_REFUSALS + TEXT_REFUSALS) + list(parts.scaffold) * 100
    tokenizer = train_tokenizer(dataset_texts(data) + fixed, spec.vocab_size, parts)
    processor = parts.build_processor(tokenizer, spec)
    model = parts.build_model(tokenizer, spec, seed)
    for config in (model.config, model.generation_config):
        config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    learn_world_knowledge(model, processor, data, spec, seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    return out
