"""The built-in configs ship inside the package, for wheels and editable installs alike."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUILTIN = [
    "base.yaml",
    "digits.yaml",
    "imagewoof.yaml",
    "backbone/convnet.yaml",
    "audio.yaml",
    "method/fixmatch.yaml",
    "audio_encoder/convnet.yaml",
]

COMPOSE = """
import sys, sesemi
assert sesemi.__file__.startswith(sys.argv[1]), sesemi.__file__
config = sesemi.compose("digits")
from sesemi.config.catalog import methods
assert "fixmatch" in methods(), methods()
print(config.learner.hparams.model.backbone._target_)
"""


def test_editable_install_finds_configs_from_any_directory(tmp_path):
    """The installed `open_sesemi` composes the built-in configs outside the repository."""
    help_text = subprocess.run(
        [Path(sys.executable).parent / "open_sesemi", "-cn", "digits", "--cfg", "job"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    ).stdout
    assert "sesemi.ConvNet" in help_text and "data_root: ./data/digits" in help_text


@pytest.mark.slow
def test_wheel_contains_and_serves_the_configs(tmp_path):
    """A wheel holds configs/ as sesemi/configs, and a plain install composes them."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(REPO)],
        check=True, capture_output=True,
    )
    wheel = next((tmp_path / "dist").glob("sesemi-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for config in BUILTIN:
        assert f"sesemi/configs/{config}" in names
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True, capture_output=True,
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    done = subprocess.run(
        [sys.executable, "-c", COMPOSE, str(target)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "sesemi.ConvNet"
