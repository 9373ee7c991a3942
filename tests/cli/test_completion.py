"""Shell completion of `sesemi` (sesemi/cli/completion.py): commands, the built-in configs and
methods from the installed package, in bash, zsh and fish, as the installed script asks."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from sesemi.cli.app import app
from sesemi.cli.completion import EXPORT_FORMATS
from sesemi.config import catalog


def complete(shell: str, line: str) -> list[str]:
    """What `sesemi` offers at the end of `line` in `shell`, as its completion script asks."""
    env = {"_SESEMI_COMPLETE": f"complete_{shell}"}
    if shell == "bash":  # bash splits at `=` and passes the words and the index of the last
        words = line.replace("=", " = ").split() + ([""] if line.endswith(" ") else [])
        env |= {"COMP_WORDS": " ".join(words), "COMP_CWORD": str(len(words) - 1)}
    else:
        env |= {"_TYPER_COMPLETE_ARGS": line, "_TYPER_COMPLETE_FISH_ACTION": "get-args"}
    done = CliRunner().invoke(app, [], prog_name="sesemi", env=env)
    assert done.exit_code == 0, done.output
    if shell == "zsh":  # _arguments '*: :(("a"\n"b":"its help"))'
        items = done.output.split("((", 1)[-1].split("))")[0].splitlines()
        return [item.split('":"')[0].strip('"') for item in items if item]
    return [item.split("\t")[0] for item in done.output.splitlines() if item]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_methods_complete_after_method_equals(shell):
    """`sesemi train digits method=f<Tab>` offers the methods the package ships that start with f."""
    offered = complete(shell, "sesemi train digits method=f")
    expected = [m for m in catalog.methods() if m.startswith("f")]
    assert len(expected) >= 2
    prefix = "" if shell == "bash" else "method="  # bash replaces only the word after `=`
    assert offered == [prefix + m for m in expected]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_every_method_completes_after_a_bare_method_equals(shell):
    """`sesemi train digits method=<Tab>`: bash passes `=` as the word being completed."""
    prefix = "" if shell == "bash" else "method="
    assert complete(shell, "sesemi train digits method=") == [prefix + m for m in catalog.methods()]


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_commands_configs_groups_and_formats_complete(shell):
    """Commands, data configs, `group=`, `group/name` and export formats are offered."""
    assert "train" in complete(shell, "sesemi tr")
    assert complete(shell, "sesemi train dig") == [
        c for c in catalog.data_configs() if c.startswith("dig")
    ]
    assert "backbone=" in complete(shell, "sesemi train digits back")
    assert complete(shell, "sesemi show method/fix") == ["method/fixmatch"]
    assert complete(shell, "sesemi list meth") == ["method"]
    assert complete(shell, "sesemi export runs/x --format t") == ["torchscript"]


def test_export_formats_are_the_exporters():
    """The formats offered are those `sesemi export` writes."""
    from sesemi.export import FORMATS

    assert EXPORT_FORMATS == tuple(FORMATS)


@pytest.mark.parametrize(
    ("shell", "line"),
    [
        ("bash", "complete -o default -F _sesemi_completion sesemi"),
        ("zsh", "compdef _sesemi_completion sesemi"),
        ("fish", "complete --command sesemi"),
    ],
)
def test_the_documented_install_line_prints_the_script(shell, line):
    """`_SESEMI_COMPLETE=source_<shell> sesemi` (docs/cli.md) prints the shell's script."""
    done = CliRunner().invoke(
        app, [], prog_name="sesemi", env={"_SESEMI_COMPLETE": f"source_{shell}"}
    )
    assert done.exit_code == 0 and line in done.output
