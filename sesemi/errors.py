"""The one exception type sesemi raises for problems a user can fix, and a check of choices."""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

E = TypeVar("E", bound=Enum)


class SesemiError(Exception):
    """A problem with the user's input (data, config, checkpoint) and how to fix it.

    The CLI prints these as a single ``error: ...`` line instead of a traceback; set
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
