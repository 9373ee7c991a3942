"""Run folders written by hand, as a training run writes them (see sesemi/runner.py).

Import from test modules in tests/ops as `from run_folders import ...` (not a conftest.py: that
would shadow tests/conftest.py for the modules that import from it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from sesemi.ownership import mark, record_checksum


def run_config(
    seed: int = 1,
    lr: float = 0.1,
    heads: Sequence[str] = ("rotation_prediction",),
    run_id: str = "digits",
) -> dict[str, Any]:
    """A `config.yaml` as a run writes it (the fields postprocess reads, and a few others)."""
    return {
        "run": {
            "seed": seed,
            "id": run_id,
            "dir": "./runs",
            "num_iterations": 20,
            "data_root": "./data/digits",
        },
        "learner": {
            "_target_": "sesemi.Classifier",
            "hparams": {
                "num_classes": 10,
                "model": {
                    "backbone": {"_target_": "sesemi.ConvNet", "widths": [4, 8]},
                    "supervised_loss": {"callable": {"_target_": "torch.nn.CrossEntropyLoss"}},
                    "regularization_loss_heads": {
                        name: {"head": {"input_data": name}} for name in heads
                    }
                    or None,
                },
                "optimizer": {"_target_": "torch.optim.SGD", "lr": lr},
            },
        },
    }


def write_run(
    folder: Path,
    config: dict[str, Any] | None = None,
    top1: Sequence[float] | None = (0.2, 0.5),
    checkpoints: Sequence[str] = ("best.ckpt", "last.ckpt"),
    mode: str = "FIT",
    state: str | None = "",
) -> Path:
    """Writes a run folder: `config.yaml`, `metrics.csv` (training loss every step, val/top1 at
    each of `top1`'s validations) and, unless `top1` is None (a failed run), `results.json`.

    Its `.sesemi` marker says `state`: by default finished, or failed when `top1` is None;
    None writes no marker (a run of an earlier release)."""
    folder.mkdir(parents=True)
    if state is not None:
        mark(folder, "run", state or ("failed" if top1 is None else "finished"))
    (folder / "config.yaml").write_text(yaml.safe_dump(config or run_config()))
    (folder / "checkpoints").mkdir()
    for name in checkpoints:
        (folder / "checkpoints" / name).write_bytes(b"0" * 1000)
        record_checksum(folder / "checkpoints" / name)  # as sesemi saves each checkpoint
    if top1 is None:
        return folder
    steps = 10 * len(top1)
    lines = ["epoch,step,train/loss,val/top1,val/loss"]
    lines += [f"0,{step},{2.0 - step / steps - top1[-1]:.3f},," for step in range(steps)]
    lines += [f"0,{10 * (i + 1) - 1},,{value},{1.0 - value}" for i, value in enumerate(top1)]
    (folder / "metrics.csv").write_text("\n".join(lines) + "\n")
    results = {
        "mode": mode,
        "run_dir": str(folder),
        "metrics": {"val/top1": top1[-1], "val/loss": 1.0 - top1[-1]},
        "global_step": steps,
        "wall_time_s": 12.5,
    }
    if mode == "FIT":
        results["best"] = {
            "val/top1": max(top1),
            "checkpoint": str(folder / "checkpoints" / "best.ckpt"),
        }
        results["last_checkpoint"] = str(folder / "checkpoints" / "last.ckpt")
    (folder / "results.json").write_text(json.dumps(results))
    return folder
