"""The memory model of a 4-bit LoRA unlearning run: an analytic estimate, a least-squares fit of measured peaks over the
number of language layers, and the process memory split that the CPU can measure (anonymous against file-backed).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForImageTextToText

from unlearn.architectures import anatomy

GIB = 1024**3
# NF4 with double quantization: 4 bits a weight, one 8-bit absmax per block of 64 weights, one float32 scale per 256
# absmax values (bitsandbytes' defaults).
NF4_BYTES_PER_WEIGHT = 0.5 + 1 / 64 + 4 / (64 * 256)
# LoRA parameters in float32: the weight, its gradient and AdamW's two moments.
LORA_BYTES_PER_PARAMETER = 4 * 4
# A training sequence of LLaVA-1.5: 576 image tokens and about 100 tokens of prompt and answer.
TOKENS = 576 + 100


@dataclass(frozen=True)
class ModelShape:
    """What the estimate reads from a model: parameter groups and widths of its language model."""

    quantized: int  # the language layers' linear weights (NF4 in 4-bit)
    full_precision: int  # every other parameter: vision tower, projector, embeddings, head, norms
    lora: int  # LoRA parameters on the language layers' linear layers
    layers: int
    hidden: int
    intermediate: int
    vocab: int


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes of each part of a training step's peak."""

    weights_4bit: int
    full_precision: int
    lora: int
    activations: int

    @property
    def total(self) -> int:
        return self.weights_4bit + self.full_precision + self.lora + self.activations


def model_shape(config: Any, lora_r: int = 8) -> ModelShape:
    """The :class:`ModelShape` of the model ``config`` describes, counted on the meta device (no memory used)."""
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config)
    parts = anatomy(model)
    language = model.get_submodule(parts.language)
    linears = [module for module in language.modules() if isinstance(module, torch.nn.Linear)]
    quantized = sum(module.weight.numel() for module in linears)
    text = config.get_text_config()
    return ModelShape(
        quantized=quantized,
        full_precision=sum(parameter.numel() for parameter in model.parameters()) - quantized,
        lora=sum(lora_r * (module.in_features + module.out_features) for module in linears),
        layers=text.num_hidden_layers,
        hidden=text.hidden_size,
        intermediate=text.intermediate_size,
        vocab=text.vocab_size,
    )


def analytic_estimate(shape: ModelShape, tokens: int = TOKENS, dtype_bytes: int = 2) -> MemoryEstimate:
    """The peak of one 4-bit LoRA training step, batch 1, ``tokens`` tokens, gradient checkpointing.

    With Q quantized and F other parameters, R LoRA parameters, L layers of width h and MLP width i, vocabulary V,
    T tokens and c bytes per compute-dtype value (2 for bf16):

        weights_4bit   = Q * (1/2 + 1/64 + 4/(64*256))    NF4, double-quantized absmax
        full_precision = F * c                            vision tower, projector, embeddings, head, norms
        lora           = R * 16                           float32 weight, gradient, AdamW's two moments
        activations    = T*c*L*h                          each layer's checkpointed input
                       + T*c*(16*h + 5*i)                 one layer recomputed in the backward pass
                       + T*V*(c + 8)                      logits, float32 log-probabilities and their gradient

    The frozen vision tower's own activations (one CLIP layer at a time) and the allocator's slack are left out.
    """
    activations = tokens * dtype_bytes * shape.layers * shape.hidden
    activations += tokens * dtype_bytes * (16 * shape.hidden + 5 * shape.intermediate)
    activations += tokens * shape.vocab * (dtype_bytes + 8)
    return MemoryEstimate(
        weights_4bit=round(shape.quantized * NF4_BYTES_PER_WEIGHT),
        full_precision=shape.full_precision * dtype_bytes,
        lora=shape.lora * LORA_BYTES_PER_PARAMETER,
        activations=activations,
    )


def analytic_per_layer(shape: ModelShape, tokens: int = TOKENS, dtype_bytes: int = 2) -> float:
    """What each language layer adds to :func:`analytic_estimate` (which is linear in L):
    Q/L * (1/2 + 1/64 + 4/(64*256)) + R/L * 16 + T*c*h."""
    weights = shape.quantized * NF4_BYTES_PER_WEIGHT + shape.lora * LORA_BYTES_PER_PARAMETER
    return weights / shape.layers + tokens * dtype_bytes * shape.hidden


def cpu_run_bytes(shape: ModelShape, tokens: int = TOKENS) -> int:
    """Memory a 4-bit CPU training run of a float32 checkpoint of ``shape`` needs: the checkpoint, mapped (4 bytes
    a parameter, file-backed), plus the anonymous part of :func:`analytic_estimate` in float32 (4-bit weights, LoRA,
    activations), plus 1 GiB for the process and the allocator's slack."""
    estimate = analytic_estimate(shape, tokens, dtype_bytes=4)
    mapped = 4 * (shape.quantized + shape.full_precision)
    return mapped + estimate.weights_4bit + estimate.lora + estimate.activations + GIB


def linear_fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least squares ``y = a + b*x``: b = cov(x, y) / var(x), a = mean(y) - b*mean(x); two distinct x at least."""
    if len(set(xs)) < 2 or len(xs) != len(ys):
        raise ValueError("a linear fit needs at least two distinct x, one y each")
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    b = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sum((x - mean_x) ** 2 for x in xs)
    return mean_y - b * mean_x, b


def available_memory() -> int:
    """Bytes the machine can give a new process: ``MemAvailable`` of /proc/meminfo, else its physical memory."""
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def resident_memory() -> dict[str, int]:
    """This process's resident memory in bytes: ``anon`` (``RssAnon``: heap, tensors) and ``file`` (``RssFile``:
    mapped files such as a memory-mapped checkpoint); zeros where /proc/self/status is missing (not Linux)."""
    found = {"anon": 0, "file": 0}
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile"):
                found[key[3:].lower()] = int(value.split()[0]) * 1024
    return found


# glibc's mallopt parameter for the size from which an allocation gets its own mapping.
M_MMAP_THRESHOLD = -3
HEAP_THRESHOLD = 1024**2


def map_large_allocations(threshold: int = HEAP_THRESHOLD) -> bool:
    """Give every CPU allocation of ``threshold`` bytes or more its own mapping, returned to the system when freed
    (glibc ``mallopt(M_MMAP_THRESHOLD)``); whether it took effect (False without glibc).

    By default glibc raises that threshold up to 32 MiB once a large block is freed, so the 10-30 MiB activations of
    a real-width layer come from the heap, where freed blocks stay resident: on the real-width LLaVA-1.5, 1.1 GiB of
    anonymous memory after a step of the 1-layer model and about 0.2 GiB more for each further layer, that no tensor
    holds (``malloc_trim(0)`` gives it back).
    """
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    return bool(libc is not None and hasattr(libc, "mallopt") and libc.mallopt(M_MMAP_THRESHOLD, threshold))


class ResidentPeak(threading.Thread):
    """Samples :func:`resident_memory` every ``interval`` seconds in the background; ``peak()`` then ``reset()``."""

    def __init__(self, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._peak = resident_memory()

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        now = resident_memory()
        with self._lock:
            self._peak = {key: max(self._peak[key], now[key]) for key in now}

    def peak(self) -> dict[str, int]:
        """The largest ``anon`` and ``file`` sampled since the start or the last reset (each its own maximum)."""
        self.sample()
        with self._lock:
            return dict(self._peak)

    def reset(self) -> None:
        with self._lock:
            self._peak = resident_memory()

    def stop(self) -> None:
        self._halt.set()
        self.join()
