"""Scripts print only their own output: the bitsandbytes kernel notice is dropped, other log records are kept."""

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from unlearn import BITSANDBYTES_KERNEL_NOTICE

REPO = Path(__file__).resolve().parents[2]


def test_the_notice_is_dropped_and_other_records_of_that_logger_are_kept(caplog):
    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    with caplog.at_level(logging.WARNING, logger=logger.name):
        logger.warning("%s: No module named 'kernels'.", BITSANDBYTES_KERNEL_NOTICE)
        logger.warning("something else went wrong")
    assert [record.getMessage() for record in caplog.records] == ["something else went wrong"]


@pytest.mark.parametrize("package", ["unlearn", "eval", "scripts"])
def test_importing_a_package_then_peft_prints_nothing(package):
    code = f"import {package}, peft, bitsandbytes"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stderr == ""
