"""The `${sesemi:<attribute>}` resolver: values known only once the data is built.

Example (in a config):
    num_classes: ${sesemi:num_classes}
    max_iters: ${sesemi:max_iterations}
    stop: ${sesemi:max_iterations,0.2}   # a fraction of an attribute, rounded to an integer
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from sesemi.errors import SesemiError
from sesemi.run_folder import note_unmade


@dataclass
class SESEMIConfigAttributes:
    """The attributes configs can reference as `${sesemi:<name>}`.

    Attributes:
        iterations_per_epoch: Training iterations (optimizer steps) in one epoch of the longest
            training loader.
        max_iterations: The training budget in iterations.
        num_gpus: The number of GPUs the run uses (0 on the CPU).
        num_nodes: The number of compute nodes.
        num_classes: The number of classes of the `supervised` training data set.
    """

    iterations_per_epoch: int | None = None
    max_iterations: int | None = None
    num_gpus: int = 0
    num_nodes: int = 1
    num_classes: int | None = None


_attributes = SESEMIConfigAttributes()


def set_attributes(attributes: SESEMIConfigAttributes) -> None:
    """Makes `attributes` the values `${sesemi:...}` resolves to."""
    global _attributes
    _attributes = attributes


def _resolve(name: str, fraction: float | None = None):
    names = [f.name for f in fields(SESEMIConfigAttributes)]
    if name not in names:
        raise SesemiError(f"unknown attribute ${{sesemi:{name}}}; choose one of: {', '.join(names)}")
    value = getattr(_attributes, name)
    if value is None:
        raise SesemiError(
            f"${{sesemi:{name}}} is not known for this run "
            "(it needs a `supervised` training loader and a training budget)"
        )
    return value if fraction is None else round(float(fraction) * value)


TIMESTAMP = "%Y-%m-%d_%H-%M-%S-%f"  # microseconds: two runs started in one second never share a folder


def run_folder(run: Any, stamp: str | None = None) -> str:
    """`<run.dir>/<run.id>/<run.method>/<timestamp>`: a run's folder, named after its config
    and method (without a method, `<run.dir>/<run.id>/<timestamp>`); `~` is the home folder."""
    stamp = stamp or datetime.now().strftime(TIMESTAMP)
    parts = [os.path.expanduser(run.get("dir") or "./runs"), str(run.get("id") or "default"), run.get("method"), stamp]
    return str(Path(*[part for part in parts if part]))


def sweep_folder(root: Any, stamp: str) -> str:
    """The folder of an `open_sesemi -m` sweep: `run_folder` of the config, but without the
    method when the sweep runs several (`-m method=a,b`), whose jobs would otherwise all be filed
    under the config's own method."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    task = root.get("hydra", {}).get("overrides", {}).get("task") or []
    overrides = OverridesParser.create().parse_overrides(list(task))
    methods = any(o.key_or_group == "method" and o.is_sweep_override() for o in overrides)
    run = root.get("run") or {}
    return run_folder({**run, "method": None} if methods else run, stamp)


def register_resolvers() -> None:
    """Registers sesemi's resolvers with OmegaConf (idempotent): `${sesemi:...}`, and
    `${sesemi_run_folder:STAMP}` and `${sesemi_sweep_folder:STAMP}` (the folders of a run and of a
    sweep of the config they are in, for Hydra, which makes them: `note_unmade` records which
    folders it will make)."""
    if not OmegaConf.has_resolver("sesemi"):
        OmegaConf.register_new_resolver("sesemi", _resolve)
    if not OmegaConf.has_resolver("sesemi_run_folder"):
        OmegaConf.register_new_resolver(
            "sesemi_run_folder", lambda stamp, *, _root_: note_unmade(run_folder(_root_.get("run") or {}, stamp))
        )
    if not OmegaConf.has_resolver("sesemi_sweep_folder"):
        OmegaConf.register_new_resolver("sesemi_sweep_folder", lambda stamp, *, _root_: note_unmade(sweep_folder(_root_, stamp)))
