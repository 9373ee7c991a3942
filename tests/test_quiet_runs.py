"""A run prints nothing a user cannot act on: no Python warnings, and none of Lightning's lines
about missing accelerators, its own model summary or product tips (sesemi/trainer.py); and what
the command line prints reaches a script's user too (sesemi/logs.py)."""

from __future__ import annotations

import logging
import subprocess
import sys
import warnings

import pytest
import torch

from sesemi.trainer import _NOISE, devices

# Loader settings a user can act on (the configs' own choice); everything else as configured,
# with the progress line and model summary of a run whose output is not a terminal.
QUIET_TINY = [
    "method=fixmatch",
    "run.num_iterations=3",
    "run.batch_size_per_gpu=4",
    "run.gpus=0",
    "learner.hparams.model.backbone.widths=[4,8]",
    "data.views.weak.crop_dim=16",
    "data.train.supervised.num_workers=0",
    "data.train.supervised.pin_memory=false",
]


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_a_tiny_run_emits_no_warning_and_no_lightning_noise(
    image_tree, tmp_path, restore_attributes
):
    """Three FixMatch steps on nine images (fewer batches than the logging interval, no GPU,
    no loader workers) warn about nothing, and the log has none of Lightning's idle lines."""
    from sesemi import compose, run

    lightning = logging.getLogger("pytorch_lightning")
    lines = Lines()
    lightning.addHandler(lines)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            config = compose("image", [f"run.data_root={image_tree.root}", *QUIET_TINY])
            result = run(config, tmp_path / "run")
    finally:
        lightning.removeHandler(lines)
    assert result.best_checkpoint is not None
    assert [f"{w.category.__name__}: {w.message}" for w in caught] == []
    assert [m for m in lines.messages if any(noise in m for noise in _NOISE)] == []
    assert any(
        "Trainer.fit` stopped" in m for m in lines.messages
    )  # the handler saw Lightning's log


def test_an_unused_gpu_is_named_with_the_setting_that_uses_it(monkeypatch, caplog):
    """With a GPU present and run.gpus=0, the one line says how to train on it."""
    from sesemi import trainer

    trainer._notice.cache_clear()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with caplog.at_level(logging.WARNING, logger="sesemi.trainer"):
        assert devices(0) == ("cpu", 1)
    assert "set run.gpus=-1 to train on it" in caplog.text
    trainer._notice.cache_clear()


@pytest.mark.parametrize(
    "line", ["GPU available: False, used: False", "TPU available: False, using: 0 TPU cores"]
)
def test_idle_accelerator_lines_are_dropped_and_others_kept(line):
    """Lightning's lines about absent accelerators go; a line about a GPU in use stays."""
    rank_zero = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    record = rank_zero.makeRecord(rank_zero.name, logging.INFO, __file__, 0, line, None, None)
    kept = rank_zero.makeRecord(
        rank_zero.name,
        logging.INFO,
        __file__,
        0,
        "GPU available: True (cuda), used: True",
        None,
        None,
    )
    assert not rank_zero.filter(record) and rank_zero.filter(kept)


def test_a_script_that_sets_up_no_logging_sees_what_the_command_line_says_once(image_tree, tmp_path):
    """`sesemi.run` from a script or notebook prints sesemi's notices and its result as the
    command line does, and logging set up afterwards does not print them a second time."""
    script = f"""
import logging, sys
import sesemi
overrides = {[f"run.data_root={image_tree.root}", *QUIET_TINY, "run.num_iterations=1"]!r}
sesemi.run(sesemi.compose("image", overrides), {str(tmp_path / "first")!r})
logging.basicConfig(level=logging.INFO, format="AGAIN %(message)s", stream=sys.stderr)
sesemi.run(sesemi.compose("image", overrides), {str(tmp_path / "second")!r})
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines.count("9 labeled images: 3 of each of 3 classes") == 2  # once a run
    assert any(line.startswith(f"{tmp_path / 'second'}: val/loss=") for line in lines)
    assert not any(line.startswith("AGAIN 9 labeled") for line in lines)
