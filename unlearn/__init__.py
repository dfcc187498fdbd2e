"""Multimodal machine unlearning on the CLEAR benchmark.

Importing the package quiets one bitsandbytes log line before bitsandbytes is imported: on CPUs with AVX512-BF16,
bitsandbytes 0.50 tries to fetch a faster CPU kernel from the Hugging Face Hub (``kernels-community``) on import and
logs ``Failed to load CPU gemm_4bit_forward ...`` to stderr when it cannot. It then uses its own CPU kernel, which
is what this project tests; the line would otherwise precede every script's output and break its one-line errors.
"""

import logging

BITSANDBYTES_KERNEL_NOTICE = "Failed to load CPU gemm_4bit_forward from kernels-community"


def _not_the_kernel_notice(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith(BITSANDBYTES_KERNEL_NOTICE)


logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(_not_the_kernel_notice)
