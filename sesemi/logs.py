"""Where sesemi's log lines are shown (a terminal, or the logging a program set up), and those a
user should not see twice, or at all: what a function returns, which a command prints itself,
and what a library writes about work sesemi does on the side; and counts that read as English
(`1 run`, `2 runs`)."""

from __future__ import annotations

import logging
import os
import sys
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


def show_notices(results: bool = True) -> None:
    """Prints sesemi's log lines from INFO up on stderr: how long a run will take, what a time
    budget allows, the labeled set, data decoded into memory, weights loaded, ... The command
    line calls it first, without `results` (the lines that repeat what a function returned, which
    it prints itself); `show_notices_unless_configured` calls it for a script or notebook. The
    other processes of a multi-process run repeat the first's lines, so theirs are left out."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(lambda record: _first_process() and (results or not is_result(record)))
    log = logging.getLogger("sesemi")
    log.addHandler(handler)
    log.setLevel(logging.INFO)


def show_notices_unless_configured() -> None:
    """`show_notices` when nothing would show sesemi's lines (a script or notebook that set up no
    logging; Hydra's and the command line's set it up), its lines kept from loggers set up later,
    which would print them twice: what Lightning does for its own lines."""
    log = logging.getLogger("sesemi")
    if not log.hasHandlers():
        show_notices()
        log.propagate = False


def _first_process() -> bool:
    """Whether this is the first process of a run (Lightning numbers the others it launches)."""
    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"


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
