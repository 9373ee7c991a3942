"""The hub's commands: sesemi publish, models, load, and inference of a published model."""

from __future__ import annotations

import csv

import pytest
from hub_fixtures import cache, trained, write_images  # noqa: F401 (fixtures)
from typer.testing import CliRunner

import sesemi.cli
from sesemi.cli.app import app
from sesemi.hub import info, model_uid


def sesemi_cli(*args) -> object:
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "250"})


@pytest.fixture
def repository(trained, tmp_path, cache, monkeypatch):  # noqa: F811
    """tiny@1.0.0 published with `sesemi publish`, the repository in SESEMI_REPOSITORIES."""
    repository = tmp_path / "repo"
    done = sesemi_cli("publish", trained, "--name", "tiny", "--version", "1.0.0", "-r", repository,
                      "--subgroup", "images", "--param", "rate=16000", "--param", "task=colours", "--author", "Ada")
    assert done.exit_code == 0, done.output
    assert done.output.startswith("published images.tiny@1.0.0 as ")  # the name it is loaded by
    monkeypatch.setenv("SESEMI_REPOSITORIES", str(repository))
    return repository


def test_publish_then_list_then_load(repository, cache):  # noqa: F811
    uid = model_uid("tiny", "images", {"rate": 16000, "task": "colours"}, "1.0.0")
    assert info(uid).params == {"rate": 16000, "task": "colours"} and info(uid).author == "Ada"
    done = sesemi_cli("models")
    assert done.exit_code == 0, done.output
    assert uid in done.output and "images.tiny@1.0.0" in done.output and "rate=16000" in done.output
    done = sesemi_cli("load", "images.tiny@1.0.0", "--device", "cpu")
    assert done.exit_code == 0, done.output
    assert f"images.tiny@1.0.0 ({uid}): 3 classes (blue, green, red), in {cache}" in done.output.replace("\n", "")


def test_inference_takes_a_uid_or_name_at_version(repository, trained, tmp_path):  # noqa: F811
    images = tmp_path / "images"
    write_images(images, 1, "new")
    outputs = []
    for model in (trained, "images.tiny@1.0.0", sesemi.hub.models()[0].uid):
        folder = tmp_path / f"out{len(outputs)}"
        done = sesemi_cli("inference", model, images, "--save-dir", folder, "--device", "cpu")
        assert done.exit_code == 0, done.output
        outputs.append(list(csv.reader((folder / "predictions.csv").open())))
    assert outputs[0] == outputs[1] == outputs[2] and len(outputs[0]) == 4


def test_inference_and_load_take_the_repository_as_an_option(repository, tmp_path, monkeypatch):
    monkeypatch.delenv("SESEMI_REPOSITORIES")
    images = tmp_path / "images"
    write_images(images, 1, "new")
    done = sesemi_cli("inference", "images.tiny@1.0.0", images, "--save-dir", tmp_path / "out", "--device", "cpu")
    assert done.exit_code == 1 and "SESEMI_REPOSITORIES" in done.output
    done = sesemi_cli("inference", "images.tiny@1.0.0", images, "--save-dir", tmp_path / "out", "-r", repository)
    assert done.exit_code == 0, done.output
    assert len(list(csv.reader((tmp_path / "out" / "predictions.csv").open()))) == 4
    assert sesemi_cli("load", "images.tiny@1.0.0", "-r", repository, "--device", "cpu").exit_code == 0


def test_errors_are_one_line(repository, trained):  # noqa: F811
    done = sesemi_cli("publish", trained, "--name", "tiny", "--version", "1.0.0", "-r", repository,
                      "--subgroup", "images")
    assert done.exit_code == 1 and done.output.startswith("error: images.tiny@1.0.0 is already published (as ")
    done = sesemi_cli("publish", trained, "--name", "tiny", "--version", "2.0.0", "-r", repository, "--param", "x")
    assert done.exit_code == 1 and done.output == "error: params are key=value, not 'x'\n"
    done = sesemi_cli("load", "nothing@1.0.0")
    assert done.exit_code == 1 and done.output.startswith("error: no model nothing@1.0.0 in ")
    done = sesemi_cli("models", "-r", "nosuch://models")
    assert done.exit_code == 1 and done.output.startswith("error: cannot open repository nosuch://models")
