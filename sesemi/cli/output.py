"""What both command lines share: one-line errors, and output that suits a terminal or a pipe."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from sesemi.errors import user_error


@contextmanager
def exit_on_user_error() -> Iterator[None]:
    """Ends the program with `error: ...` and exit code 1 on a problem the user can fix; a bug
    keeps its traceback, as does everything with `HYDRA_FULL_ERROR=1`.

    Hydra prints composition errors over several lines and exits; here it raises them instead
    (its `HYDRA_FULL_ERROR` switch), so they are reported in one line like the others.
    """
    from sesemi.config.compose import hydra_error

    full_error = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        yield
    except Exception as error:
        message = user_error(error) or hydra_error(error)
        if message is None or full_error:
            raise
        print(f"error: {message}", file=sys.stderr)
        sys.exit(1)
    finally:
        if not full_error:
            os.environ.pop("HYDRA_FULL_ERROR", None)
