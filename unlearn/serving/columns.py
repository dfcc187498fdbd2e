"""Which models the app shows, and the title and headline figures of each column.

Models come from the command line, else from the environment (``CLEAR_BASE``, ``CLEAR_ADAPTERS`` comma-separated),
else from the quickstart's output folder. Titles and figures come from :func:`unlearn.hub.card.describe_adapter`
(run_config.json and summary.json), so the app and the Hub model card show the same names and numbers.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from unlearn.errors import UsageError
from unlearn.figures import HEADLINE
from unlearn.hub.card import describe_adapter, read_checkpoint
from unlearn.hub.resolve import resolve
from unlearn.models import precision_of

QUICKSTART = "outputs/quickstart"
BASE_ENV = "CLEAR_BASE"
ADAPTERS_ENV = "CLEAR_ADAPTERS"
HOW_TO_START = (
    "no models to show: run the quickstart first (it writes {root}), or name the models: "
    "python app.py --base MODEL --adapter ADAPTER [--adapter ADAPTER ...] "
    f"(or set {BASE_ENV} and {ADAPTERS_ENV}); each is a local folder or USER/NAME[@REVISION]"
)
_GENERIC_FOLDERS = ("adapter", "model")
NO_FIGURES = "*no evaluation summary*"


@dataclass(frozen=True)
class ShownModel:
    """One column of the app: the original model or an unlearned adapter, as the user named it."""

    source: str
    original: bool = False
    method: str | None = None
    forget: str | None = None
    figures: dict[str, float] = field(default_factory=dict)
    error: str | None = None  # why the model could not be loaded: the column shows it instead of answers

    @property
    def name(self) -> str:
        """A Hub id as given; a folder by its name (its parent's for ``.../unlearn-npo/adapter``)."""
        path = Path(self.source)
        if not path.expanduser().exists():
            return self.source
        return path.parent.name if path.name in _GENERIC_FOLDERS and path.parent.name else path.name

    @property
    def heading(self) -> str:
        """``Original``, or ``METHOD · FORGET`` (whichever parts are known, else ``Adapter``)."""
        if self.original:
            return "Original"
        return " · ".join(part for part in (self.method and self.method.upper(), self.forget) if part) or "Adapter"

    def markdown(self) -> str:
        """The column header: heading, name and headline figures (labels as on the model card) or NO_FIGURES."""
        labels = {key: HEADLINE[key].label if key in HEADLINE else key for key in self.figures}
        figures = " · ".join(f"{labels[key]} **{value:.3g}**" for key, value in self.figures.items())
        if self.error is not None:
            figures = f"⚠️ could not be loaded: {self.error}"
        return "\n\n".join([f"### {self.heading}", f"`{self.name}`", figures or NO_FIGURES])


def discover_quickstart(root: str | Path = QUICKSTART) -> tuple[str | None, list[str]]:
    """The quickstart's models: the base is the first of ``vanilla/model``, ``vanilla`` holding a config.json;
    the adapters are every ``unlearn-*/adapter`` or ``unlearn-*`` folder holding an adapter_config.json."""
    root = Path(root)
    base = next((str(root / c) for c in ("vanilla/model", "vanilla") if (root / c / "config.json").is_file()), None)
    adapters = []
    for run in sorted(path for path in root.glob("unlearn-*") if path.is_dir()):
        folder = next((f for f in (run / "adapter", run) if (f / "adapter_config.json").is_file()), None)
        if folder is not None:
            adapters.append(str(folder))
    return base, adapters


def split_list(value: str | None) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``."""
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def choose_models(
    base: str | None, adapters: Sequence[str], environ: Mapping[str, str], quickstart: str | Path = QUICKSTART
) -> tuple[str, list[str]]:
    """(base, adapters) from the command line, else the environment, else the quickstart folder.

    Adapters without a base run on the base model the first adapter names (run_config.json or adapter_config.json).
    """
    base = base or environ.get(BASE_ENV) or None
    adapters = list(adapters) or split_list(environ.get(ADAPTERS_ENV))
    if base is None and not adapters:
        base, adapters = discover_quickstart(quickstart)
    if base is None and adapters:
        base = describe_adapter(adapters[0])["base_model"]
        if base is None:
            raise UsageError(f"{adapters[0]} does not name its base model; pass --base MODEL")
    if base is None:
        raise UsageError(HOW_TO_START.format(root=quickstart))
    return base, adapters


def describe(source: str, original: bool = False) -> ShownModel:
    """The column of a model named by folder or ``USER/NAME[@REV]``; unreadable metadata only shortens the title."""
    try:
        info = describe_adapter(source)
    except UsageError as exc:
        warnings.warn(f"{source}: no title or figures ({exc})", stacklevel=2)
        return ShownModel(source, original)
    return ShownModel(source, original, info["method"], info["forget"], dict(info["figures"]))


def run_setting(source: str, key: str) -> str | None:
    """A text setting of a model's run_config.json (e.g. ``data``), or None where there is none."""
    try:
        value = read_checkpoint(resolve(source)).run_config.get(key)
    except UsageError:
        return None
    return value if isinstance(value, str) and value else None


def serving_quantization(requested: str | None, adapters: Sequence[str]) -> str | None:
    """``requested`` (``none`` for full precision), else the first adapter's training quantization
    (:func:`unlearn.models.precision_of`)."""
    return precision_of(requested, adapters[0] if adapters else None)
