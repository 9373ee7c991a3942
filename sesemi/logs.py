"""Log lines a user should not see twice, or at all: what a function returns, which a command
prints itself, and what a library writes about work sesemi does on the side; and counts that
read as English (`1 run`, `2 runs`)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

LIGHTNING_LOG = "pytorch_lightning.utilities.rank_zero"  # where Lightning says what its trainer does

# The `extra` of a log line that repeats what a function returns (a run's result, a published
# uid): the command line prints that itself, on stdout, and leaves the line out (`is_result`).
RESULT = {"sesemi_result": True}


def counted(number: int, noun: str) -> str:
    """`1 run`, `2 runs`: a count and its noun, in the plural unless it is one."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def is_result(record: logging.LogRecord) -> bool:
    """Whether a log record was written with `extra=RESULT`."""
    return getattr(record, "sesemi_result", False)


@contextmanager
def quiet(name: str, level: int = logging.WARNING) -> Iterator[None]:
    """Hides the lines of the logger `name` below `level` inside the block, e.g. Hydra's report
    of every import that fails before it raises, or the messages of a throwaway trainer."""
    log = logging.getLogger(name)
    before = log.level
    log.setLevel(level)
    try:
        yield
    finally:
        log.setLevel(before)
