"""Model ids: names, subgroups, versions and uids, checked wherever they come from (arguments,
`models.json`, a cached `meta.json`), since they become folder names in repositories and the
cache. A model's versions share the short id of its uid, as in audmodel.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from packaging.version import InvalidVersion, Version

from sesemi.errors import SesemiError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
UID = re.compile(r"[0-9a-f]{8}-\S+")
REFERENCE = re.compile(rf"{NAME.pattern}(\.{NAME.pattern})*(@\S+)?")  # [subgroup.]name[@version]


def check_name(name: str, what: str = "name") -> str:
    """A model name (letters, digits, `_`, `-`; no dots: they separate subgroups; not uid-like)."""
    if not isinstance(name, str) or not NAME.fullmatch(name) or is_uid(name):
        raise SesemiError(f"the model {what} {name!r} must be letters, digits, '_' or '-', e.g. digits-cnn")
    return name


def check_subgroup(subgroup: str | None) -> str | None:
    """A subgroup: names joined by dots, e.g. `audio.speech` (None for none)."""
    if subgroup is not None:
        for part in subgroup.split("."):
            check_name(part, "subgroup part")
    return subgroup


def check_uid(uid: str) -> str:
    """A uid: 8 hex digits, `-` and a version in normal form, e.g. `3f1c9a0e-1.0.0`."""
    short, dash, version = uid.partition("-") if isinstance(uid, str) else ("", "", "")
    if not (dash and re.fullmatch(r"[0-9a-f]{8}", short)):
        raise SesemiError(f"the uid {str(uid)[:80]!r} must be 8 hex digits, '-' and a version, e.g. 3f1c9a0e-1.0.0")
    check_version(version)
    return uid


def check_version(version: str) -> Version:
    """A version in its normal form (e.g. 1.0.0, 2.1rc1), which also orders versions."""
    try:
        parsed = Version(str(version))
    except InvalidVersion:
        parsed = None
    if parsed is None or str(parsed) != str(version):
        raise SesemiError(f"the version {version!r} must be a version in normal form, e.g. 1.0.0")
    return parsed


def check_params(params: Mapping[str, Any] | None, what: str = "params") -> dict[str, Any]:
    """Parameters that tell models of one name apart (or other metadata): a mapping JSON can store,
    as JSON gives it back (keys are strings), so a uid hashes what `models.json` will hold."""
    try:
        return json.loads(json.dumps(dict(params or {}), allow_nan=False))
    except (TypeError, ValueError) as error:
        raise SesemiError(f"{what} must be JSON values (strings, numbers, lists, mappings): {error}") from None


def model_uid(name: str, subgroup: str | None, params: Mapping[str, Any] | None, version: str) -> str:
    """The uid of a model: `<8 hex digits of the SHA-256 of name, subgroup, params>-<version>`."""
    key = json.dumps({"name": name, "params": check_params(params), "subgroup": subgroup}, sort_keys=True)
    return f"{hashlib.sha256(key.encode()).hexdigest()[:8]}-{version}"


def is_uid(reference: str) -> bool:
    """Whether `reference` has the form of a uid (else it is a name)."""
    return UID.fullmatch(reference) is not None


def is_reference(text: str) -> bool:
    """Whether `text` has the form of a uid or `[subgroup.]name[@version]` (not of a file)."""
    return is_uid(text) or (REFERENCE.fullmatch(text) is not None and not text.endswith(".ckpt"))


def split_reference(reference: str) -> tuple[str | None, str, str | None]:
    """`[subgroup.]name[@version]` as `(subgroup, name, version)`, each checked."""
    name, at, version = reference.partition("@")
    subgroup, dot, name = name.rpartition(".")
    if dot:
        check_subgroup(subgroup)
    check_name(name)
    if at:
        check_version(version)
    return subgroup or None, name, version if at else None
