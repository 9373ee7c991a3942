"""Fixtures of the hub tests: an empty cache, repositories, and a tiny trained run to publish.

Test modules import them (`from hub_fixtures import cache, trained`); not a conftest.py, which
would shadow tests/conftest.py for the modules that import from it. The run is trained once per
session however many modules use it.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CLASS_STYLES, write_image
from hydra import compose, initialize_config_module

from sesemi.config import register_configs, register_resolvers
from sesemi.hub.archive import pack, sha256
from sesemi.hub.ids import model_uid
from sesemi.hub.lookup import ModelInfo
from sesemi.runner import execute

# `supervised` (with its EMA callback) on 16 px images with a 4-8 channel ConvNet: 4 steps.
TINY = [
    "run.num_iterations=4",
    "run.batch_size_per_gpu=6",
    "run.gpus=0",
    "learner.hparams.model.backbone.widths=[4,8]",
    "data.views.weak.crop_dim=16",
    "data.train.supervised.num_workers=0",
    "data.train.supervised.pin_memory=false",
    "trainer.val_check_interval=2",
    "+trainer.enable_progress_bar=false",
    "+trainer.enable_model_summary=false",
    "+trainer.log_every_n_steps=1",
]


def write_images(root: Path, per_class: int, split: str) -> list[Path]:
    """`root/<split>/<class>/<i>.png` for the three classes of `CLASS_STYLES`."""
    paths = []
    for name, (color, stripes) in CLASS_STYLES.items():
        for i in range(per_class):
            paths.append(root / split / name / f"{i}.png")
            write_image(paths[-1], color, stripes, shade=10 * i)
    return paths


@functools.cache
def _train(base: Path) -> Path:
    data = base / "hub-data"
    write_images(data, 3, "train")
    write_images(data, 2, "val")
    register_configs()
    register_resolvers()
    with initialize_config_module("sesemi.configs", version_base="1.3"):
        config = compose("image", ["method=supervised", f"run.data_root={data}", *TINY])
    run_dir = base / "hub-run"
    execute(config, run_dir)
    return run_dir


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run folder: config.yaml, results.json, checkpoints/best.ckpt and last.ckpt."""
    return _train(tmp_path_factory.getbasetemp())


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache (SESEMI_CACHE_ROOT) and no SESEMI_REPOSITORIES."""
    root = tmp_path / "cache"
    monkeypatch.setenv("SESEMI_CACHE_ROOT", str(root))
    monkeypatch.delenv("SESEMI_REPOSITORIES", raising=False)
    return root


@pytest.fixture
def memory_repository() -> Iterator[str]:
    """A `memory://` repository of its own, removed afterwards."""
    import fsspec

    url = f"memory://repo-{uuid.uuid4().hex[:8]}"
    yield url
    fs = fsspec.filesystem("memory")
    if fs.exists(url):
        fs.rm(url, recursive=True)


def replace_archive(repository: Path, uid: str, data: bytes, checksum: bool = True) -> None:
    """Overwrites a model's archive in a local repository, and its recorded SHA-256 if `checksum`
    (as a publisher with a bug, or an attacker with write access to the table, would)."""
    table_path = repository / "models.json"
    table = json.loads(table_path.read_text())
    row = table["models"][uid]["archive"]
    archive = repository / row["path"]
    archive.write_bytes(data)
    if checksum:
        row["sha256"], row["size"] = sha256(archive), len(data)
        table_path.write_text(json.dumps(table))


def fake_archive(folder: Path, info: ModelInfo) -> Path:
    """An archive with the files of a model (not a working one), for the repository and cache."""
    files = folder / info.uid
    files.mkdir(parents=True)
    (files / "meta.json").write_text(json.dumps(info.to_dict()))
    (files / "weights.safetensors").write_bytes(b"weights")
    (files / "config.yaml").write_text("learner: {}\n")
    pack(files, folder / f"{info.uid}.tar.gz")
    return folder / f"{info.uid}.tar.gz"


def model_info(name: str = "cnn", version: str = "1.0.0", subgroup: str | None = None) -> ModelInfo:
    return ModelInfo(model_uid(name, subgroup, {}, version), name, subgroup, version, labels=["a", "b"])
