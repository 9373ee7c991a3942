"""The model cache (sesemi/hub/cache.py): where models go, verified downloads, lookups offline."""

from __future__ import annotations

import dataclasses
import json
import shutil
import tarfile
from pathlib import Path

import pytest
from filelock import FileLock
from hub_fixtures import cache, fake_archive, model_info, replace_archive  # noqa: F401 (fixtures)

from sesemi.errors import SesemiError
from sesemi.hub import cache as hub_cache
from sesemi.hub.archive import pack
from sesemi.hub.repository import Repository, fetch, info
from sesemi.ownership import owned


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
    assert hub_cache.find("cnn@1.0.0") == folder == hub_cache.find("images.digits.cnn@1.0.0")
    assert hub_cache.find("cnn") is None  # the latest version is the repository's to say
    assert hub_cache.find("other.cnn@1.0.0") is None and hub_cache.find("cnn@2.0.0") is None


def test_a_name_is_the_given_repositorys_model_not_another_cached_one(tmp_path, cache, monkeypatch):  # noqa: F811
    """`cnn@1.0.0` of repository B is B's model, though A's `cnn@1.0.0` (another subgroup) is
    cached; without any repository the cache alone answers."""
    first, first_info, first_archive = published(tmp_path / "a", subgroup="text")
    hub_cache.fetch(first_info, first_archive, first)
    second, second_info, _ = published(tmp_path / "b", subgroup="images")
    assert second_info.uid != first_info.uid
    assert hub_cache.read_info(fetch("cnn@1.0.0", second.url)) == second_info
    assert info("cnn@1.0.0", second.url) == second_info
    monkeypatch.setenv("SESEMI_REPOSITORIES", first.url)
    assert info("cnn@1.0.0") == first_info
    monkeypatch.delenv("SESEMI_REPOSITORIES")
    with pytest.raises(SesemiError, match="no repository given"):
        info("cnn@1.0.0")  # two are cached: the cache cannot say which
    assert info(first_info.uid) == first_info


def test_a_cached_model_of_one_uid_from_another_repository_is_not_served(tmp_path, cache):  # noqa: F811
    """Two repositories can each publish `cnn@1.0.0` of one subgroup and params: one uid, two
    models. The one cached from A is not B's: loading B's says so instead of serving A's."""
    first, first_info, first_archive = published(tmp_path / "a")
    folder = hub_cache.fetch(first_info, first_archive, first)
    second = Repository(tmp_path / "b" / "repo")
    upload = fake_archive(tmp_path / "b" / "upload", first_info)
    with open(upload, "ab") as file:
        file.write(b"\0" * 512)  # another archive of the same uid
    second.add(first_info, upload)
    assert fetch(first_info.uid, first.url) == folder == fetch("cnn@1.0.0", first.url)
    with pytest.raises(SesemiError, match=f"the cache holds another model of uid {first_info.uid} than .* has"):
        fetch("cnn@1.0.0", second.url)


def test_a_fetch_in_progress_is_not_found_as_a_cached_model(tmp_path, cache):  # noqa: F811
    """Another process's fetch stages the model beside its place (`.<uid>.*`, hidden) before it
    renames it there: a lookup by name and version finds the model once it is in place only."""
    repository, info, archive = published(tmp_path)
    folder = hub_cache.fetch(info, archive, repository)
    shutil.copytree(folder, folder.parent / f".{info.uid}.1234.abcd.partial")
    assert hub_cache.find("cnn@1.0.0") == folder
    shutil.rmtree(folder)
    assert hub_cache.find("cnn@1.0.0") is None and hub_cache.find(info.uid) is None


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


def test_cache_entries_are_marked_and_only_marked_ones_replaced(tmp_path, cache):  # noqa: F811
    repository, info, archive = published(tmp_path)
    folder = hub_cache.fetch(info, archive, repository)
    assert owned(folder, "model")
    (folder / "meta.json").unlink()  # a model's folder someone emptied by hand: sesemi's, replaced
    assert hub_cache.fetch(info, archive, repository) == folder and (folder / "meta.json").is_file()
    shutil.rmtree(folder)
    folder.mkdir()
    (folder / "mine.txt").write_text("kept")  # not sesemi's: left alone
    with pytest.raises(SesemiError, match=f"^will not replace {folder}: it is not a sesemi model folder"):
        hub_cache.fetch(info, archive, repository)
    assert (folder / "mine.txt").read_text() == "kept"


