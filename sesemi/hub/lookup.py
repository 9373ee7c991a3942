"""The lookup table of a repository (`models.json`): one row per published model.

    {"format": 1, "models": {"<uid>": {<ModelInfo fields>, "archive": {"path", "sha256", "size"}}}}

A row describes the model (what `sesemi.hub.info` returns) and where its archive is, with the
checksum that loading verifies.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sesemi.errors import SesemiError
from sesemi.hub.ids import check_version, is_uid, split_reference

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
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in row.items() if k in names})

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


@dataclass(frozen=True)
class Archive:
    """Where a model's archive is in its repository, and its SHA-256 and size in bytes."""

    path: str
    sha256: str
    size: int


def parse_table(text: str, where: str) -> dict[str, tuple[ModelInfo, Archive]]:
    """The rows of a `models.json`, by uid."""
    try:
        table = json.loads(text)
        if table["format"] != FORMAT:
            raise ValueError(table["format"])
        return {
            uid: (ModelInfo.from_dict(row), Archive(**row["archive"])) for uid, row in table["models"].items()
        }
    except (ValueError, KeyError, TypeError, AttributeError):
        raise SesemiError(f"{where} is not a sesemi lookup table (models.json, format {FORMAT})") from None


def format_table(rows: Mapping[str, tuple[ModelInfo, Archive]]) -> str:
    models = {uid: {**info.to_dict(), "archive": dataclasses.asdict(archive)} for uid, (info, archive) in rows.items()}
    return json.dumps({"format": FORMAT, "models": dict(sorted(models.items()))}, indent=1) + "\n"


def conflict(rows: Mapping[str, tuple[ModelInfo, Archive]], info: ModelInfo) -> str | None:
    """Why `info` cannot be published next to `rows`: its uid, or its name and version, exist."""
    if info.uid in rows:
        return f"{info.uid} is already published; publish a new version"
    for other, _ in rows.values():
        if (other.subgroup, other.name, other.version) == (info.subgroup, info.name, info.version):
            return f"{info.reference} is already published (as {other.uid}); publish a new version"
    return None


def matches(infos: Iterable[ModelInfo], reference: str, version: str | None = None) -> list[ModelInfo]:
    """The models a uid or `[subgroup.]name[@version]` names; for a name without a version, the
    latest version in each subgroup that has the name."""
    infos = list(infos)
    if is_uid(reference):
        return [info for info in infos if info.uid == reference]
    subgroup, name, version = split_reference(reference, version)
    found = [i for i in infos if i.name == name and (subgroup is None or i.subgroup == subgroup)]
    if version is not None:
        return [info for info in found if info.version == version]
    latest: dict[str | None, ModelInfo] = {}
    for info in found:
        best = latest.get(info.subgroup)
        if best is None or check_version(info.version) > check_version(best.version):
            latest[info.subgroup] = info
    return list(latest.values())
