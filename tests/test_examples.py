"""The scripts in examples/ run as documented (a few training steps each, `--steps 3`), in the
order their docstrings give: train, predict, publish and load, a method of your own."""

from __future__ import annotations

import csv
import json
import runpy
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[1] / "examples"

pytestmark = pytest.mark.slow


def run_example(script: str, *args: str, path: Path | None = None) -> None:
    """Runs examples/<script> as `python examples/<script> ARGS...` does."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", [str(EXAMPLES / script), *args])
        patch.syspath_prepend(str(path or (EXAMPLES / script).parent))  # python puts it first
        runpy.run_path(str(EXAMPLES / script), run_name="__main__")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A working folder the examples share (data/digits is built once)."""
    folder = tmp_path_factory.mktemp("examples")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        yield folder


@pytest.fixture(scope="module")
def trained(project: Path) -> Path:
    """The run folder examples/train_digits.py makes."""
    run_example("train_digits.py", "--steps", "3")
    (run_dir,) = (project / "runs" / "digits" / "flexmatch").iterdir()
    return run_dir


def test_train_digits_writes_a_run_with_a_best_checkpoint(trained):
    assert (trained / "checkpoints" / "best.ckpt").is_file() and (
        trained / "results.json"
    ).is_file()


def test_predict_writes_a_row_per_validation_image(trained, project, capsys):
    run_example("predict.py", str(trained))
    assert "500 files" in capsys.readouterr().out
    with open(project / "predictions" / "predictions.csv") as file:
        assert len(list(csv.DictReader(file))) == 500


def test_predict_says_which_files_are_unreadable(trained, project, capsys):
    """A folder holding a damaged image (first in sorted order): its line says so."""
    folder = project / "new_images"
    folder.mkdir()
    (folder / "a_broken.png").write_bytes(b"not an image")
    (folder / "b.png").write_bytes(next((project / "data" / "digits" / "val").rglob("*.png")).read_bytes())
    run_example("predict.py", str(trained), str(folder), "--save-dir", str(project / "new_predictions"))
    assert "a_broken.png: unreadable, " in capsys.readouterr().out


def test_publish_and_load_predicts_with_the_published_model(trained, project, capsys):
    run_example("publish_and_load.py", str(trained), "--repository", str(project / "models"))
    out = capsys.readouterr().out
    assert "loaded digits-example@1.0.0" in out and out.count("data/digits/val/") == 3


def test_a_method_of_your_own_trains_from_its_folder(project, capsys):
    run_example("custom_method/train.py", "--steps", "3")
    (run_dir,) = (project / "runs" / "digits" / "confident_entropy").iterdir()
    assert "_target_: src.heads.ConfidentEntropyLossHead" in (run_dir / "config.yaml").read_text()
    assert json.loads((run_dir / "results.json").read_text())["global_step"] == 3
