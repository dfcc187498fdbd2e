"""The sizes of a tiny offline model, and what a family contributes to one (tokens, processor, model)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from transformers import PreTrainedModel, PreTrainedTokenizerFast, ProcessorMixin


@dataclass
class TinySpec:
    """Sizes of the tiny model; the defaults learn mini-CLEAR's faces, captions and facts within minutes on a CPU."""

    image_size: int = field(default=32, metadata={"help": "image side in pixels (LLaVA: its fixed input size)"})
    patch_size: int = field(default=8, metadata={"help": "vision patch side; (image/patch)^2 image tokens"})
    vision_hidden: int = field(default=64, metadata={"help": "hidden size of the vision tower"})
    vision_layers: int = field(default=2, metadata={"help": "layers of the vision tower"})
    text_hidden: int = field(default=128, metadata={"help": "hidden size of the text model"})
    text_layers: int = field(default=2, metadata={"help": "layers of the text model"})
    heads: int = field(default=4, metadata={"help": "attention heads (vision and text)"})
    vocab_size: int = field(default=2000, metadata={"help": "BPE vocabulary size (before special tokens)"})
    max_positions: int = field(default=512, metadata={"help": "maximum sequence length"})
    world_epochs: int = field(
        default=60, metadata={"help": "epochs of 'pretraining' on real_faces and real_world (0: random weights)"}
    )


@dataclass(frozen=True)
class TinyFamily:
    """A family's part of a tiny model: its special tokens, the words of its chat template, and its builders."""

    name: str
    special_tokens: dict[str, str]  # unk/bos/eos/pad, as PreTrainedTokenizerFast takes them
    extra_tokens: tuple[str, ...]  # further special tokens (image placeholders, turn markers)
    scaffold: tuple[str, ...]  # words of the chat template, made single tokens
    newline_tokens: bool  # newlines split words (a template whose prompt ends in a newline needs it)
    build_processor: Callable[[PreTrainedTokenizerFast, TinySpec], ProcessorMixin]
    build_model: Callable[[PreTrainedTokenizerFast, TinySpec, int], PreTrainedModel]
