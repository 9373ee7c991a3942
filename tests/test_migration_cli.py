"""sesemi 0.3's command lines that no longer exist stop with one line naming today's."""

from __future__ import annotations

import subprocess
import sys


def test_python_m_sesemi_trainer_names_open_sesemi():
    """`python -m sesemi.trainer -cn imagewoof` (0.3's entry point) exits 1 naming the new one,
    where it would otherwise do nothing and exit 0."""
    done = subprocess.run(
        [sys.executable, "-m", "sesemi.trainer", "-cn", "imagewoof"], capture_output=True, text=True
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: `python -m sesemi.trainer` is sesemi 0.3's; use `open_sesemi` with the same "
        "arguments, or `sesemi train` (see docs/migration.md)"
    ]


def test_python_m_sesemi_ops_pseudo_dataset_names_sesemi_pseudo_label():
    done = subprocess.run(
        [sys.executable, "-m", "sesemi.ops.pseudo_dataset", "-cn", "x", "checkpoint_path=a.ckpt"], capture_output=True, text=True
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: `python -m sesemi.ops.pseudo_dataset` is sesemi 0.3's; use `sesemi pseudo-label TEACHER DATA_ROOT` "
        "(see docs/migration.md)"
    ]
