"""The interface every unlearning method implements, and the batches it receives.

A method says which examples one training item feeds it (:meth:`UnlearnMethod.examples`, collated batch by batch
with the processor) and turns those batches into a loss (:meth:`UnlearnMethod.loss`). The trainer passes the global
optimiser step, so a method may use a different loss per optimiser step (SCRUB's alternating max and min steps).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from transformers import BatchFeature

from unlearn.errors import UsageError
from unlearn.prompts import Example

Batches = Mapping[str, BatchFeature]
Logs = dict[str, float]


def require_positive(**options: float) -> None:
    """Raise a UsageError naming the first option (``--NAME``) whose value is not > 0."""
    for name, value in options.items():
        if not value > 0:
            raise UsageError(f"--{name} must be > 0, not {value:g}")


@dataclass
class NoOptions:
    """A method without options of its own."""


class UnlearnMethod(ABC):
    """An unlearning loss over named batches (``forget``, ``retain``, or any others the method asks for).

    Subclasses set ``name`` (the ``--method`` value), a one-line ``description`` and ``options_class``, a dataclass
    whose fields (each with a ``help`` in its metadata) become command-line flags; the instance gets them as
    ``self.options``.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    options_class: ClassVar[type] = NoOptions

    def __init__(self, options: Any = None) -> None:
        self.options = options if options is not None else self.options_class()

    def examples(self, forget: Example, retain: Example) -> dict[str, Example]:
        """The named examples one training item (a forget example paired with a retain example) feeds this method.

        Each name becomes one batch in :meth:`loss`. Override to drop an unused batch (GA reads no retain batch) or
        to add one (a refusal answer on the forget prompt: ``{"refusal": forget.with_answer("I don't know.")}``).
        """
        return {"forget": forget, "retain": retain}

    def prepare(  # noqa: B027 - an optional hook, empty by default
        self, model: torch.nn.Module, forget: Sequence[Example], retain: Sequence[Example], seed: int
    ) -> None:
        """Called once before training with the adapted model, the whole forget and retain sets and the run's seed.

        A method that pairs prompts with answers drawn from a whole set (LLMU, SKU), or that chooses the weights it
        trains (RMU), does it here; nothing by default.
        """

    @abstractmethod
    def loss(self, model: torch.nn.Module, batches: Batches, step: int) -> tuple[torch.Tensor, Logs]:
        """The loss to minimise on ``batches`` at optimiser step ``step``, and the named terms to log."""

    def finish(self, model: torch.nn.Module) -> None:  # noqa: B027 - an optional hook, empty by default
        """Called once after training, before the final save: a method may edit its adapter here (SKU negates it)."""
