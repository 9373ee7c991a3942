"""What both command lines share: one-line errors, and output that suits a terminal or a pipe."""

from __future__ import annotations

import dataclasses
import inspect
import os
import sys
import typing
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sesemi.errors import SesemiError, printable, user_error

# The user's HYDRA_FULL_ERROR, kept here while sesemi sets its own: the processes a multi-process
# run launches inherit both, and show tracebacks only if the user asked for them.
USER_FULL_ERROR = "SESEMI_USER_FULL_ERROR"


def _full_error() -> bool:
    """Whether the user asked for full tracebacks (`HYDRA_FULL_ERROR=1`)."""
    return os.environ.get(USER_FULL_ERROR, os.environ.get("HYDRA_FULL_ERROR")) == "1"


@contextmanager
def exit_on_user_error(config_dir: str | None = None) -> Iterator[None]:
    """Ends the program with `error: ...` and exit code 1 on a problem the user can fix; a bug
    keeps its traceback, as does everything with `HYDRA_FULL_ERROR=1`. Hydra raises composition
    errors here (its `HYDRA_FULL_ERROR` switch), so they are one line too, not printed over
    several; `config_dir`, the user's configs, lets them name a misshapen key."""
    from sesemi.config.compose import hydra_error

    before, full_error = os.environ.get("HYDRA_FULL_ERROR"), _full_error()
    recorded = USER_FULL_ERROR not in os.environ
    if recorded:
        os.environ[USER_FULL_ERROR] = "1" if full_error else "0"
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        yield
    except Exception as error:
        message = user_error(error) or hydra_error(error, config_dir)
        if message is None or full_error:
            raise
        print(f"error: {printable(message)}", file=sys.stderr)  # a name's bytes not UTF-8 as \xNN
        sys.exit(1)
    finally:
        if before is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = before
        if recorded:
            os.environ.pop(USER_FULL_ERROR, None)


def echo(text: str = "", end: str = "\n", err: bool = False) -> None:
    """Prints plain text, unwrapped, so that piped output is exactly what the command made."""
    print(text, end=end, file=sys.stderr if err else sys.stdout, flush=True)


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> None:
    """A table: drawn by rich on a terminal, tab-separated lines (header first) in a pipe."""
    rows = [[("" if cell is None else str(cell)) for cell in row] for row in rows]
    if not sys.stdout.isatty():
        if title:
            echo(f"# {title}")
        for row in [list(columns), *rows]:
            echo("\t".join(cell.replace("\t", " ") for cell in row))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns, title=title, title_justify="left", box=None)
    for row in rows:
        table.add_row(*row)
    Console().print(table)


@contextmanager
def progress(description: str) -> Iterator[Callable[[int, int], None]]:
    """A `report(done, total)` callback: a progress bar on a terminal, else a plain line every
    10% (and at the end), so logs of piped runs still show how far it got."""
    if sys.stderr.isatty():
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task(description, total=None)
            yield lambda done, total: bar.update(task, completed=done, total=total)
        return
    shown = [-1]

    def report(done: int, total: int) -> None:
        tenth = 10 * done // max(total, 1)
        if tenth > shown[0] or done == total:
            shown[0] = tenth
            echo(f"{description}: {done}/{total}", err=True)

    yield report


def key_values(settings: type | Callable[..., Any], items: Sequence[str], command: str, skip: Sequence[str] = ()) -> dict[str, Any]:
    """`["per_window=true", ...]` checked against the fields and types of a dataclass, or the
    keyword parameters of a function (all but `skip`), with their defaults for the rest."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if not dataclasses.is_dataclass(settings):
        settings = _keyword_dataclass(settings, skip)
    names = [field.name for field in dataclasses.fields(settings)]
    unknown = [item for item in items if "=" not in item or item.split("=", 1)[0] not in names]
    if unknown:
        raise SesemiError(f"{command} does not take {unknown[0]!r}; its settings: {', '.join(names)}=...")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(settings), OmegaConf.from_dotlist(list(items)))
    except OmegaConfBaseException as error:
        raise SesemiError(f"bad {command} setting: {str(error).splitlines()[0]}") from None
    return OmegaConf.to_container(merged)


def _keyword_dataclass(function: Callable[..., Any], skip: Sequence[str]) -> type:
    """A dataclass of a function's keyword parameters, the settings `key=value` may set: plain
    types (bool, int, float, str, optional or not) are checked, others taken as YAML values."""
    hints = typing.get_type_hints(function)
    plain = {bool, int, float, str, type(None)}
    fields = []
    for name, parameter in inspect.signature(function).parameters.items():
        if name in skip or parameter.default is inspect.Parameter.empty:
            continue
        hint = hints.get(name, Any)
        members = set(typing.get_args(hint)) or {hint}
        fields.append((name, hint if members <= plain else Any, dataclasses.field(default=parameter.default)))
    return dataclasses.make_dataclass(f"{function.__name__}_settings", fields)
