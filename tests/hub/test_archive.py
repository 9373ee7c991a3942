"""Model archives (sesemi/hub/archive.py): packing, and extraction that refuses what is unsafe."""

from __future__ import annotations

import gzip
import hashlib
import io
import random
import tarfile
from pathlib import Path

import pytest

from sesemi.errors import SesemiError
from sesemi.hub.archive import extract, pack
from sesemi.ownership import sha256

MODEL_FILES = {"meta.json": b"{}", "weights.safetensors": b"weights", "config.yaml": b"learner: {}\n"}


def tar_with(path: Path, *members: tuple[tarfile.TarInfo, bytes]) -> Path:
    """A .tar.gz of a model's files followed by `members`, made by hand as an attacker would."""
    files = [(tarfile.TarInfo(name), data) for name, data in MODEL_FILES.items()]
    with tarfile.open(path, "w:gz") as tar:
        for member, data in [*files, *members]:
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


def test_pack_and_extract_round_trip(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.yaml").write_text("a: 1\n")
    (folder / "meta.json").write_text("{}")
    (folder / "weights.safetensors").write_bytes(b"\0" * 100)
    (folder / "ignored").mkdir()
    pack(folder, tmp_path / "model.tar.gz")
    extract(tmp_path / "model.tar.gz", tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["config.yaml", "meta.json", "weights.safetensors"]
    assert (tmp_path / "out" / "config.yaml").read_text() == "a: 1\n"
    assert sha256(tmp_path / "out" / "config.yaml") == hashlib.sha256(b"a: 1\n").hexdigest()


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ((member("../escape.txt"), b"x"), "outside"),
        ((member("nested/../../escape.txt"), b"x"), "outside"),
        ((member("/tmp/absolute.txt"), b"x"), "outside"),
        ((member("link", tarfile.SYMTYPE, "/etc/passwd"), b""), "link"),
        ((member("inside", tarfile.SYMTYPE, "meta.json"), b""), "link"),
        ((member("hard", tarfile.LNKTYPE, "meta.json"), b""), "link"),
        ((member("fifo", tarfile.FIFOTYPE), b""), "special"),
    ],
)
def test_unsafe_members_are_refused_before_anything_is_written(tmp_path, bad, reason):
    archive = tar_with(tmp_path / "bad.tar.gz", bad)
    with pytest.raises(SesemiError, match=f"refusing the archive bad.tar.gz: .*{reason}"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "escape.txt").exists() and not Path("/tmp/absolute.txt").exists()


def test_a_truncated_archive_is_one_error_line(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.safetensors").write_bytes(bytes(range(256)) * 400)
    pack(folder, tmp_path / "model.tar.gz")
    data = (tmp_path / "model.tar.gz").read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(SesemiError, match="cut.tar.gz is truncated or corrupt"):
        extract(tmp_path / "cut.tar.gz", tmp_path / "out")
    (tmp_path / "junk.tar.gz").write_bytes(b"not an archive")
    with pytest.raises(SesemiError, match="truncated or corrupt"):
        extract(tmp_path / "junk.tar.gz", tmp_path / "out")


@pytest.mark.parametrize(
    "extra",
    [(member("models", tarfile.DIRTYPE), b""), (member("models/meta.json"), b"{}"), (member("./weights"), b"x")],
)
def test_archives_of_another_layout_are_refused(tmp_path, extra):
    """sesemi's archives are a flat folder of files; anything else is not a model of sesemi's."""
    archive = tar_with(tmp_path / "foreign.tar.gz", extra)
    with pytest.raises(SesemiError, match=r"^refusing the archive foreign.tar.gz: it is not a sesemi model's \(.* is a folder or in one"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_extraction_uses_the_data_filter(tmp_path, monkeypatch):
    """Where Python has it, tarfile's data filter (PEP 706) applies on top of sesemi's checks."""
    filters = []
    extractall = tarfile.TarFile.extractall

    def recorded(self, *args, **kwargs):
        filters.append(kwargs.get("filter"))
        return extractall(self, *args, **kwargs)

    monkeypatch.setattr(tarfile.TarFile, "extractall", recorded)
    extract(tar_with(tmp_path / "ok.tar.gz"), tmp_path / "out")
    assert filters == ["data"] and (tmp_path / "out" / "meta.json").read_text() == "{}"


@pytest.mark.parametrize("name", ["padding", ".", "notes.txt", "model.ckpt", "line\nbreak"])
def test_files_a_published_model_does_not_have_are_refused(tmp_path, name):
    """An archive holds the files `publish` packs and nothing else: a 2 GiB `padding` beside
    them was extracted into the cache, a file named `.` was an IsADirectoryError."""
    archive = tar_with(tmp_path / "extra.tar.gz", (member(name), b"x"))
    with pytest.raises(SesemiError, match=r"^refusing the archive extra.tar.gz: it is not a sesemi model's \('.*' is none of its files, meta.json, weights.safetensors, config.yaml, README.md\)$"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_archive_without_a_models_files_is_refused(tmp_path):
    with tarfile.open(tmp_path / "partial.tar.gz", "w:gz") as tar:
        for name in ("meta.json", "README.md"):
            tar.addfile(member(name), io.BytesIO(b""))
    with pytest.raises(SesemiError, match="^the archive partial.tar.gz is not a sesemi model's: it has no weights.safetensors, config.yaml$"):
        extract(tmp_path / "partial.tar.gz", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_files_far_larger_than_the_archive_are_refused_before_they_are_read(tmp_path):
    """At most 100 times the archive's size (1 MiB for a small one) is extracted; a member's
    header is enough to refuse it, so its data is never decompressed."""
    archive = tar_with(tmp_path / "bomb.tar.gz", (member("README.md"), b"\0" * 2 * 2**20))
    assert archive.stat().st_size < 2**20 // 100
    with pytest.raises(SesemiError, match=r"^refusing the archive bomb.tar.gz: its files would take over 1048576 bytes, too many for an archive of \d+; it is not a sesemi model's$"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    header = tarfile.TarInfo("weights.safetensors")
    header.size = 2 * 2**30  # and no data follows: only the header is read
    (tmp_path / "header.tar.gz").write_bytes(gzip.compress(header.tobuf()))
    with pytest.raises(SesemiError, match="^refusing the archive header.tar.gz: its files would take over"):
        extract(tmp_path / "header.tar.gz", tmp_path / "out")
    tar_with(tmp_path / "ok.tar.gz", (member("README.md"), random.Random(0).randbytes(2 * 2**20)))
    extract(tmp_path / "ok.tar.gz", tmp_path / "out")  # weights compress little
    assert (tmp_path / "out" / "README.md").stat().st_size == 2 * 2**20


def test_a_target_that_cannot_be_written_is_one_error_line(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(SesemiError, match="^cannot extract the archive ok.tar.gz into .*file/out: "):
        extract(tar_with(tmp_path / "ok.tar.gz"), tmp_path / "file" / "out")
