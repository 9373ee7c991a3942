"""Audio through the console scripts: `open_sesemi` (audio method=fixmatch), `sesemi preprocess` and
`sesemi inference`.

Real subprocesses of the installed scripts on generated tones and chirps, with a tiny network
and budget (seconds each, mostly start-up).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from audio_samples import TINY_AUDIO_TRAINING, audio_tree, tone, write

OPEN_SESEMI = Path(sys.executable).parent / "open_sesemi"

TINY_AUDIO = [
    *TINY_AUDIO_TRAINING,
    "run.num_iterations=3",
    "run.mu=1",
    "trainer.val_check_interval=3",
    "+trainer.log_every_n_steps=1",
]


def open_sesemi(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    return subprocess.run(
        [str(OPEN_SESEMI), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=240
    )


@pytest.fixture(scope="module")
def fixmatch_run(tmp_path_factory) -> Path:
    """3 steps of `audio method=fixmatch` on a generated data set (wav, flac and ogg at 22.05 kHz)."""
    cwd = tmp_path_factory.mktemp("audio")
    tree = audio_tree(cwd / "sounds")
    done = open_sesemi("-cn", "audio", "method=fixmatch", f"run.data_root={tree.root}", "run.id=af", *TINY_AUDIO, cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (cwd / "runs" / "af" / "fixmatch").iterdir()  # runs/<id>/<method>/<time>
    return run_dir


@pytest.mark.slow
def test_audio_fixmatch_trains_and_saves_a_run(fixmatch_run):
    results = json.loads((fixmatch_run / "results.json").read_text())
    assert results["global_step"] == 3 and results["classes"] == ["chirp", "high", "low"]
    assert 0.0 <= results["metrics"]["val/top1"] <= 1.0
    config = yaml.safe_load((fixmatch_run / "config.yaml").read_text())
    assert config["learner"]["hparams"]["num_classes"] == 3
    with open(fixmatch_run / "metrics.csv") as file:
        logged = set(next(csv.reader(file)))
    assert {"train/fixmatch_loss", "train/supervised_loss"} <= logged


@pytest.mark.slow
def test_inference_writes_predictions(fixmatch_run, tmp_path):
    write(tmp_path / "in" / "long.wav", tone(300, seconds=3.0))
    command = [str(OPEN_SESEMI.parent / "sesemi"), "inference", str(fixmatch_run), str(tmp_path / "in")]
    done = subprocess.run(
        [*command, "--save-dir", str(tmp_path / "out")], cwd=tmp_path, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with open(tmp_path / "out" / "predictions.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 1 and rows[0]["label"] in ("chirp", "high", "low")


@pytest.mark.slow
def test_preprocess_fills_the_cache_training_reads(tmp_path):
    tree = audio_tree(tmp_path / "sounds", train=1, val=1, unlabeled=1)
    command = [str(OPEN_SESEMI.parent / "sesemi"), "preprocess", str(tree.root), "--sample-rate", "16000"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(list((tree.root / ".sesemi_cache" / "audio" / "16000").rglob("*.npy"))) == 7
