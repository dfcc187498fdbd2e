"""What an evaluation will cost, said before it starts: samples, answers, generated tokens and a time estimate.

The estimate times one probe batch of the first task (its scoring, and its generation where the task generates)
and scales it: ``seconds = sum_tasks [answers_t * s_answer + batches_t * s_step * max_new_tokens_t]``, with
``s_answer`` the probe's scoring seconds per answer and ``s_step`` its generation seconds per batch and new token.
Generation stops early when every answer has ended, in the probe as in the run, so this is a rough figure.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from peft import PeftModel
from transformers import PreTrainedModel, ProcessorMixin

from eval.scoring import answer_losses, generate
from eval.tasks import Sample

LONG_EVALUATION_BATCHES = 20  # from this many batches on, one probe batch is timed to estimate the whole run


@dataclass(frozen=True)
class TaskPlan:
    """One task's share of an evaluation."""

    name: str
    samples: int
    answers: int
    batches: int
    max_new_tokens: int  # 0 for a task that does not generate

    @property
    def generation_tokens(self) -> int:
        """The most tokens its generations can take: ``samples * max_new_tokens``."""
        return self.samples * self.max_new_tokens


def task_plan(name: str, samples: list[Sample], batch_size: int, max_new_tokens: int, generates: bool) -> TaskPlan:
    answers = sum(len(sample.answers) for sample in samples)
    batches = math.ceil(len(samples) / batch_size)
    return TaskPlan(name, len(samples), answers, batches, max_new_tokens if generates else 0)


@dataclass(frozen=True)
class Probe:
    """Seconds per scored answer and per generated token of one batch, from timing one batch."""

    seconds_per_answer: float
    seconds_per_step: float


def probe(
    model: PreTrainedModel | PeftModel, processor: ProcessorMixin, samples: list[Sample], max_new_tokens: int
) -> Probe:
    """Time scoring ``samples`` (one batch) and, with ``max_new_tokens`` > 0, generating their answers."""
    start = time.perf_counter()
    answer_losses(model, processor, [sample.scored() for sample in samples])
    scoring = time.perf_counter() - start
    step = 0.0
    if max_new_tokens:
        start = time.perf_counter()
        generate(model, processor, [sample.example for sample in samples], max_new_tokens)
        step = (time.perf_counter() - start) / max_new_tokens
    return Probe(scoring / sum(len(sample.answers) for sample in samples), step)


def estimate_seconds(plans: list[TaskPlan], timing: Probe) -> float:
    """``sum_t [answers_t * s_answer + batches_t * s_step * max_new_tokens_t]`` (the module docstring)."""
    return sum(
        plan.answers * timing.seconds_per_answer + plan.batches * timing.seconds_per_step * plan.max_new_tokens
        for plan in plans
    )


def describe(plans: list[TaskPlan], seconds: float | None) -> str:
    """One line: samples, answers, batches and the generation budget; with ``seconds`` the estimate."""
    samples, answers = sum(p.samples for p in plans), sum(p.answers for p in plans)
    batches, tokens = sum(p.batches for p in plans), sum(p.generation_tokens for p in plans)
    line = (
        f"evaluating {samples} samples in {len(plans)} tasks: {answers} answers to score in {batches} batches, "
        f"up to {tokens} generated tokens"
    )
    if seconds is not None:
        line += f"; estimated time {_duration(seconds)} (from one timed batch)"
    return line


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {rest:02d} s"
