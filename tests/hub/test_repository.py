"""Repositories (sesemi/hub/repository.py): local folders and memory://, atomic writes, refusals."""

from __future__ import annotations

import threading
import time

import pytest
from hub_fixtures import cache, fake_archive, memory_repository, model_info  # noqa: F401 (fixtures)

from sesemi.errors import SesemiError
from sesemi.hub.repository import Repository
from sesemi.ownership import sha256


@pytest.fixture(params=["local", "memory"])
def repository(request, tmp_path, memory_repository, cache) -> Repository:  # noqa: F811
    return Repository(tmp_path / "repo" if request.param == "local" else memory_repository)


def test_add_uploads_the_archive_and_records_it(repository, tmp_path):
    info = model_info(subgroup="images.digits")
    archive = repository.add(info, fake_archive(tmp_path, info))
    assert archive.path == f"images/digits/cnn/1.0.0/{info.uid}.tar.gz"
    assert archive.sha256 == sha256(tmp_path / f"{info.uid}.tar.gz")
    assert repository.rows() == {info.uid: (info, archive)}
    assert repository.fs.cat_file(repository.path(archive.path)) == (tmp_path / f"{info.uid}.tar.gz").read_bytes()
    protocol = "file" if "repo-" not in repository.url else "memory"
    assert repository.url_of(archive).startswith(f"{protocol}://")
    assert repository.url_of(archive).endswith(f"/{archive.path}")
    assert not [p for p in repository.fs.find(repository.root) if ".partial-" in p]


def test_existing_uid_or_version_is_refused_and_nothing_changes(repository, tmp_path):
    first = model_info()
    repository.add(first, fake_archive(tmp_path / "1", first))
    before = {path: repository.fs.cat_file(path) for path in repository.fs.find(repository.root)}
    with pytest.raises(SesemiError, match="already published; publish a new version"):
        repository.add(first, fake_archive(tmp_path / "2", first))
    after = {path: repository.fs.cat_file(path) for path in repository.fs.find(repository.root)}
    assert after == before


def test_a_symlink_inside_a_local_repository_is_not_written_through(tmp_path):
    """`repo/cnn -> elsewhere`, or a version folder linked out: the archive is not written
    there, and the table does not change."""
    repository = Repository(tmp_path / "repo")
    repository.add(model_info(), fake_archive(tmp_path / "1", model_info()))
    table = (tmp_path / "repo" / "models.json").read_bytes()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "repo" / "cnn" / "2.0.0").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "repo" / "other").symlink_to(tmp_path / "elsewhere")
    for info in (model_info(version="2.0.0"), model_info("other")):
        with pytest.raises(SesemiError, match=r"will not write through .*repo/(cnn/2\.0\.0|other): it is a symbolic link"):
            repository.add(info, fake_archive(tmp_path / info.name / info.version, info))
    assert list((tmp_path / "elsewhere").iterdir()) == []
    assert (tmp_path / "repo" / "models.json").read_bytes() == table


def test_a_failed_write_leaves_the_repository_as_it_was(repository, tmp_path, monkeypatch):
    """If the table cannot be written, the archive just uploaded is removed again."""
    first, second = model_info(), model_info(version="2.0.0")
    repository.add(first, fake_archive(tmp_path / "1", first))
    before = {path: repository.fs.cat_file(path) for path in repository.fs.find(repository.root)}

    def broken(path, value, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(repository.fs, "pipe_file", broken)
    with pytest.raises(SesemiError, match=r"cannot write to repository .*: disk full$"):
        repository.add(second, fake_archive(tmp_path / "2", second))
    after = {path: repository.fs.cat_file(path) for path in repository.fs.find(repository.root)}
    assert after == before


def test_a_repository_without_models_is_empty_and_a_missing_one_an_error(tmp_path, cache):  # noqa: F811
    (tmp_path / "empty").mkdir()
    assert Repository(tmp_path / "empty").rows() == {}
    with pytest.raises(SesemiError, match="does not exist or cannot be reached"):
        Repository(tmp_path / "nowhere").rows()
    assert Repository(tmp_path / "nowhere").rows(missing_ok=True) == {}


def test_unreachable_repositories_are_one_error_line(tmp_path, cache):  # noqa: F811
    with pytest.raises(SesemiError, match="cannot open repository nosuch://models: Protocol not known"):
        Repository("nosuch://models")
    (tmp_path / "file").write_text("")
    info = model_info()
    with pytest.raises(SesemiError, match=r"^cannot write to repository .*file/models"):
        Repository(tmp_path / "file" / "models").add(info, fake_archive(tmp_path, info))


def test_memory_repositories_lock_in_the_cache(memory_repository, cache):  # noqa: F811
    lock = Repository(memory_repository).lock()
    assert lock.lock_file.startswith(str(cache / "locks"))


def test_concurrent_publishers_each_land_in_the_table(tmp_path, cache, monkeypatch):  # noqa: F811
    """The table is read, checked and rewritten under the lock, so no publisher's row is lost."""
    infos = [model_info(version=version) for version in ("1.0.0", "2.0.0", "3.0.0")]
    archives = [fake_archive(tmp_path / info.version, info) for info in infos]
    repository = Repository(tmp_path / "repo")
    move = repository.fs.mv

    def slow_move(*args, **kwargs):  # widens the window between reading and rewriting the table
        time.sleep(0.1)
        return move(*args, **kwargs)

    monkeypatch.setattr(repository.fs, "mv", slow_move)
    threads = [threading.Thread(target=Repository(tmp_path / "repo").add, args=pair) for pair in zip(infos, archives, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(repository.rows()) == {info.uid for info in infos}


def test_a_lock_that_is_a_link_is_refused_and_nothing_is_written_through_it(tmp_path, cache):  # noqa: F811
    (tmp_path / "repo").mkdir()
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "repo" / ".models.json.lock").symlink_to(victim)
    info = model_info()
    with pytest.raises(SesemiError, match="^will not lock .*/repo/.models.json.lock: it is a link or not a file; remove it$"):
        Repository(tmp_path / "repo").add(info, fake_archive(tmp_path, info))
    assert victim.read_text() == "precious" and not (tmp_path / "repo" / "models.json").exists()
