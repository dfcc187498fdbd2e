"""RMU (Li et al. 2024, "The WMDP Benchmark"): misdirect the forget hidden states at one decoder layer.

At decoder layer k (``model.language_model.layers[k]``), the hidden states of the forget inputs are pushed to a
fixed random direction scaled by ``c``, while the retain hidden states stay equal to the frozen model's (the same
model with its LoRA adapter disabled) at the same layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from accelerate.utils import extract_model_from_parallel
from peft import PeftModel
from transformers import BatchFeature

from unlearn.collate import IGNORE_INDEX
from unlearn.errors import UsageError
from unlearn.methods import register
from unlearn.methods.base import Batches, Logs, UnlearnMethod
from unlearn.methods.logprobs import adapter_disabled, model_inputs
from unlearn.prompts import Example


def control_vector(hidden_size: int, coefficient: float, seed: int) -> torch.Tensor:
    """``c * u / ||u||``, ``u ~ Uniform[0, 1)^hidden_size`` drawn from ``seed``: shape ``(hidden_size,)``, norm c."""
    u = torch.rand(hidden_size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return (coefficient * u / u.norm()).float()


def predicting_positions(labels: torch.Tensor) -> torch.Tensor:
    """Boolean ``(batch, length)``: True at position t when it predicts an answer token (``labels[t + 1] != -100``).

    These are the last prompt token and every answer token but the last: the states the answer is read from.
    """
    mask = torch.zeros_like(labels, dtype=torch.bool)
    mask[:, :-1] = labels[:, 1:] != IGNORE_INDEX
    return mask


def masked_mse(hidden: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(1 / (N d)) sum_{(i,t) in mask} ||h_it - target_it||^2`` over the N masked positions of d-dim states.

    ``hidden`` is ``(batch, length, d)``; ``target`` has the same shape or is one ``(d,)`` vector for every position.
    """
    squared = (hidden.float() - target.float()).pow(2).sum(dim=-1)
    return squared[mask].sum() / (mask.sum().clamp(min=1) * hidden.shape[-1])


def misdirection(forget_hidden: torch.Tensor, forget_mask: torch.Tensor, control: torch.Tensor) -> torch.Tensor:
    """The forget term ``MSE(h_f, c u)``: :func:`masked_mse` to the one ``(d,)`` control vector at every position."""
    if control.shape != forget_hidden.shape[-1:]:
        raise ValueError(f"control vector of shape {tuple(control.shape)} for hidden size {forget_hidden.shape[-1]}")
    return masked_mse(forget_hidden, control, forget_mask)


def decoder(model: torch.nn.Module) -> torch.nn.Module:
    """The language model (``model.language_model`` of LLaVA, holding ``layers``), through PEFT and accelerate."""
    model = extract_model_from_parallel(model)
    model = model.get_base_model() if isinstance(model, PeftModel) else model
    return model.get_decoder()


def layer_states(model: torch.nn.Module, batch: BatchFeature, layer: int) -> torch.Tensor:
    """The output hidden states ``(batch, length, d)`` of decoder layer ``layer`` on ``batch`` (a forward hook)."""
    captured: list[torch.Tensor] = []

    def keep(module: torch.nn.Module, args: object, output: torch.Tensor | tuple[torch.Tensor, ...]) -> None:
        captured.append(output[0] if isinstance(output, tuple) else output)

    handle = decoder(model).layers[layer].register_forward_hook(keep)
    try:
        model(**model_inputs(batch))
    finally:
        handle.remove()
    return captured[0]


def frozen_layer_states(model: torch.nn.Module, batch: BatchFeature, layer: int) -> torch.Tensor:
    """:func:`layer_states` of the frozen model (see :func:`unlearn.methods.logprobs.adapter_disabled`)."""
    with adapter_disabled(model) as frozen:
        return layer_states(frozen, batch, layer)


def default_layer(layers: int) -> int:
    """``(layers - 1) // 4``: 7 of LLaVA-1.5-7B's 32 (the layer WMDP's RMU steers in the 32-layer Zephyr-7B)."""
    return (layers - 1) // 4


@dataclass
class RMUOptions:
    layer: int | None = field(
        default=None, metadata={"help": "decoder layer to steer (0-based); default (layers - 1) // 4, 7 of 32"}
    )
    steering_coefficient: float = field(
        default=6.5, metadata={"help": "c, the control vector's norm; scale it to the layer's activations (WMDP: 6.5)"}
    )
    alpha: float = field(
        default=1200.0, metadata={"help": "weight of the retain term MSE(h_r, h_r frozen) (WMDP's Zephyr-7B: 1200)"}
    )
    answer_only: bool = field(
        default=False,
        metadata={"help": "steer only the positions that predict the forget answer, not every forget token"},
    )


@register
class RMU(UnlearnMethod):
    """``loss = MSE(h_f, c u) + alpha * MSE(h_r, h_r^frozen)`` at the output of decoder layer k.

    ``u`` is one random unit vector of the hidden size (uniform [0, 1) entries, normalised; drawn from the run's
    seed), the same for every token of every batch; MSE averages over the masked positions and the hidden size. The
    forget term covers every non-padding token of the forget inputs (image tokens included; with ``answer_only``
    the positions that predict the answer), the retain term every non-padding token of the retain inputs.
    """

    name = "rmu"
    description = "RMU: forget hidden states at one layer -> c * random unit vector, retain ones -> frozen model's"
    options_class = RMUOptions

    def prepare(self, model: torch.nn.Module, forget: Sequence[Example], retain: Sequence[Example], seed: int) -> None:
        """Choose the layer, draw the control vector from ``seed``, and freeze the layers above the chosen one.

        The loss never reads those layers; frozen, they also leave distributed training (DDP) no weight that waits
        for a gradient.
        """
        language_model = decoder(model)
        layers = len(language_model.layers)
        self.layer = default_layer(layers) if self.options.layer is None else self.options.layer
        if not 0 <= self.layer < layers:
            raise UsageError(f"--layer {self.layer} does not exist: the language model has {layers} layers")
        hidden_size = language_model.config.hidden_size
        self.control = control_vector(hidden_size, self.options.steering_coefficient, seed)
        language_model.layers[self.layer + 1 :].requires_grad_(False)

    def loss(self, model: torch.nn.Module, batches: Batches, step: int) -> tuple[torch.Tensor, Logs]:
        forget, retain = batches["forget"], batches["retain"]
        forget_hidden = layer_states(model, forget, self.layer)
        forget_mask = predicting_positions(forget["labels"]) if self.options.answer_only else forget["attention_mask"]
        forget_term = misdirection(forget_hidden, forget_mask.bool(), self.control.to(forget_hidden.device))
        retain_hidden, frozen = layer_states(model, retain, self.layer), frozen_layer_states(model, retain, self.layer)
        retain_term = masked_mse(retain_hidden, frozen, retain["attention_mask"].bool())
        loss = forget_term + self.options.alpha * retain_term
        return loss, {"forget_mse": forget_term.item(), "retain_mse": retain_term.item()}
