"""Log lines a user should not see: those a library writes about work sesemi does on the side."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


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
