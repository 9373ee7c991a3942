"""Every command the docs show is one the installed sesemi takes.

The `sesemi ...` and `open_sesemi ...` lines of README.md, docs/ and the experiments' READMEs
(code blocks and inline code), and the examples in the commands' help, are parsed by the CLI
itself: a command, argument or option that no longer exists fails here, naming the page and
line. Code-block lines that train a built-in config are also composed, so
their overrides must name fields and groups the config has. The files the tutorials write
(code blocks with a `title="path"`) are written into a project and composed or trained.
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
import typer
import typer._click as click  # typer's own copy of click, whose classes its commands are
from conftest import TWO_TINY_STEPS
from hydra._internal.utils import get_args_parser

from sesemi import compose, run
from sesemi.cli.app import app
from sesemi.errors import SesemiError

ROOT = Path(__file__).resolve().parent.parent
PAGES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").rglob("*.md")),
    *sorted((ROOT / "experiments").glob("*/README.md")),  # the site shows them too
]
FENCE = re.compile(r"^\s*```")
SCRIPT_FENCES = {"bash", "sh", "shell"}  # every line is a command
PROMPT_FENCES = {"", "console", "text"}  # only `$ ` lines are; the others are output
OPERATORS = {"&&", "||", ";", "|"}
REDIRECTS = {">", ">>", "<", "2>", "2>&1"}
INLINE = re.compile(r"`((?:open_)?sesemi [^`]+)`")
TITLED_BLOCK = re.compile(r'^```\w+ title="([^"]+)"\n(.*?)^```', re.S | re.M)


class Command(NamedTuple):
    """A command as a page shows it."""

    where: str  # page:line
    tokens: list[str]
    in_block: bool  # from a code block (else inline code in prose)
    fails: bool = False  # the page shows it failing: the next line is its `error: ...`


def _segments(tokens: list[str]) -> Iterator[list[str]]:
    """The commands of a shell line: split at `&&`, `|`, ..., without redirections."""
    segment: list[str] = []
    skip = False
    for token in tokens:
        if skip:
            skip = False
        elif token in OPERATORS:
            yield segment
            segment = []
        elif token in REDIRECTS:
            skip = token != "2>&1"
        else:
            segment.append(token)
    yield segment


def _commands_in(text: str, name: str) -> Iterator[Command]:
    lines = text.splitlines()
    fence: str | None = None
    pending, start = "", 0

    def commands(line: str, where: str, in_block: bool, fails: bool = False) -> Iterator[Command]:
        for tokens in _segments(shlex.split(line, comments=in_block)):
            if tokens[:1] in (["sesemi"], ["open_sesemi"]):
                yield Command(where, tokens, in_block, fails)

    for number, line in enumerate(lines, 1):
        if FENCE.match(line):
            fence = None if fence is not None else line.strip().strip("`").split(" ")[0]
            continue
        if fence is None:
            for found in INLINE.findall(line):
                yield from commands(found, f"{name}:{number}", False)
            continue
        text = line.strip()
        if fence in PROMPT_FENCES and not pending:
            if not text.startswith("$ "):
                continue
            text = text[2:]
        elif fence not in SCRIPT_FENCES | PROMPT_FENCES:
            continue
        if not pending:
            if not text.startswith(("sesemi ", "open_sesemi ")):
                continue
            start = number
        pending += text.removesuffix("\\") + " "
        if not text.endswith("\\"):
            fails = number < len(lines) and lines[number].strip().startswith("error:")
            yield from commands(pending, f"{name}:{start}", True, fails)
            pending = ""


def _help_examples() -> str:
    """The examples of every command's help, as the generated command reference shows them."""
    examples = [
        line.strip()
        for command in typer.main.get_command(app).commands.values()
        for line in (command.help or "").splitlines()
        if line.strip().startswith("$ ")
    ]
    return "```console\n" + "\n".join(examples) + "\n```\n"


COMMANDS = [
    *(
        c
        for page in PAGES
        for c in _commands_in(page.read_text(encoding="utf-8"), str(page.relative_to(ROOT)))
    ),
    *_commands_in(_help_examples(), "sesemi --help examples"),
]
PLACEHOLDER = re.compile(r"<[^>]*>|\.\.\.|^[A-Z_]+$|\[[A-Z_]+\]")


def _is_placeholder(tokens: list[str]) -> bool:
    return any(PLACEHOLDER.search(token) for token in tokens)


def _first_values(overrides: list[str]) -> list[str]:
    """A sweep's overrides (`key=a,b`) as the first job's (`key=a`)."""
    first = []
    for override in overrides:
        key, _, value = override.partition("=")
        if "," in value and not re.search(r"[\[\]{}'\"]", value):
            value = value.split(",")[0]
        first.append(f"{key}={value}" if _ else override)
    return first


def _open_sesemi(tokens: list[str], strict: bool = True) -> tuple[str | None, list[str], bool]:
    """(config name, overrides, composable) of an open_sesemi line, parsed by Hydra's own
    argument parser (so flags after overrides fail, as they do on the command line). Not
    strict (inline code in prose, which may name a flag without its value): flags must exist."""
    parser = get_args_parser()
    if not strict or tokens == ["--version"]:  # open_sesemi answers --version before Hydra
        for token in tokens:
            if token.startswith("-") and token != "--version":
                assert token in parser._option_string_actions, f"open_sesemi has no flag {token}"
        return None, [], False

    def error(message: str) -> None:
        raise AssertionError(f"open_sesemi: {message}")

    parser.error = error  # type: ignore[method-assign]
    try:
        args = parser.parse_args(tokens)
    except SystemExit:  # --help, --hydra-help print and stop
        return None, [], False
    composable = args.config_dir is None and args.config_path is None  # else a folder of yours
    return args.config_name, list(args.overrides), composable


