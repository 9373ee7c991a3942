"""A project made the way a user makes one: `sesemi create`, `fetch digits`, `train` two seeds.

Test modules load the fixtures with `pytest_plugins = ["cli_project"]`. Not a conftest.py:
that would shadow tests/conftest.py for modules that import from it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sesemi.cli.app import app
from sesemi.ownership import MARKER, mark, marker, record_checksum

# A tiny network, few images per step and 4 steps: a run takes seconds on a CPU.
TINY = [
    "run.num_iterations=4",
    "trainer.val_check_interval=2",
    "+trainer.log_every_n_steps=1",
    "learner.hparams.model.backbone.widths=[4,8]",
    "run.batch_size_per_gpu=8",
    "run.mu=0.5",  # 4 unlabeled images per step
    "run.gpus=0",
    "+trainer.enable_progress_bar=false",
    "+trainer.enable_model_summary=false",
]


@pytest.fixture
def sesemi_cli(monkeypatch: pytest.MonkeyPatch) -> Callable[..., object]:
    """`sesemi_cli("list", "--pattern", "x")` runs the command in-process; returns the result."""
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)

    def invoke(*args: str) -> object:
        return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "250"})

    return invoke


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """create -> fetch digits -> train seeds 1 and 2 of configs/custom.yaml, through the CLI."""
    root = tmp_path_factory.mktemp("project") / "demo"
    runner = CliRunner()
    previous = os.getcwd()
    try:
        assert runner.invoke(app, ["create", str(root)]).exit_code == 0
        os.chdir(root)  # the config's paths are relative to the project, as for a user
        done = runner.invoke(app, ["fetch", "digits"])
        assert done.exit_code == 0, done.output
        for seed in (1, 2):
            done = runner.invoke(app, ["train", "-cd", "configs", "custom", f"run.seed={seed}", *TINY])
            assert done.exit_code == 0, done.output
    finally:
        os.chdir(previous)
    return root


@pytest.fixture
def runs_copy(project: Path, tmp_path: Path) -> Path:
    """A copy of the project's runs, for commands that delete or add files: each run marked
    anew, and each checkpoint's checksum written anew, as a copied marker or checksum proves
    nothing (it names the folder or file it was written for)."""
    copy = Path(shutil.copytree(project / "runs", tmp_path / "runs", symlinks=True))
    for found in (project / "runs").rglob(MARKER):
        state = marker(found.parent)
        if state is not None and state.kind == "run":
            mark(copy / found.parent.relative_to(project / "runs"), "run", state.state)
    for checkpoint in copy.rglob("checkpoints/*.ckpt"):
        record_checksum(checkpoint)
    return copy
