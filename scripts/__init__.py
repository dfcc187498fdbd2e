"""Command-line entry points: ``python -m scripts.NAME``."""

import unlearn  # noqa: F401  (first: it quiets a bitsandbytes import notice before peft imports bitsandbytes)
