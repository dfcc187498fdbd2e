"""Command-line entry points: ``python -m scripts.NAME``."""

import unlearn as _library  # noqa: F401  (first: it quiets a bitsandbytes notice before peft imports bitsandbytes)
