"""A stub PEFT model for the methods' unit tests: fixed logits per named batch, other ones with the adapter off."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace

import torch
from transformers import BatchFeature

BATCH_IDS = {"forget": 1, "retain": 2, "refusal": 3, "mismatch": 4}


def stub_batch(name: str, labels: torch.Tensor) -> BatchFeature:
    """A batch with ``labels`` that :class:`StubPeftModel` recognises as ``name`` (by its first input id)."""
    input_ids = torch.zeros_like(labels)
    input_ids[:, 0] = BATCH_IDS[name]
    return BatchFeature({"input_ids": input_ids, "labels": labels})


class StubPeftModel(torch.nn.Module):
    """Returns ``logits[name]`` for the batch called ``name``, ``reference[name]`` inside ``disable_adapter()``.

    ``seen`` records the names of the batches it was run on.
    """

    def __init__(self, logits: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.logits, self.reference, self.disabled, self.seen = logits, reference, False, []
        self.names = {index: name for name, index in BATCH_IDS.items()}

    @contextmanager
    def disable_adapter(self) -> Iterator[None]:
        self.disabled = True
        try:
            yield
        finally:
            self.disabled = False

    def forward(self, input_ids: torch.Tensor, **kwargs: object) -> SimpleNamespace:
        assert "labels" not in kwargs, "methods compute their losses from the logits"
        name = self.names[int(input_ids[0, 0])]
        self.seen.append(name)
        return SimpleNamespace(logits=(self.reference if self.disabled else self.logits)[name])
