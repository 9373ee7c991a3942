"""The lookup table of a repository (`models.json`): one row per published model.

    {"format": 1, "models": {"<uid>": {<ModelInfo fields>, "archive": {"path", "sha256", "size"}}}}

Rows become paths in the cache, so a row sesemi could not have written (`check_row`) makes the
whole table unusable rather than something to follow.
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sesemi.errors import SesemiError
from sesemi.hub.ids import (
    check_name,
    check_params,
    check_subgroup,
    check_uid,
    check_version,
    is_uid,
    model_uid,
    split_reference,
)

FORMAT = 1


@dataclass(frozen=True)
class ModelInfo:
    """What a published model is (also its archive's `meta.json`).

    Attributes:
        uid: The model's id (see `sesemi.hub.ids`).
        name: Its name, e.g. `digits-cnn`.
        subgroup: Dot-separated groups, e.g. `images.digits`, or None.
        version: Its version, e.g. `1.0.0`.
        params: What tells models of one name and version apart, e.g. `{"backbone": "convnet"}`.
        date: When it was published (UTC, ISO 8601).
        author: Who published it.
        labels: The class names, in the order of the model's outputs.
        metrics: The run's final validation metrics, e.g. `{"val/top1": 0.93}`.
        checkpoint: The run's checkpoint the weights come from, e.g. `best.ckpt`.
        ema: Whether the weights are the exponential moving average of the run's weights.
        meta: Anything else the publisher recorded.
        sesemi: The sesemi version that published it.
    """

    uid: str
    name: str
    subgroup: str | None
    version: str
    params: dict[str, Any] = field(default_factory=dict)
    date: str = ""
    author: str | None = None
    labels: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    checkpoint: str = ""
    ema: bool = False
    meta: dict[str, Any] = field(default_factory=dict)
    sesemi: str = ""

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> ModelInfo:
        """The model a row (or `meta.json`) describes, checked (see `check_info`)."""
        names = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(row, Mapping) or not {"uid", "name", "version"} <= row.keys():
            raise SesemiError("it has no uid, name and version")
        return check_info(cls(**{k: v for k, v in row.items() if k in names}))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def reference(self) -> str:
        """`[subgroup.]name@version`, what `load` also takes."""
        prefix = f"{self.subgroup}." if self.subgroup else ""
        return f"{prefix}{self.name}@{self.version}"

    @property
    def folders(self) -> tuple[str, ...]:
        """`(*subgroup parts, name, version)`: where the model is in a repository and the cache."""
        return (*(self.subgroup.split(".") if self.subgroup else ()), self.name, self.version)


# The JSON types of the fields `check_info` does not check otherwise, and how to say them.
TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "subgroup": ((str, type(None)), "a string or null"),
    "version": ((str,), "a string"),
    "params": ((dict,), "a mapping"),
    "date": ((str,), "a string"),
    "author": ((str, type(None)), "a string or null"),
    "checkpoint": ((str,), "a string"),
    "ema": ((bool,), "true or false"),
    "meta": ((dict,), "a mapping"),
    "sesemi": ((str,), "a string"),
}


def check_info(info: ModelInfo) -> ModelInfo:
    """Refuses a model whose uid, name, subgroup or version could not have been published, whose
    uid is not `model_uid` of its name, subgroup, params and version, or whose fields have the
    wrong types."""
    check_uid(info.uid)
    check_name(info.name)
    for name, (types, kind) in TYPES.items():
        if not isinstance(getattr(info, name), types):
            raise SesemiError(f"its {name} is not {kind}")
    check_subgroup(info.subgroup)
    check_version(info.version)
    if info.uid.partition("-")[2] != info.version:
        raise SesemiError(f"its uid {info.uid} is not of its version {info.version}")
    if not (isinstance(info.labels, list) and all(isinstance(label, str) for label in info.labels)):
        raise SesemiError("its labels are not a list of names")
    if not (isinstance(info.metrics, dict) and all(isinstance(v, int | float) for v in info.metrics.values())):
        raise SesemiError("its metrics are not numbers by name")
    check_params(info.meta, "meta")
    uid = model_uid(info.name, info.subgroup, info.params, info.version)  # also checks the params
    if info.uid != uid:
        raise SesemiError(f"its uid {info.uid} is not that of its name, subgroup, params and version ({uid})")
    return info


@dataclass(frozen=True)
class Archive:
    """Where a model's archive is in its repository, and its SHA-256 and size in bytes."""

    path: str
    sha256: str
    size: int


def archive_path(info: ModelInfo) -> str:
    """Where a model's archive is in its repository: `<subgroup parts>/<name>/<version>/<uid>.tar.gz`."""
    return posixpath.join(*info.folders, f"{info.uid}.tar.gz")


def check_row(uid: str, row: Any) -> tuple[ModelInfo, Archive]:
    """The model and archive of a row of `models.json`, refused (SesemiError) unless sesemi
    could have written it: its key is its uid, every id and field is valid, the archive is in its
    place."""
    info = ModelInfo.from_dict(row)
    if info.uid != uid:
        raise SesemiError(f"it is filed under another uid ({str(uid)[:80]!r})")
    archive = row.get("archive")
    if not isinstance(archive, Mapping) or set(archive) != {"path", "sha256", "size"}:
        raise SesemiError("it has no archive path, sha256 and size")
    archive = Archive(**archive)
    if archive.path != archive_path(info):
        raise SesemiError(f"its archive is at {str(archive.path)[:80]!r}, not at {archive_path(info)}")
    if not isinstance(archive.sha256, str) or not re.fullmatch(r"[0-9a-f]{64}", archive.sha256):
        raise SesemiError("its archive's sha256 is not 64 hex digits")
    if not isinstance(archive.size, int) or archive.size < 0:
        raise SesemiError("its archive's size is not a number of bytes")
    return info, archive


def parse_table(text: str, where: str) -> dict[str, tuple[ModelInfo, Archive]]:
    """The rows of a `models.json`, by uid, each checked (`check_row`)."""
    try:
        table = json.loads(text)
        if table["format"] != FORMAT or not isinstance(table["models"], dict):
            raise ValueError(table["format"])
    except (ValueError, KeyError, TypeError):
        raise SesemiError(f"{where} is not a sesemi lookup table (models.json, format {FORMAT})") from None
    rows = {}
    for uid, row in table["models"].items():
        try:
            rows[uid] = check_row(uid, row)
        except (SesemiError, TypeError, ValueError, AttributeError) as error:
            raise SesemiError(
                f"{where} is refused: its row {str(uid)[:80]!r} could not have been published by sesemi ({error}); "
                "the repository was changed by hand or is not sesemi's"
            ) from None
    return rows


def format_table(rows: Mapping[str, tuple[ModelInfo, Archive]]) -> str:
    models = {uid: {**info.to_dict(), "archive": dataclasses.asdict(archive)} for uid, (info, archive) in rows.items()}
    return json.dumps({"format": FORMAT, "models": dict(sorted(models.items()))}, indent=1) + "\n"


def check_unpublished(rows: Mapping[str, tuple[ModelInfo, Archive]], info: ModelInfo) -> None:
    """Refuses to publish `info` next to `rows` when its uid, or its name and version, exist."""
    if info.uid in rows:
        raise SesemiError(f"{info.uid} is already published; publish a new version")
    version = check_version(info.version)  # 1.0 and 1.0.0 are one version, which `latest` could not order
    for other, _ in rows.values():
        if (other.subgroup, other.name, check_version(other.version)) == (info.subgroup, info.name, version):
            raise SesemiError(f"{info.reference} is already published (as {other.reference}, {other.uid}); publish a new version")


def matches(infos: Iterable[ModelInfo], reference: str) -> list[ModelInfo]:
    """The models a uid or `[subgroup.]name[@version]` names; for a name without a version, the
    latest version in each subgroup that has the name."""
    if is_uid(reference):
        check_uid(reference)
        return [info for info in infos if info.uid == reference]
    subgroup, name, version = split_reference(reference)
    found = [i for i in infos if i.name == name and (subgroup is None or i.subgroup == subgroup)]
    if version is not None:  # 1, 1.0 and 1.0.0 are one version, as publishing counts them
        wanted = check_version(version)  # split_reference checked it
        return [info for info in found if check_version(info.version) == wanted]
    found.sort(key=lambda info: check_version(info.version))  # the last of each subgroup is its latest
    return list({info.subgroup: info for info in found}.values())
