"""Fixtures of the hub tests: an empty cache, repositories, and the tiny trained run to publish.

Test modules import them (`from hub_fixtures import cache, trained`); not a conftest.py, which
would shadow tests/conftest.py for the modules that import from it. The run is the session's
`trained_run` (tests/conftest.py), trained once however many modules use it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CLASS_STYLES, write_image

from sesemi.hub.archive import pack
from sesemi.hub.ids import model_uid
from sesemi.hub.lookup import ModelInfo
from sesemi.ownership import sha256


def write_images(root: Path, per_class: int, split: str) -> list[Path]:
    """`root/<split>/<class>/<i>.png` for the three classes of `CLASS_STYLES`."""
    paths = []
    for name, (color, stripes) in CLASS_STYLES.items():
        for i in range(per_class):
            paths.append(root / split / name / f"{i}.png")
            write_image(paths[-1], color, stripes, shade=10 * i)
    return paths


@pytest.fixture(scope="session")
def trained(trained_run) -> Path:
    """The run folder of the session's tiny trained model (tests/conftest.py): config.yaml,
    results.json, checkpoints/best.ckpt and last.ckpt."""
    return trained_run.run_dir


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
