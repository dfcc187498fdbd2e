"""Time the three ways of scoring answers on the same samples, check that they agree, and compare each with the
FLOP floor (``eval.flops``)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from peft import PeftModel
from transformers import PreTrainedModel, ProcessorMixin

from eval.flops import SampleTokens, model_size, scoring_flops
from eval.scoring import SCORING_MODES, answer_losses, answer_token_ids
from eval.tasks import TASKS, Sample
from unlearn.collate import generation_batch
from unlearn.data import load_clear

LOSS_KEYS = ("loss", "paraphrased_loss", "perturbed_losses", "option_losses")
TEXT_KEYS = ("id", "prompt", "reference", "generation", "options", "prediction")
AGREEMENT = 1e-4  # the largest loss difference between two ways of scoring that counts as equal (float32)


def compare_records(a: list[dict[str, Any]], b: list[dict[str, Any]], atol: float = 1e-5) -> list[str]:
    """The differences between two runs' records of one task: losses beyond ``atol``, any differing text or id."""
    if len(a) != len(b):
        return [f"{len(a)} records against {len(b)}"]
    problems = []
    for x, y in zip(a, b, strict=True):
        for key in LOSS_KEYS:
            if key in x and not np.allclose(x[key], y[key], rtol=0.0, atol=atol):
                problems.append(f"sample {x['id']}: {key} {x[key]} != {y[key]}")
        for key in TEXT_KEYS:
            if x.get(key) != y.get(key):
                problems.append(f"sample {x['id']}: {key} {x.get(key)!r} != {y.get(key)!r}")
    return problems


@dataclass
class ScoringBench:
    """Best seconds and forward FLOPs of each way of scoring, the floor's FLOPs, and how the losses agree.

    The floor's seconds are its FLOPs at the best FLOP rate any way reached here (``floor_seconds``), so a way's
    ``x floor`` is how far it is from scoring every prompt and answer token once at this machine's speed.
    """

    samples: int
    answers: int
    prompt_tokens: float  # mean per sample
    answer_tokens: float  # mean per answer
    seconds: dict[str, float]
    flops: dict[str, float]
    floor_flops: float
    max_loss_difference: float

    @property
    def floor_seconds(self) -> float:
        return self.floor_flops / max(self.flops[m] / self.seconds[m] for m in self.seconds)

    def times_floor(self, scoring: str) -> float:
        return self.seconds[scoring] / self.floor_seconds

    def speedup(self, scoring: str, over: str = "full") -> float:
        return self.seconds[over] / self.seconds[scoring]

    @property
    def agree(self) -> bool:
        return self.max_loss_difference <= AGREEMENT

    def report(self) -> dict[str, Any]:
        """Every figure, measured and derived, ready for JSON."""
        return {
            **asdict(self),
            "floor_seconds": self.floor_seconds,
            "times_floor": {mode: self.times_floor(mode) for mode in self.seconds},
            "speedup_over_full": {mode: self.speedup(mode) for mode in self.seconds},
            "answers_per_second": {mode: self.answers / seconds for mode, seconds in self.seconds.items()},
            "agree": self.agree,
        }


def bench_samples(data: str, forget: str, tasks: list[str], max_samples: int | None) -> list[Sample]:
    """The first ``max_samples`` samples (all without it) of each task, in task order."""
    samples: list[Sample] = []
    for name in tasks:
        task_samples = TASKS[name].samples(load_clear(TASKS[name].config(forget), data))
        samples += [sample for index, sample in enumerate(task_samples) if max_samples is None or index < max_samples]
    return samples


def sample_tokens(
    model: PreTrainedModel | PeftModel, processor: ProcessorMixin, samples: list[Sample], image_tokens_to_vision: int
) -> list[SampleTokens]:
    """Each sample's prompt tokens (after image expansion), vision-encoder tokens and answer tokens."""
    counts = []
    image_token = getattr(model.config, "image_token_id", None)
    for sample in samples:
        ids = generation_batch(processor, [sample.example])["input_ids"][0]
        image = int((ids == image_token).sum()) if image_token is not None else 0
        answers = tuple(len(ids) for ids in answer_token_ids(processor, sample.scored()))
        counts.append(SampleTokens(len(ids), image * image_tokens_to_vision, answers))
    return counts


def _score(model: Any, processor: ProcessorMixin, samples: list[Sample], batch_size: int, scoring: str) -> list:
    losses = []
    for start in range(0, len(samples), batch_size):
        batch = samples[start : start + batch_size]
        losses += answer_losses(model, processor, [s.scored() for s in batch], scoring=scoring)
    return losses


def benchmark_scoring(
    model: PreTrainedModel | PeftModel,
    processor: ProcessorMixin,
    samples: list[Sample],
    batch_size: int = 8,
    repeats: int = 1,
    modes: tuple[str, ...] = SCORING_MODES,
) -> ScoringBench:
    """Score ``samples`` every way in ``modes`` (best of ``repeats``, the ways taking turns, after a one-sample
    warm-up each) and compare every way's losses with the first's."""
    model.eval()
    for mode in modes:
        _score(model, processor, samples[:1], 1, mode)
    seconds, losses = dict.fromkeys(modes, float("inf")), {}
    for _ in range(repeats):  # the ways take turns, so a change in the machine's load reaches each of them
        for mode in modes:
            start = time.perf_counter()
            losses[mode] = _score(model, processor, samples, batch_size, mode)
            seconds[mode] = min(seconds[mode], time.perf_counter() - start)
    flat = {mode: np.concatenate([np.asarray(group, dtype=float) for group in losses[mode]]) for mode in modes}
    worst = max((np.abs(flat[mode] - flat[modes[0]]).max() for mode in modes[1:]), default=0.0)
    size = model_size(model)
    tokens = sample_tokens(model, processor, samples, size.vision_tokens_per_image_token)
    answers = [count for sample in tokens for count in sample.answers]
    return ScoringBench(
        samples=len(samples),
        answers=len(answers),
        prompt_tokens=float(np.mean([sample.prompt for sample in tokens])),
        answer_tokens=float(np.mean(answers)),
        seconds=seconds,
        flops={mode: scoring_flops(size, tokens, mode) for mode in modes},
        floor_flops=scoring_flops(size, tokens, "prefix"),
        max_loss_difference=float(worst),
    )
