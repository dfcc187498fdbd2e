"""Load image-text-to-text checkpoints (Hub id or folder) in full precision, 8-bit or 4-bit, with LoRA adapters."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from accelerate import PartialState
from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training
from transformers import (
    AutoConfig,
    AutoModelForImageTextToText,
    AutoProcessor,
    BitsAndBytesConfig,
    PreTrainedModel,
    ProcessorMixin,
)
from transformers.utils import is_torchvision_available

from unlearn.architectures import PixelBudget, anatomy, anatomy_of_checkpoint, architecture_of
from unlearn.errors import UsageError
from unlearn.hub.resolve import check_weights, resolve

QUANTIZATIONS = (None, "4bit", "8bit")


@dataclass
class LoraSettings:
    """LoRA hyper-parameters (the CLEAR paper's defaults: r 8, alpha 32)."""

    r: int = 8
    alpha: int = 32
    dropout: float = 0.05
    projector: bool = False
    vision: bool = False

    def config(self, model: PreTrainedModel | PeftModel) -> LoraConfig:
        """A PEFT config targeting ``model``'s language-model linear layers (and the projector's and vision
        encoder's if asked), found by :func:`unlearn.architectures.anatomy`."""
        parts = anatomy(model)
        if self.projector and parts.projector_targets is None:
            raise UsageError(f"--lora_projector: the projector of {parts.architecture.family} models is not known")
        patterns = [parts.language_targets]
        patterns += [parts.projector_targets] if self.projector else []
        patterns += [parts.vision_targets] if self.vision else []
        return LoraConfig(
            r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout, target_modules="|".join(patterns), bias="none"
        )


def compute_dtype(device: str | None = None) -> torch.dtype:
    """bf16 on GPUs that support it, float16 on older GPUs (T4), float32 on the CPU."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def quantization_config(
    quantization: str | None, dtype: torch.dtype, not_quantized: list[str]
) -> BitsAndBytesConfig | None:
    """NF4 with double quantization for ``4bit``, LLM.int8 for ``8bit``; the modules ``not_quantized`` (regexes
    matched from the start of module names: the vision encoder, projector and ``lm_head``) kept in full precision.

    Naming a skip list replaces bitsandbytes' default ``lm_head`` skip, so ``not_quantized`` names it again.
    """
    if quantization not in QUANTIZATIONS:
        raise UsageError(f"unknown quantization {quantization!r}; choose 4bit or 8bit")
    if quantization == "4bit":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
            llm_int8_skip_modules=not_quantized,
        )
    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=not_quantized)
    return None


def disable_cpu_weight_repacking(model: torch.nn.Module) -> None:
    """Stop bitsandbytes repacking 4-bit weights for CPU inference, which breaks training after an evaluation."""
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


FULL_PRECISION = "none"  # the value that asks for full precision where the default is a recorded quantization


def recorded_option(folder: str | None, name: str) -> object:
    """The option ``name`` the ``run_config.json`` of ``folder`` (an adapter or a fine-tuned model: a folder or
    Hub id) records; None without a folder, file or option."""
    if folder is None:
        return None
    try:
        return json.loads((Path(resolve(folder)) / "run_config.json").read_text(encoding="utf-8")).get(name)
    except (UsageError, OSError, ValueError):
        return None


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
    recorded = recorded_option(adapter, "quantization")
    return recorded if recorded in QUANTIZATIONS else None


def pixels_of(
    min_pixels: int | None, max_pixels: int | None, adapter: str | None, model: str | None = None
) -> PixelBudget:
    """The pixel budget to load a processor with: each bound as given, else as the ``run_config.json`` of the
    adapter, or of the model (a fine-tuned checkpoint), records it (the budget it was trained with), else the default
    :class:`PixelBudget`."""
    default = PixelBudget()

    def bound(given: int | None, name: str, fallback: int) -> int:
        if given is not None:
            return given
        for recorded in (recorded_option(adapter, name), recorded_option(model, name)):
            if isinstance(recorded, int) and not isinstance(recorded, bool):
                return recorded
        return fallback

    return PixelBudget(
        bound(min_pixels, "min_pixels", default.min_pixels), bound(max_pixels, "max_pixels", default.max_pixels)
    )


def without_video_processor(processor_class: type[ProcessorMixin]) -> type[ProcessorMixin]:
    """``processor_class`` with images and text only: transformers builds a video processor for every processor
    that has one, and video processors need torchvision (huggingface/transformers#48558), which images never use."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs) -> None:  # noqa: ANN001
        processor_class.__init__(
            self,
            image_processor=image_processor,
            tokenizer=tokenizer,
            video_processor=None,
            chat_template=chat_template,
            **kwargs,
        )

    return type(
        processor_class.__name__, (processor_class,), {"__init__": __init__, "__module__": processor_class.__module__}
    )


def load_processor(path: str, pixels: PixelBudget) -> ProcessorMixin:
    """The checkpoint's processor, with the pixel budget ``pixels`` where its family resizes to one.

    Without torchvision a processor that also handles video (Qwen2-VL's) is built for images and text alone.
    """
    options = (
        pixels.processor_options() if architecture_of(AutoConfig.from_pretrained(path).model_type).pixel_budget else {}
    )
    try:
        return AutoProcessor.from_pretrained(path, **options)
    except (OSError, ImportError):
        processor_class = getattr(transformers, _processor_class_name(path), None)
        if is_torchvision_available() or processor_class is None:
            raise
        if "video_processor" not in processor_class.get_attributes():
            raise
        return without_video_processor(processor_class).from_pretrained(path, **options)


def _processor_class_name(path: str) -> str:
    """The ``processor_class`` a checkpoint names: in ``processor_config.json`` (as transformers 5 saves it), else
    ``preprocessor_config.json`` or ``tokenizer_config.json`` (as the Hub's Qwen2-VL repos hold it)."""
    for name in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        file = Path(path, name)
        if file.is_file():
            recorded = json.loads(file.read_text(encoding="utf-8")).get("processor_class")
            if recorded:
                return recorded
    return ""


def load_model(
    name_or_path: str,
    quantization: str | None = None,
    adapter: str | None = None,
    dtype: torch.dtype | None = None,
    pixels: PixelBudget | None = None,
) -> tuple[PreTrainedModel, ProcessorMixin]:
    """Load a checkpoint and its processor, optionally quantized and with an existing LoRA adapter (not trainable).

    ``name_or_path`` and ``adapter`` are Hub ids (``USER/NAME`` or ``USER/NAME@REVISION``) or local folders;
    ``pixels`` is the image processor's pixel budget where the family has one (default :class:`PixelBudget`).
    """
    path = resolve(name_or_path)
    adapter_path = adapter_folder(adapter) if adapter is not None else None  # checked before the base loads
    check_weights(path)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = dtype or compute_dtype(device)
    try:
        kept = anatomy_of_checkpoint(path).not_quantized() if quantization else []
        model = AutoModelForImageTextToText.from_pretrained(
            path,
            dtype=dtype,
            quantization_config=quantization_config(quantization, dtype, kept),
            device_map={"": PartialState().local_process_index} if device == "cuda" else None,  # this process's GPU
            use_safetensors=True,
        )
        processor = load_processor(path, pixels or PixelBudget())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot load model {name_or_path}: {str(exc).strip().splitlines()[0]}") from exc
    if quantization is not None:
        disable_cpu_weight_repacking(model)
    if adapter_path is not None:
        model = PeftModel.from_pretrained(model, adapter_path)
    return model, processor


def adapter_folder(adapter: str) -> str:
    """The local folder of ``adapter`` (a folder or Hub id), checked: a UsageError when it holds no
    ``adapter_config.json`` (not an adapter, or one whose save did not finish) or a weights file that is not whole
    (:func:`unlearn.hub.resolve.check_weights`)."""
    path = resolve(adapter)
    if not (Path(path) / "adapter_config.json").is_file():
        raise UsageError(f"{adapter} holds no adapter_config.json: not a LoRA adapter, or one that was never finished")
    check_weights(path)
    return path


def add_lora(
    model: PreTrainedModel, settings: LoraSettings | None = None, gradient_checkpointing: bool = False
) -> PeftModel:
    """Attach a new trainable LoRA adapter; everything else (vision tower included) stays frozen.

    Quantized models go through PEFT's ``prepare_model_for_kbit_training``; with gradient checkpointing the input
    embeddings require gradients, or the LoRA weights would never receive any.
    """
    settings = settings or LoraSettings()
    model = prepare_for_training(model, gradient_checkpointing)
    return get_peft_model(model, settings.config(model))


def prepare_for_training(model: PreTrainedModel, gradient_checkpointing: bool = False) -> PreTrainedModel:
    """Make ``model`` ready to carry trainable LoRA weights: quantized models go through PEFT's
    ``prepare_model_for_kbit_training``; with gradient checkpointing the input embeddings require gradients."""
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
    return model


def load_trainable_adapter(
    name_or_path: str, adapter: str, quantization: str | None = None, gradient_checkpointing: bool = False
) -> tuple[PeftModel, ProcessorMixin]:
    """``name_or_path`` with ``adapter`` on top and trainable, to train the adapter further (a relearning attack)."""
    path = adapter_folder(adapter)
    model, processor = load_model(name_or_path, quantization)
    model = prepare_for_training(model, gradient_checkpointing)
    return PeftModel.from_pretrained(model, path, is_trainable=True), processor


def freeze_vision_tower(model: PreTrainedModel) -> None:
    """Freeze the vision encoder, the projector excepted (full fine-tuning trains the projector and language model)."""
    parts = anatomy(model)
    for name, parameter in model.named_parameters():
        if parts.frozen_vision(name):
            parameter.requires_grad_(False)
