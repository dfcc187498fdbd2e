"""Answer losses and greedy generations for batches of examples, built with ``unlearn.collate``.

Scoring pads on the right (``training_batch``), so every row keeps positions 0, 1, ... and the causal mask hides
the padding after it; generation pads on the left (``generation_batch``), and ``generate`` derives the positions from
the attention mask. Both therefore give the same numbers as one example at a time.
"""

from __future__ import annotations

import inspect

import torch
from peft import PeftModel
from transformers import BatchFeature, PreTrainedModel, ProcessorMixin
from transformers.modeling_outputs import BaseModelOutputWithPooling

from unlearn.collate import IGNORE_INDEX, generation_batch, training_batch
from unlearn.prompts import Example


def _base(model: PreTrainedModel | PeftModel) -> PreTrainedModel:
    return model.get_base_model() if isinstance(model, PeftModel) else model


def shares_image_features(model: PreTrainedModel | PeftModel) -> bool:
    """True when the model takes precomputed image features (``mm_encoder_outputs``), so an image shared by several
    answers can be encoded once."""
    base = _base(model)
    return hasattr(base, "get_image_features") and "mm_encoder_outputs" in inspect.signature(base.forward).parameters


def _on_device(model: PreTrainedModel | PeftModel, batch: BatchFeature) -> BatchFeature:
    return batch.to(model.device, dtype=model.dtype)


TEXT_INPUTS = ("input_ids", "attention_mask", "mm_token_type_ids", "token_type_ids")


def _image_inputs_of(batch: BatchFeature, rows: list[int]) -> dict[str, torch.Tensor]:
    """The image inputs of ``rows`` alone (one image per row): row-indexed tensors (LLaVA's ``pixel_values``), or
    with ``image_grid_thw`` (Qwen2-VL) the rows' own patches of the flat ``pixel_values``."""
    inputs = {key: value for key, value in batch.items() if key not in TEXT_INPUTS}
    if "image_grid_thw" in inputs:
        grid = inputs["image_grid_thw"]
        patches = inputs.pop("pixel_values").split(grid.prod(dim=-1).tolist())
        return {"pixel_values": torch.cat([patches[row] for row in rows]), "image_grid_thw": grid[rows]}
    return {key: value[rows] for key, value in inputs.items()}


def _shared_image_inputs(model: PreTrainedModel | PeftModel, batch: BatchFeature, owners: list[int]) -> None:
    """Replace the batch's ``pixel_values`` by image features computed once per group (``owners[row]``).

    The other image inputs stay: Qwen2-VL still reads ``image_grid_thw`` for its positions.
    """
    groups = sorted(set(owners))
    first_rows = [owners.index(group) for group in groups]
    wanted = inspect.signature(_base(model).get_image_features).parameters
    inputs = {key: value for key, value in _image_inputs_of(batch, first_rows).items() if key in wanted}
    features = model.get_image_features(**inputs, return_dict=True).pooler_output
    batch.pop("pixel_values")
    per_row = [features[groups.index(owner)] for owner in owners]
    batch["mm_encoder_outputs"] = {"image": BaseModelOutputWithPooling(pooler_output=per_row)}


@torch.no_grad()
def answer_losses(
    model: PreTrainedModel | PeftModel, processor: ProcessorMixin, groups: list[list[Example]]
) -> list[list[float]]:
    """Mean answer NLL of every example, all in one forward pass; ``groups`` holds the answers of each sample.

    ``loss = sum_t -log p(y_t | y_<t, prompt, image) / T`` over the labelled tokens (the answer and the
    token that ends it). All examples of a group must share one prompt and image: where the model allows it
    (:func:`shares_image_features`) and every example has an image, the image is encoded once per group. Logits
    are computed only at the positions that predict a label.
    """
    examples = [example for group in groups for example in group]
    owners = [g for g, group in enumerate(groups) for _ in group]
    batch = _on_device(model, training_batch(processor, examples))
    labels = batch.pop("labels")
    with_images = all(example.image is not None for example in examples)
    if with_images and shares_image_features(model):
        _shared_image_inputs(model, batch, owners)
    predicts = torch.zeros_like(labels, dtype=torch.bool)
    predicts[:, :-1] = labels[:, 1:] != IGNORE_INDEX
    logits = model(**batch, logits_to_keep=predicts, use_cache=False).logits.float()
    targets = labels[:, 1:][labels[:, 1:] != IGNORE_INDEX]
    token_nll = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    rows = predicts.nonzero()[:, 0]
    total = torch.zeros(len(examples), device=token_nll.device).index_add_(0, rows, token_nll)
    count = torch.zeros(len(examples), device=token_nll.device).index_add_(0, rows, torch.ones_like(token_nll))
    flat = (total / count).tolist()
    out, start = [], 0
    for group in groups:
        out.append(flat[start : start + len(group)])
        start += len(group)
    return out


@torch.no_grad()
def generate(
    model: PreTrainedModel | PeftModel, processor: ProcessorMixin, examples: list[Example], max_new_tokens: int
) -> list[str]:
    """Greedy answers to the examples' prompts (with their images), new tokens only, special tokens skipped."""
    batch = _on_device(model, generation_batch(processor, examples))
    pad = processor.tokenizer.pad_token_id
    output = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad)
    new_tokens = output[:, batch["input_ids"].shape[1] :]
    return [text.strip() for text in processor.batch_decode(new_tokens, skip_special_tokens=True)]


def reference_length(processor: ProcessorMixin, references: list[str]) -> int:
    """Tokens in the longest reference (without special tokens)."""
    if not references:
        return 0
    return max(len(ids) for ids in processor.tokenizer(references, add_special_tokens=False)["input_ids"])
