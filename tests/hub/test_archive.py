"""Model archives (sesemi/hub/archive.py): packing, and extraction that refuses what is unsafe."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from sesemi.errors import SesemiError
from sesemi.hub.archive import extract, pack
from sesemi.ownership import sha256


def tar_with(path: Path, *members: tuple[tarfile.TarInfo, bytes]) -> Path:
    """A .tar.gz of `meta.json` followed by `members`, made by hand as an attacker would."""
    with tarfile.open(path, "w:gz") as tar:
        for member, data in [(tarfile.TarInfo("meta.json"), b"{}"), *members]:
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
    (folder / "weights.safetensors").write_bytes(b"\0" * 100)
    (folder / "ignored").mkdir()
    pack(folder, tmp_path / "model.tar.gz")
    extract(tmp_path / "model.tar.gz", tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["config.yaml", "weights.safetensors"]
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
