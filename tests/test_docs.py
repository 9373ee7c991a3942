"""The documentation site's generated pages list every command, config, schema class and method.

docs/gen_pages.py makes them at every `make docs`; these tests call its page functions
directly, without mkdocs, so a command or method the pages miss fails here first.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest

from sesemi.config import catalog, structs

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def gen_pages():
    spec = importlib.util.spec_from_file_location("gen_pages", ROOT / "docs" / "gen_pages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pages(gen_pages):
    return gen_pages.generated_pages()


def test_the_cli_page_has_every_command_with_its_help(gen_pages, pages):
    page = pages[gen_pages.CLI_PAGE]
    commands = gen_pages.sesemi_commands()
    assert len(commands) > 15
    for path, command in commands:
        name = " ".join(("sesemi", *path))
        assert f"`{name}`\n" in page, name
        assert f"Usage: {name} " in page, name
        first_sentence = command.help.split(".")[0].split("\n")[0]
        assert gen_pages.escape(first_sentence) in page, name
        for param in command.params:
            if not getattr(param, "hidden", False):  # `sesemi train -m` only points to open_sesemi
                assert param.opts[0] in page, f"{name} {param.opts[0]}"
    assert "$ open_sesemi --help" in page
    assert "Groups (GROUP=NAME):" in page


def test_the_schema_page_has_every_field_with_its_default_and_range(gen_pages, pages):
    page = pages[gen_pages.SCHEMA_PAGE]
    for cls in gen_pages.schema_classes():
        assert f"## `{cls.__name__}`" in page
        for f in dataclasses.fields(cls):
            if f.name != "defaults":
                assert f"| `{f.name}` |" in page, f"{cls.__name__}.{f.name}"
    assert "| `mu` | `float` | `7.0` | above 0 |" in page
    assert "| `rampup` | `float` | `0.2` | 0 to 1 |" in page
    assert "`data.train.<name>.dataset`" in page  # DatasetConfig, typed Any but named in its docs
    for path in structs.OPEN_RANGES:
        assert f"`{path}`" in page


def test_the_configs_page_has_every_data_config_and_group_option(gen_pages, pages):
    page = pages[gen_pages.CONFIGS_PAGE]
    for name in catalog.data_configs():
        assert f"| `{name}` |" in page
    for group in catalog.groups():
        assert f"### `{group}` group" in page
        for option in catalog.configs(group):
            assert f"`{group}={option}`" in page
    assert "| `digits` |" in page and "[`flexmatch`](methods.md#flexmatch)" in page


def test_the_method_table_has_every_method_with_its_loader_and_head(gen_pages, pages):
    page = pages[gen_pages.METHODS_PAGE]
    for method in catalog.methods():
        assert f"`method={method}`" in page
        assert f"### {method}\n" in page
    assert "`fixmatch`: `[weak, strong]`, `run.mu`" in page
    assert "`RotationPredictionLossHead`" in page


def test_links_that_leave_docs_point_at_the_site_copies(gen_pages):
    docs = ROOT / "docs"
    assert gen_pages.site_link("../experiments/letters/README.md", docs / "runs.md", "runs.md") == (
        "experiments/letters.md"
    )
    assert gen_pages.site_link(
        "../../CHANGELOG.md#unreleased", docs / "tutorials" / "x.md", "tutorials/x.md"
    ) == ("../changelog.md#unreleased")
    readme = ROOT / "experiments" / "spoken_digits_ssl" / "README.md"
    assert (
        gen_pages.site_link("../../docs/audio.md", readme, "experiments/spoken_digits_ssl.md")
        == "../audio.md"
    )
    assert (
        gen_pages.site_link("data.md#folder-layout", docs / "runs.md", "runs.md")
        == "data.md#folder-layout"
    )
    assert (
        gen_pages.site_link("https://hydra.cc", docs / "runs.md", "runs.md") == "https://hydra.cc"
    )
