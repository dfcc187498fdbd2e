"""A pool of models that share one copy of the base weights: the original plus any number of LoRA adapters.

Adapters are loaded once with PEFT (``PeftModel.from_pretrained`` for the first, ``load_adapter`` for the rest),
picked with ``set_adapter``, and the original answers with the adapter layers disabled. The active adapter is global
model state, so every generation (switch + ``generate``) runs under one lock: concurrent callers always get the
answer of the model they asked for. Decoding is greedy, so the same question always gets the same answer.
"""

from __future__ import annotations

import functools
import threading
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

import torch
from peft import PeftModel
from PIL import Image
from transformers import PreTrainedModel, ProcessorMixin, TextIteratorStreamer

from unlearn.collate import generation_batch
from unlearn.errors import UsageError
from unlearn.models import adapter_folder, load_model
from unlearn.prompts import Example

MAX_NEW_TOKENS = 256
DEFAULT_NEW_TOKENS = 64
MAX_QUESTION_CHARS = 2000
T = TypeVar("T")
PROMPT_MARGIN = 8  # tokens kept free for tokenization differences at the question's edges


def adapter_names(count: int) -> list[str]:
    """PEFT names of ``count`` adapters (``adapter_1``...): safe as module keys whatever the folders are called."""
    return [f"adapter_{index}" for index in range(1, count + 1)]


def clean_question(text: str, special_tokens: Sequence[str] = ()) -> str:
    """A question safe to tokenize: NFC, at most MAX_QUESTION_CHARS, whitespace runs collapsed to one space.

    Control characters and lone surrogates (which tokenizers cannot encode) are dropped, and the tokenizer's special
    tokens (``<image>``, ``</s>``...) are blanked out, so typed text can never add image slots or end the prompt.
    """
    text = "".join(
        ch for ch in text[: 2 * MAX_QUESTION_CHARS] if unicodedata.category(ch) not in ("Cc", "Cs") or ch in "\t\n"
    )
    text = unicodedata.normalize("NFC", text)
    for token in special_tokens:
        text = text.replace(token, " ")
    return " ".join(text.split())[:MAX_QUESTION_CHARS].strip()


def bounded_new_tokens(value: Any) -> int:
    """``value`` rounded and clamped to [1, MAX_NEW_TOKENS]; anything unusable gives DEFAULT_NEW_TOKENS."""
    try:
        number = int(round(float(value)))
    except (TypeError, ValueError, OverflowError):
        return DEFAULT_NEW_TOKENS
    return min(max(number, 1), MAX_NEW_TOKENS)


def fit_question(
    processor: ProcessorMixin, context_length: int, question: str, image: Image.Image | None, max_new_tokens: int
) -> tuple[str, bool]:
    """The cleaned question, cut at a token boundary so that prompt, image tokens and answer fit the context.

    Returns the question and whether it was cut. The question may take ``context_length - (prompt tokens without
    the question) - max_new_tokens - PROMPT_MARGIN`` tokens; an empty question raises UsageError.
    """
    question = clean_question(question, processor.tokenizer.all_special_tokens)
    if not question:
        raise UsageError("please type a question")
    scaffold = generation_batch(processor, [Example("", "", image)])["input_ids"].shape[1]
    budget = context_length - scaffold - max_new_tokens - PROMPT_MARGIN
    if budget < 1:
        raise UsageError(f"no room for a question: lower max new tokens (the model takes {context_length} tokens)")
    encoded = processor.tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)
    if len(encoded["input_ids"]) <= budget:
        return question, False
    return question[: encoded["offset_mapping"][budget - 1][1]].rstrip(), True


@contextmanager
def active(model: PreTrainedModel | PeftModel, adapter: str | None) -> Iterator[None]:
    """Run the body with ``adapter`` active (``set_adapter``), or with every adapter off for None (the original).

    The original goes through the tuner's ``disable_adapter_layers`` / ``enable_adapter_layers``: the same switch
    as ``PeftModel.disable_adapter()`` without the full model-status scan it adds on every call (~75 ms on LLaVA-7B).
    """
    loaded = tuple(model.peft_config) if isinstance(model, PeftModel) else ()
    if adapter is not None and adapter not in loaded:
        raise UsageError(f"unknown adapter {adapter!r}; loaded: {', '.join(loaded) or 'none'}")
    if adapter is not None:
        model.set_adapter(adapter, inference_mode=True)
        yield
    elif not loaded:
        yield
    else:
        model.base_model.disable_adapter_layers()
        try:
            yield
        finally:
            model.base_model.enable_adapter_layers()


def _attach(model: PreTrainedModel | PeftModel, name: str, adapter: str, base: str) -> PreTrainedModel | PeftModel:
    """``model`` with ``adapter`` loaded as ``name``; any failure is a UsageError of one line naming the adapter."""
    path = adapter_folder(adapter)  # a missing or damaged file is found before the model is touched
    try:
        if isinstance(model, PeftModel):
            model.load_adapter(path, adapter_name=name, is_trainable=False)
            return model
        return PeftModel.from_pretrained(model, path, adapter_name=name, is_trainable=False)
    except RuntimeError as exc:  # torch's state-dict size mismatch
        raise UsageError(f"adapter {adapter} does not fit {base}: was it trained on another base?") from exc
    except Exception as exc:  # a broken file must not end the app: one line saying what failed
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"cannot load adapter {adapter} on {base}: {first_line}") from exc