def _sesemi(tokens: list[str], strict: bool = True) -> click.Context | None:
    """Parses a sesemi line with the CLI's own parser: the command's context, or None for an
    option that acts while parsing (--help, --version, --install-completion: they must exist,
    and are never run) or a placeholder such as COMMAND. Not strict (inline code in prose,
    which may leave out arguments): the command and its options must exist."""
    node = typer.main.get_command(app)
    path, args = [], list(tokens)
    while hasattr(node, "commands") and args and not args[0].startswith("-"):
        if PLACEHOLDER.search(args[0]):
            return None
        assert args[0] in node.commands, f"sesemi has no command {' '.join([*path, args[0]])}"
        path.append(args.pop(0))
        node = node.commands[path[-1]]
    name = " ".join(["sesemi", *path])
    known = {
        "--help",
        *(opt for param in node.params for opt in (*param.opts, *param.secondary_opts)),
    }
    flags = {arg.strip("[]").partition("=")[0] for arg in args if re.match(r"\[?-[-a-zA-Z]", arg)}
    # Commands that take overrides ignore unknown options (they would be overrides): check here.
    assert flags <= known, f"{name} has no option {', '.join(sorted(flags - known))}"
    acting = {"--help", *(opt for param in node.params if param.callback for opt in param.opts)}
    if flags & acting or not strict:
        return None
    return node.make_context(name, args)


def test_the_docs_show_commands_of_every_kind():
    """The extraction finds the pages' commands: a guard against a parser that finds none."""
    blocks = [c for c in COMMANDS if c.in_block]
    assert len(blocks) > 80 and len(COMMANDS) > 150
    assert {c.tokens[0] for c in COMMANDS} == {"sesemi", "open_sesemi"}


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.where)
def test_a_documented_command_parses(command):
    program, *tokens = command.tokens
    strict = command.in_block and not any(token.startswith("[") for token in tokens)  # a synopsis
    try:
        if program == "open_sesemi":
            _open_sesemi(tokens, strict=strict)
        else:
            _sesemi(tokens, strict=strict)
    except (click.ClickException, AssertionError) as error:
        message = error.format_message() if isinstance(error, click.ClickException) else str(error)
        pytest.fail(f"{command.where}: {' '.join(command.tokens)}: {message}")


def _composable() -> list[tuple[str, str, list[str]]]:
    """(where, config, overrides) of the code-block lines that train a built-in config."""
    found = {}
    for command in COMMANDS:
        program, *tokens = command.tokens
        if not command.in_block or command.fails or _is_placeholder(tokens):
            continue
        if program == "open_sesemi":
            name, overrides, composable = _open_sesemi(tokens)
        elif tokens[:1] == ["train"]:
            context = _sesemi(tokens)
            params = context.params if context is not None else {}
            name, overrides = (
                params.get("config_name") or params.get("config"),
                list(params.get("overrides") or ()),
            )
            composable = params.get("config_dir") is None and not str(name).endswith(".yaml")  # else a file of yours
        else:
            continue
        if (
            name
            and composable
            and not any(flag in tokens for flag in ("-h", "--help", "--hydra-help", "--version"))
        ):
            found.setdefault((name, tuple(_first_values(overrides))), command.where)
    return [(where, name, list(overrides)) for (name, overrides), where in found.items()]


def test_documented_training_commands_compose():
    """One test for all of them: composing shares Hydra's set-up, so this takes seconds."""
    failures = []
    for where, name, overrides in _composable():
        try:
            compose(name, overrides)
        except SesemiError as error:
            failures.append(f"{where}: {name} {' '.join(overrides)}: {error}")
    assert not failures, "\n".join(failures)


def _write_titled_files(page: str, project: Path) -> list[str]:
    written = []
    for title, body in TITLED_BLOCK.findall((ROOT / "docs" / page).read_text(encoding="utf-8")):
        path = project / title
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
        written.append(title)
    return written


def test_the_new_method_tutorial_trains_as_written(
    image_tree, tmp_path, monkeypatch, restore_attributes
):
    project = tmp_path / "project"
    written = _write_titled_files("tutorials/new-method.md", project)
    assert {"src/heads.py", "configs/method/confident_entropy.yaml"} <= set(written)
    monkeypatch.syspath_prepend(str(project))  # the commands import from the working folder
    for module in [m for m in sys.modules if m == "src" or m.startswith("src.")]:
        monkeypatch.delitem(sys.modules, module)
    config = compose(
        "digits",
        [
            "method=confident_entropy",
            f"run.data_root={image_tree.root}",
            *TWO_TINY_STEPS,
        ],
        config_dir=project / "configs",
    )
    result = run(config, tmp_path / "run")
    assert result.global_step == 2
    assert "train/entropy_loss" in (result.run_dir / "metrics.csv").read_text().splitlines()[0]


def test_the_timm_tutorials_backbone_option_composes(tmp_path):
    written = _write_titled_files("tutorials/timm-backbone.md", tmp_path)
    assert written == ["configs/backbone/efficientnet_b0.yaml"]
    config = compose("image", ["backbone=efficientnet_b0"], config_dir=tmp_path / "configs")
    backbone = config.learner.hparams.model.backbone
    assert backbone.name == "efficientnet_b0" and backbone.pretrained is True
