"""Load image-text-to-text checkpoints (Hub id or folder) in full precision, 8-bit or 4-bit, with LoRA adapters."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import PartialState
from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training
from transformers import AutoModelForImageTextToText, AutoProcessor, BitsAndBytesConfig, PreTrainedModel, ProcessorMixin

from unlearn.errors import UsageError
from unlearn.hub.resolve import resolve

QUANTIZATIONS = (None, "4bit", "8bit")
# Kept in full precision when quantizing (patterns match from the start of module names): naming a skip list
# replaces the default ``lm_head`` skip, so it is named again.
NOT_QUANTIZED = ["lm_head", r".*vision_tower", r".*multi_modal_projector"]
LANGUAGE_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
PROJECTOR_TARGETS = r".*multi_modal_projector\.linear_[12]"
VISION_TARGETS = r".*vision_tower.*\.(q_proj|k_proj|v_proj|out_proj|fc1|fc2)"


@dataclass
class LoraSettings:
    """LoRA hyper-parameters (the CLEAR paper's defaults: r 8, alpha 32)."""

    r: int = 8
    alpha: int = 32
    dropout: float = 0.05
    projector: bool = False
    vision: bool = False

    def config(self) -> LoraConfig:
        """A PEFT config targeting the language model's linear layers (and projector / vision tower if asked)."""
        patterns = [LANGUAGE_TARGETS]
        patterns += [PROJECTOR_TARGETS] if self.projector else []
        patterns += [VISION_TARGETS] if self.vision else []
        return LoraConfig(
            r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout, target_modules="|".join(patterns), bias="none"
        )


def compute_dtype(device: str | None = None) -> torch.dtype:
    """bf16 on GPUs that support it, float16 on older GPUs (T4), float32 on the CPU."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def quantization_config(quantization: str | None, dtype: torch.dtype) -> BitsAndBytesConfig | None:
    """NF4 with double quantization for ``4bit``, LLM.int8 for ``8bit``; vision tower, projector and lm_head kept."""
    if quantization not in QUANTIZATIONS:
        raise UsageError(f"unknown quantization {quantization!r}; choose 4bit or 8bit")
    if quantization == "4bit":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
            llm_int8_skip_modules=NOT_QUANTIZED,
        )
    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=NOT_QUANTIZED)
    return None


def disable_cpu_weight_repacking(model: torch.nn.Module) -> None:
    """Stop bitsandbytes repacking 4-bit weights for CPU inference, which breaks training after an evaluation."""
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


FULL_PRECISION = "none"  # the value that asks for full precision where the default is a recorded quantization


def precision_of(requested: str | None, adapter: str | None) -> str | None:
    """The quantization to load a base in: ``requested`` (``none``: full precision), else the ``quantization`` the
    adapter's ``run_config.json`` records (the precision it was unlearned in), else full precision (None).

    Unlearning measured in one precision can look different in another, so an adapter is evaluated and served in
    the precision it was made in unless asked otherwise.
    """
    if requested is not None:
        if requested != FULL_PRECISION and requested not in QUANTIZATIONS:
            raise UsageError(f"unknown quantization {requested!r}; choose 4bit, 8bit or {FULL_PRECISION}")
        return None if requested == FULL_PRECISION else requested
    if adapter is None:
        return None
    try:
        recorded = json.loads((Path(resolve(adapter)) / "run_config.json").read_text(encoding="utf-8")).get(
            "quantization"
        )
    except (UsageError, OSError, ValueError):
        return None
    return recorded if recorded in QUANTIZATIONS else None


def load_model(
    name_or_path: str,
    quantization: str | None = None,
    adapter: str | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[PreTrainedModel, ProcessorMixin]:
    """Load a checkpoint and its processor, optionally quantized and with an existing LoRA adapter (not trainable).

    ``name_or_path`` and ``adapter`` are Hub ids (``USER/NAME`` or ``USER/NAME@REVISION``) or local folders.
    """
    path = resolve(name_or_path)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = dtype or compute_dtype(device)
    try:
        model = AutoModelForImageTextToText.from_pretrained(
            path,
            dtype=dtype,
            quantization_config=quantization_config(quantization, dtype),
            device_map={"": PartialState().local_process_index} if device == "cuda" else None,  # this process's GPU
            use_safetensors=True,
        )
        processor = AutoProcessor.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot load model {name_or_path}: {str(exc).strip().splitlines()[0]}") from exc
    if quantization is not None:
        disable_cpu_weight_repacking(model)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, resolve(adapter))
    return model, processor


def add_lora(
    model: PreTrainedModel, settings: LoraSettings | None = None, gradient_checkpointing: bool = False
) -> PeftModel:
    """Attach a new trainable LoRA adapter; everything else (vision tower included) stays frozen.

    Quantized models go through PEFT's ``prepare_model_for_kbit_training``; with gradient checkpointing the input
    embeddings require gradients, or the LoRA weights would never receive any.
    """
    settings = settings or LoraSettings()
    if getattr(model, "is_quantized", False):
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    elif gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if gradient_checkpointing:
        model.enable_input_require_grads()
    return get_peft_model(model, settings.config())


def freeze_vision_tower(model: PreTrainedModel) -> None:
    """Freeze the vision tower (full fine-tuning trains the projector and language model only)."""
    for name, parameter in model.named_parameters():
        if "vision_tower" in name:
            parameter.requires_grad_(False)
