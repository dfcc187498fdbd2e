"""Training items for unlearning: each forget example paired with a retain example, and their collator.

The retain partner cycles through a seeded permutation of the retain set, epoch after epoch: in epoch e the forget
example i meets ``retain[perm[(e * F + i) mod R]]`` (F forget and R retain examples), so every retain example is
used before any repeats and a run is the same for the same seed (also when resumed from a checkpoint).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from transformers import BatchFeature, ProcessorMixin, TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from unlearn.collate import training_batch
from unlearn.errors import UsageError
from unlearn.prompts import Example


class ForgetRetainPairs(torch.utils.data.Dataset):
    """``len(forget)`` items per epoch, each a ``(forget example, retain example)`` pair."""

    def __init__(self, forget: Sequence[Example], retain: Sequence[Example], seed: int) -> None:
        if not forget or not retain:
            raise UsageError("the forget and retain sets must both hold examples")
        self.forget, self.retain = list(forget), list(retain)
        generator = torch.Generator().manual_seed(seed)
        self.order = torch.randperm(len(self.retain), generator=generator).tolist()
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.forget)

    def __getitem__(self, index: int) -> tuple[Example, Example]:
        position = (self.epoch * len(self.forget) + index) % len(self.retain)
        return self.forget[index], self.retain[self.order[position]]


class PairEpochCallback(TrainerCallback):
    """Tells the pairs which epoch the trainer is in (resumed runs included), so retain partners move on."""

    def __init__(self, pairs: ForgetRetainPairs) -> None:
        self.pairs = pairs

    def on_epoch_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: object
    ) -> None:
        self.pairs.epoch = int(state.epoch or 0)


class PairCollator:
    """Collates pairs into named batches: ``{name: training_batch(...)}`` for each name ``select`` returns."""

    def __init__(self, processor: ProcessorMixin, select: Callable[[Example, Example], dict[str, Example]]) -> None:
        self.processor, self.select = processor, select

    def __call__(self, pairs: list[tuple[Example, Example]]) -> dict[str, BatchFeature]:
        items = [self.select(forget, retain) for forget, retain in pairs]
        return {name: training_batch(self.processor, [item[name] for item in items]) for name in items[0]}
