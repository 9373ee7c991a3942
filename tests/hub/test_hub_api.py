"""Loading published models (sesemi/hub/repository.py): through the cache, in fresh processes, at once,
offline once cached, and the bad cases, each one error line that leaves nothing behind."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from hub_fixtures import cache, memory_repository, replace_archive, trained, write_images  # noqa: F401 (fixtures)

import sesemi
from sesemi.errors import SesemiError
from sesemi.hub import info, load, models, publish, url

# Each process loads the model from the repository into an empty cache (slowly, so that the
# processes overlap), predicts, and saves the probabilities; downloads are counted in a file.
LOAD_AND_PREDICT = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from sesemi.hub import repository
    download = repository.Repository.download

    def counted(self, *args):
        with open(sys.argv[3], "a") as log:
            log.write("download\\n")
        time.sleep(1)
        return download(self, *args)

    repository.Repository.download = counted
    import sesemi
    predictor = sesemi.hub.load(sys.argv[1], device="cpu")
    np.save(sys.argv[2], np.stack([p.probabilities.numpy() for p in predictor.predict(sys.argv[4:])]))
    """
)


def probabilities(predictor, images) -> torch.Tensor:
    return torch.stack([p.probabilities for p in predictor.predict(images)])


@pytest.fixture(scope="module")
def published(trained, tmp_path_factory):  # noqa: F811
    """The tiny run published as tiny@1.0.0 to a local repository, and images to predict."""
    base = tmp_path_factory.mktemp("published")
    repository = base / "repo"
    uid = sesemi.hub.publish(trained, "tiny", "1.0.0", repository, subgroup="images.test")
    return uid, repository, write_images(base / "inputs", 2, "new")


def test_fresh_processes_load_at_once_download_once_and_predict_like_the_run(published, trained, tmp_path):  # noqa: F811
    uid, repository, images = published
    env = {**os.environ, "SESEMI_CACHE_ROOT": str(tmp_path / "cache"), "SESEMI_REPOSITORIES": str(repository)}
    log = tmp_path / "downloads.log"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", LOAD_AND_PREDICT, uid, str(tmp_path / f"{i}.npy"), str(log), *map(str, images)],
            env=env, stderr=subprocess.PIPE, text=True,
        )
        for i in range(2)
    ]
    for process in processes:
        assert process.wait(timeout=240) == 0, process.stderr.read()[-3000:]
    assert log.read_text() == "download\n"
    expected = probabilities(load(trained, device="cpu"), images).numpy()
    for i in range(2):
        assert np.array_equal(np.load(tmp_path / f"{i}.npy"), expected)


def test_a_second_load_does_not_touch_the_repository(published, trained, tmp_path, cache, monkeypatch):  # noqa: F811
    uid, repository, images = published
    predictor = load(uid, repository=repository, device="cpu")
    folder = cache / "images" / "test" / "tiny" / "1.0.0" / uid
    assert (predictor.info.uid, predictor.labels, predictor.model.source) == (uid, ["blue", "green", "red"], folder)
    assert predictor.config.run.num_iterations == 4 and not predictor.model.training
    assert torch.equal(probabilities(predictor, images), probabilities(load(trained, device="cpu"), images))
    monkeypatch.setenv("SESEMI_REPOSITORIES", str(tmp_path / "gone"))  # no repository at all now
    assert load(uid, device="cpu").model.source == folder
    assert load("tiny@1.0.0", device="cpu").model.source == folder
    assert load("images.test.tiny@1.0.0", device="cpu").model.source == folder
    assert info(uid) == predictor.info
    with pytest.raises(SesemiError, match="does not exist or cannot be reached"):
        load("tiny", device="cpu")  # the latest version: only a repository knows


def test_names_load_their_latest_version_from_memory(trained, memory_repository, cache):  # noqa: F811
    first = publish(trained, "tiny", "1.0.0", memory_repository, params={"seed": 1})
    latest = publish(trained, "tiny", "1.2.0", memory_repository, params={"seed": 1})
    assert [i.uid for i in models(memory_repository)] == [first, latest]
    assert load("tiny", repository=memory_repository, device="cpu").info.uid == latest
    assert load("tiny@1.0.0", repository=memory_repository, device="cpu").info.uid == first
    assert url(latest, repository=memory_repository) == f"{memory_repository}/tiny/1.2.0/{latest}.tar.gz".replace(
        "memory://", "memory:///"
    )


