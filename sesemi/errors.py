"""The one exception type sesemi raises for problems a user can fix, how to find it in a chain
of errors, how to print a message anywhere, and the check of a named choice."""

from __future__ import annotations

import os
from enum import Enum
from typing import TypeVar

E = TypeVar("E", bound=Enum)


class SesemiError(Exception):
    """A problem with the user's input (data, config, checkpoint) and how to fix it.

    The command lines print these as a single ``error: ...`` line instead of a traceback; set
    ``HYDRA_FULL_ERROR=1`` to see the traceback.
    """


def one_of(choices: type[E], value: object, name: str) -> E:
    """The member of `choices` that `value` names, or a SesemiError listing the allowed values.

    Args:
        choices: The Enum of allowed settings.
        value: A setting, e.g. from a config (a value of `choices`, or a member).
        name: What the setting is called in the config, for the message.

    Returns:
        The member of `choices`.
    """
    try:
        return choices(value)
    except ValueError:
        allowed = ", ".join(str(choice.value) for choice in choices)
        raise SesemiError(f"{name} must be one of {allowed}, not {value!r}") from None


def first_line(error: BaseException) -> str:
    """An error's message on one line, its first; the error's type when it has none."""
    text = str(error).strip()
    return text.splitlines()[0].strip() if text else type(error).__name__


def printable(text: object) -> str:
    """A path or message as it can be printed anywhere: the bytes of a file name that are not
    UTF-8 (held as surrogates, see os.fsdecode) are shown as `\\xNN` escapes."""
    text = os.fsdecode(text) if isinstance(text, (bytes, os.PathLike)) else str(text)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def user_error(error: BaseException | None) -> str | None:
    """The one-line message of an error the user can fix, or None for a bug.

    Follows the chain of causes, so a `SesemiError` raised while Hydra instantiated a class, or
    in a data loader's worker process, is still found.
    """
    from hydra.errors import InstantiationException

    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        # the file system's refusal of a path the user gave (a file where a folder goes, a full disk)
        paths = " -> ".join(str(name) for name in (error.filename, error.filename2) if name is not None)
        return f"{error.strerror}: {paths}"
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, SesemiError):
            message = str(error)
            if "Original Traceback" in message:  # re-raised from a DataLoader worker
                message = message.strip().splitlines()[-1].split("SesemiError: ", 1)[-1]
            return message
        if isinstance(error, InstantiationException):
            inner = user_error(error.__cause__) if error.__cause__ else None
            return inner or " ".join(str(error).split())
        error = error.__cause__ or error.__context__
    return None


def retired(command: str, instead: str) -> SystemExit:
    """The exit of a `python -m` command of sesemi 0.3 whose module still exists, which would
    otherwise run as an import and do nothing: one line naming what replaced it."""
    return SystemExit(f"error: `{command}` is sesemi 0.3's; use {instead} (see docs/migration.md)")