class ModelPool:
    """One base model with LoRA adapters in memory; ``None`` names the original (adapters disabled).

    ``slots`` names every adapter asked for, in order (``adapter_1``...); ``failed`` maps the slot of each one that
    could not be loaded to its one-line reason, and ``adapters`` holds the loaded ones.
    """

    def __init__(
        self,
        model: PreTrainedModel | PeftModel,
        processor: ProcessorMixin,
        slots: Sequence[str] | None = None,
        failed: dict[str, str] | None = None,
    ) -> None:
        self.model = model.eval()
        self.processor = processor
        loaded = tuple(model.peft_config) if isinstance(model, PeftModel) else ()
        self.failed: dict[str, str] = dict(failed or {})
        self.slots: tuple[str, ...] = tuple(slots) if slots is not None else loaded
        self.adapters: tuple[str, ...] = tuple(slot for slot in self.slots if slot not in self.failed)
        self.lock = threading.Lock()
        self.device = model.device
        self.dtype = model.get_input_embeddings().weight.dtype

    @classmethod
    def load(
        cls, base: str, adapters: Sequence[str] = (), quantization: str | None = None, keep_going: bool = False
    ) -> ModelPool:
        """Load ``base`` once and attach ``adapters`` (folders or ``USER/NAME[@REV]``) as ``adapter_1``, ...

        An adapter that cannot be loaded raises UsageError, or with ``keep_going`` is left out and its reason kept
        in ``failed`` (the app then shows it in that adapter's column).
        """
        model, processor = load_model(base, quantization=quantization)
        slots, failed = adapter_names(len(adapters)), {}
        for name, adapter in zip(slots, adapters, strict=True):
            try:
                model = _attach(model, name, adapter, base)
            except UsageError as exc:
                if not keep_going:
                    raise
                failed[name] = str(exc)
                if isinstance(model, PeftModel) and name in model.peft_config:  # half-attached: take it off again
                    model.delete_adapter(name)
        return cls(model, processor, slots, failed)

    @property
    def context_length(self) -> int:
        """The most tokens (prompt + answer) the language model takes."""
        config = self.model.config
        return getattr(config, "text_config", config).max_position_embeddings

    def fit_question(self, question: str, image: Image.Image | None, max_new_tokens: int) -> tuple[str, bool]:
        """:func:`fit_question` for this pool's processor and context length (under the lock: a fast tokenizer
        must not be used by two threads at once)."""
        with self.lock:
            return fit_question(self.processor, self.context_length, question, image, max_new_tokens)

    def using(self, adapter: str | None) -> AbstractContextManager[None]:
        """:func:`active` on this pool's model; call only while holding ``lock``."""
        return active(self.model, adapter)

    def run(self, adapter: str | None, work: Callable[[PreTrainedModel | PeftModel, ProcessorMixin], T]) -> T:
        """``work(model, processor)`` with ``adapter`` active (None: the original), under the lock, without
        gradients: how the app scores answers with the evaluator's own functions."""
        with self.lock, self.using(adapter), torch.inference_mode():
            return work(self.model, self.processor)

    def stream(self, adapter: str | None, example: Example, max_new_tokens: int) -> Iterator[str]:
        """Yield the answer of ``adapter`` (None: the original) so far, token by token, greedy decoding.

        Generation runs in a thread that holds the lock from the prompt's tokenization to the last token, so an
        abandoned stream still finishes (within ``max_new_tokens``) and releases the model for the next caller.
        """
        streamer = TextIteratorStreamer(self.processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
        failures: list[Exception] = []
        worker = threading.Thread(
            target=self._generate, args=(adapter, example, bounded_new_tokens(max_new_tokens), streamer, failures)
        )
        worker.start()
        text = ""
        for piece in streamer:
            text += piece
            yield text.strip()
        worker.join()
        if failures:
            raise failures[0]

    def answer(self, adapter: str | None, example: Example, max_new_tokens: int) -> str:
        """The whole greedy answer of ``adapter`` (None: the original)."""
        return functools.reduce(lambda _, text: text, self.stream(adapter, example, max_new_tokens), "")

    def _generate(
        self,
        adapter: str | None,
        example: Example,
        max_new_tokens: int,
        streamer: TextIteratorStreamer,
        failures: list[Exception],
    ) -> None:
        try:
            with self.lock, self.using(adapter):
                batch = generation_batch(self.processor, [example]).to(self.device, dtype=self.dtype)
                self.model.generate(
                    **batch, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1, streamer=streamer
                )
        except Exception as exc:  # handed to the consumer thread, which re-raises it
            failures.append(exc)
            streamer.end()
