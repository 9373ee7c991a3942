"""The model cache (sesemi/hub/cache.py): where models go, verified downloads, lookups offline."""

from __future__ import annotations

from pathlib import Path

import pytest
from hub_fixtures import cache, fake_archive, model_info, replace_archive  # noqa: F401 (fixtures)

from sesemi.errors import SesemiError
from sesemi.hub import cache as hub_cache
from sesemi.hub.archive import pack
from sesemi.hub.repository import Repository


def published(tmp_path: Path, **fields) -> tuple[Repository, object, object]:
    repository = Repository(tmp_path / "repo")
    info = model_info(**fields)
    archive = repository.add(info, fake_archive(tmp_path / "upload", info))
    return repository, info, archive


def test_cache_root_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SESEMI_CACHE_ROOT", str(tmp_path / "mine"))
    assert hub_cache.cache_root() == tmp_path / "mine"
    monkeypatch.delenv("SESEMI_CACHE_ROOT")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub_cache.cache_root() == tmp_path / "xdg" / "sesemi" / "models"


def test_fetch_extracts_into_subgroup_name_version_uid(tmp_path, cache):  # noqa: F811
    repository, info, archive = published(tmp_path, subgroup="images.digits")
    folder = hub_cache.fetch(info, archive, repository)
    assert folder == cache / "images" / "digits" / "cnn" / "1.0.0" / info.uid
    assert hub_cache.read_info(folder) == info
    assert sorted(p.name for p in folder.parent.iterdir()) == [info.uid, f"{info.uid}.lock"]  # no scratch left


def test_cached_models_are_found_without_a_repository(tmp_path, cache, monkeypatch):  # noqa: F811
    repository, info, archive = published(tmp_path, subgroup="images.digits")
    assert hub_cache.find(info.uid) is None
    folder = hub_cache.fetch(info, archive, repository)
    monkeypatch.setattr(Repository, "download", None)  # any download would fail now
    assert hub_cache.fetch(info, archive, repository) == folder
    assert hub_cache.find(info.uid) == folder
    assert hub_cache.find("cnn@1.0.0") == folder == hub_cache.find("images.digits.cnn", "1.0.0")
    assert hub_cache.find("cnn") is None  # the latest version is the repository's to say
    assert hub_cache.find("other.cnn@1.0.0") is None and hub_cache.find("cnn@2.0.0") is None


@pytest.mark.parametrize(
    ("data", "checksum", "error"),
    [
        (b"tampered", False, "does not match the checksum recorded when it was published"),
        (b"\x1f\x8b\x08\x00truncated", True, "is truncated or corrupt"),
    ],
)
def test_bad_downloads_leave_nothing_in_the_cache(tmp_path, cache, data, checksum, error):  # noqa: F811
    repository, info, archive = published(tmp_path)
    replace_archive(tmp_path / "repo", info.uid, data, checksum)
    info, archive = repository.rows()[info.uid]
    with pytest.raises(SesemiError, match=error):
        hub_cache.fetch(info, archive, repository)
    assert [p.name for p in (cache / "cnn" / "1.0.0").iterdir()] == [f"{info.uid}.lock"]


def test_an_archive_of_another_model_or_without_weights_is_refused(tmp_path, cache):  # noqa: F811
    repository, info, archive = published(tmp_path)
    other = model_info("rnn")
    replace_archive(tmp_path / "repo", info.uid, fake_archive(tmp_path / "other", other).read_bytes())
    info, archive = repository.rows()[info.uid]
    with pytest.raises(SesemiError, match=f"holds another model \\({other.uid}\\)"):
        hub_cache.fetch(info, archive, repository)
    (tmp_path / "upload" / info.uid / "weights.safetensors").unlink()
    pack(tmp_path / "upload" / info.uid, tmp_path / "no-weights.tar.gz")
    replace_archive(tmp_path / "repo", info.uid, (tmp_path / "no-weights.tar.gz").read_bytes())
    info, archive = repository.rows()[info.uid]
    with pytest.raises(SesemiError, match="has no weights.safetensors"):
        hub_cache.fetch(info, archive, repository)
    assert hub_cache.find(info.uid) is None


def test_a_missing_archive_is_one_error_line(tmp_path, cache):  # noqa: F811
    repository, info, archive = published(tmp_path)
    (tmp_path / "repo" / archive.path).unlink()
    with pytest.raises(SesemiError, match=f"the archive of {info.uid} .* is missing from its repository"):
        hub_cache.fetch(info, archive, repository)
