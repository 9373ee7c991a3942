"""Shared helpers of the experiment scripts: run a config through the real CLI, tabulate results."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import torch

OPEN_SESEMI = str(Path(sys.executable).parent / "open_sesemi")


def run_config(config: str, overrides: list[str], runs_dir: Path, run_id: str, data_root: Path | None = None) -> dict:
    """Runs `open_sesemi -cn config overrides...` and returns its results.json (plus wall time)."""
    command = [OPEN_SESEMI, "-cn", config, f"run.dir={runs_dir}", f"run.id={run_id}", *overrides]
    if data_root is not None:
        command.append(f"run.data_root={data_root}")
    command.append("+trainer.enable_progress_bar=false")
    started = time.time()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    results_file = max((runs_dir / run_id).glob("*/results.json"), key=os.path.getmtime)
    results = json.loads(results_file.read_text())
    results["process_wall_time_s"] = round(time.time() - started, 1)
    return results


def mean_std(values: list[float]) -> str:
    """`mean ± std` in percent."""
    values = [100 * v for v in values]
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f} ± {spread:.1f}"


def machine() -> str:
    """A one-line description of where the numbers were measured."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, no GPU used; Python {platform.python_version()}, "
        f"torch {torch.__version__}; {date.today().isoformat()}"
    )