def test_nothing_is_written_outside_the_cache_through_a_symlink(tmp_path, cache):  # noqa: F811
    repository, info, archive = published(tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    cache.mkdir()
    (cache / "cnn").symlink_to(outside, target_is_directory=True)
    with pytest.raises(SesemiError, match=f"^will not write .*{info.uid}: it is outside the model cache {cache}$"):
        hub_cache.fetch(info, archive, repository)
    assert list(outside.iterdir()) == []


def test_a_model_whose_ids_are_paths_gets_no_folder(tmp_path, cache):  # noqa: F811
    info = model_info()
    for bad in ({"uid": "/../../somewhere"}, {"name": ".."}, {"version": "../1"}, {"subgroup": "a/../../b"}):
        with pytest.raises(SesemiError, match="must be"):
            hub_cache.fetch(dataclasses.replace(info, **bad), None, None)
    for reference in ("cnn@../../x", "0000abcd-../x"):
        with pytest.raises(SesemiError, match="must be"):
            hub_cache.find(reference)
    assert not cache.exists()


def test_a_foreign_archive_is_refused_in_one_line(tmp_path, cache):  # noqa: F811
    """A gzipped tar with the right checksum that is not a sesemi model's: another layout
    (files in a folder), or none of a model's files."""
    repository, info, archive = published(tmp_path)
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "setup.py").write_text("print('hello')\n")
    with tarfile.open(tmp_path / "project.tar.gz", "w:gz") as tar:
        tar.add(project, arcname="project")
    replace_archive(tmp_path / "repo", info.uid, (tmp_path / "project.tar.gz").read_bytes())
    info, archive = repository.rows()[info.uid]
    message = f"^refusing the archive of {info.uid} from .*: it is not a sesemi model's \\(project is a folder"
    with pytest.raises(SesemiError, match=message):
        hub_cache.fetch(info, archive, repository)
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "notes.txt").write_text("hello")
    pack(tmp_path / "flat", tmp_path / "flat.tar.gz")
    replace_archive(tmp_path / "repo", info.uid, (tmp_path / "flat.tar.gz").read_bytes())
    info, archive = repository.rows()[info.uid]
    message = f"^the archive of {info.uid} from .* is not a sesemi model's: it has no meta.json, weights.safetensors, config.yaml$"
    with pytest.raises(SesemiError, match=message):
        hub_cache.fetch(info, archive, repository)
    assert hub_cache.find(info.uid) is None


@pytest.mark.parametrize("target", ["victim", "loop"])
def test_a_lock_that_is_a_link_is_refused_and_nothing_is_written_through_it(tmp_path, cache, target):  # noqa: F811
    """A `<uid>.lock` symlinked elsewhere (or to itself) was an OSError traceback, and a filelock
    that follows links would truncate what it points to."""
    repository, info, archive = published(tmp_path)
    victim = tmp_path / "victim"
    victim.write_text("precious")
    lock = cache / "cnn" / "1.0.0" / f"{info.uid}.lock"
    lock.parent.mkdir(parents=True)
    lock.symlink_to(victim if target == "victim" else lock)
    with pytest.raises(SesemiError, match=f"^will not lock {lock}: it is a link or not a file; remove it$"):
        hub_cache.fetch(info, archive, repository)
    assert victim.read_text() == "precious" and sorted(lock.parent.iterdir()) == [lock]


def test_a_lock_that_cannot_be_taken_is_one_error_line(tmp_path, cache, monkeypatch):  # noqa: F811
    repository, info, archive = published(tmp_path)

    def refused(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", self.lock_file)

    monkeypatch.setattr(FileLock, "acquire", refused)
    with pytest.raises(SesemiError, match=f"^cannot lock .*{info.uid}.lock: \\[Errno 13\\] Permission denied"):
        hub_cache.fetch(info, archive, repository)


def test_a_cached_model_whose_uid_is_not_its_own_is_refused(tmp_path, cache):  # noqa: F811
    """The cache serves a uid without asking a repository: a meta.json that files another model
    (other params) under the uid is refused, not loaded."""
    repository, info, archive = published(tmp_path)
    folder = hub_cache.fetch(info, archive, repository)
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, "params": {"backbone": "evil"}}))
    with pytest.raises(SesemiError, match=f"meta.json is not a published model's meta.json \\(its uid {info.uid} is not that of its name"):
        hub_cache.find(info.uid)
