"""Answer losses and greedy generations for batches of examples, built with ``unlearn.collate``.

Scoring pads on the right (``training_batch``), so every row keeps positions 0, 1, ... and the causal mask hides
the padding after it; generation pads on the left (``generation_batch``), and ``generate`` derives the positions from
the attention mask. Both therefore give the same numbers as one example at a time.
"""

from __future__ import annotations

import inspect
import itertools
from dataclasses import dataclass

import torch
from peft import PeftModel
from transformers import BatchFeature, PreTrainedModel, ProcessorMixin
from transformers.modeling_outputs import BaseModelOutputWithPooling

from unlearn.collate import IGNORE_INDEX, answer_texts, generation_batch, prompt_texts, training_batch
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


SCORING_MODES = ("prefix", "per_option", "full")


def label_positions(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The positions that predict a label (``predicts[b, t]``: ``labels[b, t + 1]`` is one) and those labels, in
    row-major order: the ``logits_to_keep`` mask of a scoring pass and its targets."""
    predicts = torch.zeros_like(labels, dtype=torch.bool)
    predicts[:, :-1] = labels[:, 1:] != IGNORE_INDEX
    return predicts, labels[:, 1:][labels[:, 1:] != IGNORE_INDEX]


def _prompt_positions(model: PreTrainedModel | PeftModel, batch: BatchFeature) -> torch.Tensor:
    """Position ids of a left-padded prompt batch, as one right-padded forward would give its real tokens:
    ``cumsum(mask) - 1`` (``(rows, length)``), or Qwen2-VL's 3-D M-RoPE positions (``(3, rows, length)``) for
    prompts with images."""
    inner = getattr(_base(model), "model", None)
    if hasattr(inner, "get_rope_index") and "image_grid_thw" in batch:
        wanted = inspect.signature(inner.get_rope_index).parameters
        inputs = {key: value for key, value in batch.items() if key in wanted}
        return inner.get_rope_index(**inputs)[0]
    return (batch["attention_mask"].long().cumsum(dim=-1) - 1).clamp(min=0)


def answer_token_ids(processor: ProcessorMixin, examples: list[Example]) -> list[list[int]]:
    """The labelled tokens of each example (its answer and the token ending it), as ``training_batch`` labels them:
    the tokens of prompt+answer after those of the prompt. Image placeholders are single special tokens, so the
    text is tokenized without expanding them."""
    tokenizer = processor.tokenizer
    fulls = tokenizer(answer_texts(processor, examples), add_special_tokens=False)["input_ids"]
    prompts = tokenizer(prompt_texts(processor, examples), add_special_tokens=False)["input_ids"]
    answers = []
    for full, prompt in zip(fulls, prompts, strict=True):
        if full[: len(prompt)] != prompt:
            raise ValueError("the tokenized prompt is not a prefix of the tokenized prompt and answer")
        answers.append(full[len(prompt) :])
    return answers


@dataclass(frozen=True)
class PackedAnswers:
    """Every answer of each group side by side in one row: ``tokens`` (pad after the last answer), ``answer``
    (which answer of the group a position holds; -1 for padding) and ``offset`` (the token's place in its answer)."""

    tokens: torch.Tensor
    answer: torch.Tensor
    offset: torch.Tensor

    @classmethod
    def of(cls, answers: list[list[list[int]]], pad: int) -> PackedAnswers:
        width = max(sum(len(ids) for ids in group) for group in answers)
        tokens = torch.full((len(answers), width), pad, dtype=torch.long)
        answer = torch.full((len(answers), width), -1, dtype=torch.long)
        offset = torch.zeros((len(answers), width), dtype=torch.long)
        for row, group in enumerate(answers):
            start = 0
            for index, ids in enumerate(group):
                place = slice(start, start + len(ids))
                tokens[row, place], answer[row, place] = torch.tensor(ids), index
                offset[row, place] = torch.arange(len(ids))
                start += len(ids)
        return cls(tokens, answer, offset)

    def attention(self, prompt_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """The additive 4-D mask ``(rows, 1, width, prompt + width)``: a token sees the prompt's tokens and the
        tokens of its own answer up to itself (padding sees the prompt only)."""
        own = (self.answer[:, :, None] == self.answer[:, None, :]) & (self.answer[:, :, None] >= 0)
        causal = torch.ones(self.answer.shape[1], self.answer.shape[1], dtype=torch.bool).tril()
        prompt = prompt_mask.bool()[:, None, :].expand(-1, self.answer.shape[1], -1)
        seen = torch.cat([prompt, own & causal.to(own.device)], dim=2)
        return torch.zeros(seen.shape, dtype=dtype, device=seen.device).masked_fill(~seen, torch.finfo(dtype).min)[
            :, None
        ]

    def predicts(self) -> torch.Tensor:
        """Positions whose next position holds the next token of the same answer."""
        following = torch.zeros_like(self.answer, dtype=torch.bool)
        following[:, :-1] = (self.answer[:, 1:] == self.answer[:, :-1]) & (self.answer[:, :-1] >= 0)
        return following

    def to(self, device: torch.device) -> PackedAnswers:
        return PackedAnswers(self.tokens.to(device), self.answer.to(device), self.offset.to(device))


def _prefix_shared_losses(
    model: PreTrainedModel | PeftModel, processor: ProcessorMixin, groups: list[list[Example]]
) -> list[list[float]]:
    """:func:`answer_losses` with each group's prompt (and image) run once: its key/value cache serves every answer.

    Two passes. The first runs the groups' prompts, padded on the left, at the positions a right-padded full
    sequence gives them; it yields the cache and the logits predicting every answer's first token. The second runs
    all the answers of each group side by side after that cache (:class:`PackedAnswers`): each answer at the
    positions continuing its prompt, seeing the prompt and its own earlier tokens only, so every answer token is
    computed as in its own full sequence.
    """
    batch = _on_device(model, generation_batch(processor, [group[0] for group in groups]))
    positions = _prompt_positions(model, batch)
    prefill = model(**batch, position_ids=positions, use_cache=True, logits_to_keep=1)
    first = prefill.logits[:, -1].float().log_softmax(dim=-1)
    following = positions.reshape(-1, *positions.shape[-2:]).amax(dim=(0, 2)) + 1  # each row's next position
    answers = [answer_token_ids(processor, group) for group in groups]
    packed = PackedAnswers.of(answers, processor.tokenizer.pad_token_id or 0).to(model.device)
    step = following[:, None] + packed.offset
    predicts = packed.predicts()
    logits = model(
        input_ids=packed.tokens,
        attention_mask=packed.attention(batch["attention_mask"], model.dtype),
        position_ids=step.expand(*positions.shape[:-2], -1, -1) if positions.ndim == 3 else step,
        past_key_values=prefill.past_key_values,
        use_cache=True,
        logits_to_keep=predicts,
    ).logits.float()
    targets = packed.tokens[:, 1:][predicts[:, :-1]]
    nll = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    # Each answer's slot in the flat list of answers: its group's first slot plus its index in the group.
    firsts = torch.tensor([0, *itertools.accumulate(len(group) for group in groups)][:-1], device=nll.device)
    slot = firsts[:, None] + packed.answer
    starts = (packed.offset == 0) & (packed.answer >= 0)
    total = torch.zeros(sum(len(group) for group in groups), device=nll.device)
    total.index_add_(0, slot[predicts], nll)
    total.index_add_(0, slot[starts], -first[starts.nonzero()[:, 0]].gather(1, packed.tokens[starts][:, None])[:, 0])
    lengths = torch.tensor([len(ids) for group in answers for ids in group], device=nll.device)
    flat = (total / lengths).tolist()
    return [flat[start : start + len(group)] for start, group in zip(firsts.tolist(), groups, strict=True)]


@torch.no_grad()
def answer_losses(
    model: PreTrainedModel | PeftModel,
    processor: ProcessorMixin,
    groups: list[list[Example]],
    scoring: str = "prefix",
) -> list[list[float]]:
    """Mean answer NLL of every example; ``groups`` holds the answers of each sample (one prompt and image each).

    ``loss = sum_t -log p(y_t | y_<t, prompt, image) / T`` over the labelled tokens (the answer and the
    token that ends it). ``scoring`` says how, each giving the same losses (to float rounding):

    - ``prefix`` (default): a group's prompt and image run once, and only the answer tokens run per answer, on the
      prompt's key/value cache (:func:`_prefix_shared_losses`);
    - ``per_option``: every answer as prompt+answer, the image encoded once per group where the model takes image
      features (:func:`shares_image_features`);
    - ``full``: every answer as its own sequence with its own image encoding (how CLEAR's and open-unlearning's
      evaluators score).

    Logits are computed only at the positions that predict a label.
    """
    if scoring not in SCORING_MODES:
        raise ValueError(f"unknown scoring {scoring!r}; choose one of {', '.join(SCORING_MODES)}")
    if scoring == "prefix":
        return _prefix_shared_losses(model, processor, groups)
    examples = [example for group in groups for example in group]
    owners = [g for g, group in enumerate(groups) for _ in group]
    batch = _on_device(model, training_batch(processor, examples))
    labels = batch.pop("labels")
    with_images = all(example.image is not None for example in examples)
    if scoring == "per_option" and with_images and shares_image_features(model):
        _shared_image_inputs(model, batch, owners)
    predicts, targets = label_positions(labels)
    logits = model(**batch, logits_to_keep=predicts, use_cache=False).logits.float()
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
