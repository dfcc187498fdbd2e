"""Batches for training, scoring and generation, built with the processor's own chat template.

Labels are computed on the token ids *after* the processor expanded each image placeholder into the model's image
tokens, so they line up with what the model sees: -100 everywhere except the answer tokens and the token that ends
the answer. That is the template's own end of turn where it writes one (Qwen2-VL's ``<|im_end|>``), else the
end-of-sequence token (LLaVA-1.5's template ends an answer with a space only): see :func:`answer_end`.

Images are decoded here, when a batch is built (an example may only refer to its dataset row), each distinct image
object once per batch even when several examples share it (a sample's answer options do).
"""

from __future__ import annotations

import torch
from PIL import Image
from transformers import BatchFeature, ProcessorMixin

from unlearn.prompts import Example, chat_messages, decode_image

IGNORE_INDEX = -100


def _images(examples: list[Example]) -> list[Image.Image] | None:
    """The examples' images in RGB, decoded now; None when no example has one."""
    decoded: dict[int, Image.Image] = {}  # by object identity: a sample's answers share one image object
    for example in examples:
        if example.image is not None and id(example.image) not in decoded:
            decoded[id(example.image)] = decode_image(example.image).convert("RGB")
    images = [decoded[id(example.image)] for example in examples if example.image is not None]
    return images or None


def prompt_texts(processor: ProcessorMixin, examples: list[Example]) -> list[str]:
    """The rendered prompts, ending with the generation prompt (``... ASSISTANT:``)."""
    return [
        processor.apply_chat_template(chat_messages(example, with_answer=False), add_generation_prompt=True)
        for example in examples
    ]


def answer_end(processor: ProcessorMixin, rendered_after_answer: str) -> str:
    """The token that ends an answer: the special token the template writes right after it (the end of turn), or
    the tokenizer's end-of-sequence token where the template writes none (only whitespace)."""
    tokenizer = processor.tokenizer
    closing = rendered_after_answer.lstrip()
    for token in sorted(tokenizer.all_special_tokens, key=len, reverse=True):
        if token and closing.startswith(token):
            return token
    return tokenizer.eos_token


def answer_texts(processor: ProcessorMixin, examples: list[Example]) -> list[str]:
    """The rendered prompt and answer, cut after the answer and closed by :func:`answer_end`.

    Whatever the template writes after that token (a newline, the next turn) is never trained on.
    """
    texts = []
    for example, prompt in zip(examples, prompt_texts(processor, examples), strict=True):
        rendered = processor.apply_chat_template(chat_messages(example, with_answer=True))
        # The answer is looked for after the prompt, where the template writes it (else its last occurrence).
        start = rendered.find(example.answer, len(prompt)) if rendered.startswith(prompt) else -1
        start = start if start >= 0 else rendered.rfind(example.answer)
        if start < 0:
            raise ValueError("the chat template does not write the answer as given")
        end = start + len(example.answer)
        texts.append(rendered[:end] + answer_end(processor, rendered[end:]))
    return texts


def training_batch(processor: ProcessorMixin, examples: list[Example]) -> BatchFeature:
    """Right-padded prompt+answer batch with ``labels`` on the answer tokens and the token ending it only."""
    images = _images(examples)
    full = processor(
        text=answer_texts(processor, examples), images=images, padding=True, padding_side="right", return_tensors="pt"
    )
    prompts = processor(
        text=prompt_texts(processor, examples), images=images, padding=True, padding_side="right", return_tensors="pt"
    )
    labels = full["input_ids"].clone()
    labels[full["attention_mask"] == 0] = IGNORE_INDEX
    for row, prompt_length in enumerate(prompts["attention_mask"].sum(dim=1).tolist()):
        prompt_ids = prompts["input_ids"][row, :prompt_length]
        if not torch.equal(full["input_ids"][row, :prompt_length], prompt_ids):
            raise ValueError("the tokenized prompt is not a prefix of the tokenized prompt and answer")
        labels[row, :prompt_length] = IGNORE_INDEX
    full["labels"] = labels
    return full


def generation_batch(processor: ProcessorMixin, examples: list[Example]) -> BatchFeature:
    """Left-padded prompts (with their images) ready for ``model.generate``."""
    return processor(
        text=prompt_texts(processor, examples),
        images=_images(examples),
        padding=True,
        padding_side="left",
        return_tensors="pt",
    )


class TrainingCollator:
    """A ``data_collator`` for ``transformers.Trainer`` over lists of :class:`Example`."""

    def __init__(self, processor: ProcessorMixin) -> None:
        self.processor = processor

    def __call__(self, examples: list[Example]) -> BatchFeature:
        return training_batch(self.processor, examples)