def test_repositories_are_searched_in_the_order_of_the_variable(published, tmp_path, cache, monkeypatch):  # noqa: F811
    uid, repository, _ = published
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("SESEMI_REPOSITORIES", f"{tmp_path / 'empty'}, {repository}")
    assert [i.uid for i in models()] == [uid]
    assert url(uid) == f"file://{repository}/images/test/tiny/1.0.0/{uid}.tar.gz"


def test_a_repository_of_the_variable_that_cannot_be_read_is_passed_over(published, tmp_path, cache, monkeypatch, caplog):  # noqa: F811
    """A share not mounted among $SESEMI_REPOSITORIES does not hide the models of the others;
    it is named in a warning. When none can be read, the first says why."""
    uid, repository, _ = published
    monkeypatch.setenv("SESEMI_REPOSITORIES", f"{tmp_path / 'unmounted'},{repository}")
    assert [i.uid for i in models()] == [uid]
    assert url("tiny@1.0.0") == f"file://{repository}/images/test/tiny/1.0.0/{uid}.tar.gz"
    assert f"passing over a repository of SESEMI_REPOSITORIES: repository {tmp_path / 'unmounted'} does not exist" in caplog.text
    monkeypatch.setenv("SESEMI_REPOSITORIES", f"{tmp_path / 'unmounted'},{tmp_path / 'gone'}")
    with pytest.raises(SesemiError, match=f"^repository {tmp_path / 'unmounted'} does not exist or cannot be reached"):
        models()


def test_missing_models_and_repositories_are_one_error_line(published, tmp_path, cache):  # noqa: F811
    uid, repository, _ = published
    with pytest.raises(SesemiError, match=f"^no model 00000000-1.0.0 in {repository}; `sesemi models` lists"):
        load("00000000-1.0.0", repository=repository)
    with pytest.raises(SesemiError, match="^no model tiny@9.0.0 in"):
        load("tiny@9.0.0", repository=repository)
    with pytest.raises(SesemiError, match="^no repository given: pass one, or list them in SESEMI_REPOSITORIES"):
        load(uid)
    with pytest.raises(SesemiError, match="does not exist or cannot be reached"):
        load(uid, repository=tmp_path / "nowhere")
    with pytest.raises(SesemiError, match="cannot open repository nosuch://x"):
        models("nosuch://x")
    assert not cache.exists()


def _traversal_archive(folder: Path) -> bytes:
    """A well-formed archive with a member that climbs out of the model's folder."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=path.name)
        member = tarfile.TarInfo("../../outside.txt")
        member.size = 1
        tar.addfile(member, io.BytesIO(b"x"))
    return data.getvalue()


@pytest.mark.parametrize("attack", ["checksum", "truncated", "traversal"])
def test_bad_archives_are_refused_and_leave_nothing_in_the_cache(published, tmp_path, cache, attack):  # noqa: F811
    uid, repository, _ = published
    copy = tmp_path / "repo"
    subprocess.run(["cp", "-r", str(repository), str(copy)], check=True)
    archive = next(copy.rglob(f"{uid}.tar.gz"))
    extracted = tmp_path / "extracted"
    with tarfile.open(archive) as tar:
        tar.extractall(extracted, filter="data")
    data = archive.read_bytes()
    if attack == "checksum":
        replace_archive(copy, uid, data[:-1] + bytes([data[-1] ^ 1]), checksum=False)
        error = "does not match the checksum recorded when it was published"
    elif attack == "truncated":
        replace_archive(copy, uid, data[: len(data) // 2])
        error = "is truncated or corrupt"
    else:
        replace_archive(copy, uid, _traversal_archive(extracted))
        error = r"refusing the archive .*: \.\./\.\./outside.txt points outside"
    with pytest.raises(SesemiError, match=error):
        load(uid, repository=copy)
    leftovers = [p for p in cache.rglob("*") if p.is_file() and p.suffix != ".lock"]
    assert leftovers == [] and not list(tmp_path.rglob("outside.txt"))


def test_sesemi_hub_is_imported_on_first_use_and_listing_needs_no_torch():
    code = (
        "import sys, sesemi; sesemi.hub.models; print('torch' in sys.modules); "
        "import sesemi.predictor; print(sesemi.hub.load is sesemi.predictor.load)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True"]
