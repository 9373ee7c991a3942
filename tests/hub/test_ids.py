"""Model ids (sesemi/hub/ids.py): the documented uid, and the checks on names and versions."""

from __future__ import annotations

import hashlib
import json

import pytest

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


def test_uid_is_the_documented_short_hash_and_the_version():
    """`<first 8 hex digits of SHA-256 of {"name", "params", "subgroup"} as sorted JSON>-<version>`."""
    key = json.dumps({"name": "cnn", "params": {"rate": 16000}, "subgroup": "audio.speech"}, sort_keys=True)
    expected = hashlib.sha256(key.encode()).hexdigest()[:8] + "-1.0.0"
    assert model_uid("cnn", "audio.speech", {"rate": 16000}, "1.0.0") == expected
    assert is_uid(expected)


def test_uid_is_deterministic_and_tells_models_apart():
    uid = model_uid("cnn", None, {"a": 1, "b": [1, 2]}, "1.0.0")
    assert uid == model_uid("cnn", None, {"b": [1, 2], "a": 1}, "1.0.0")  # key order does not matter
    assert model_uid("cnn", None, None, "1.0.0") == model_uid("cnn", None, {}, "1.0.0")
    assert model_uid("cnn", None, {"a": 1, "b": [1, 2]}, "2.0.0") == uid[:8] + "-2.0.0"  # versions share the id
    others = {model_uid("cnn", None, {"a": 2}, "1.0.0"), model_uid("cnn", "x", {"a": 1, "b": [1, 2]}, "1.0.0"),
              model_uid("rnn", None, {"a": 1, "b": [1, 2]}, "1.0.0")}
    assert uid not in others and len(others) == 3


@pytest.mark.parametrize("name", ["", "a.b", "../x", "a/b", "-x", "deadbeef-1.0", 3])
def test_bad_names_are_refused(name):
    with pytest.raises(SesemiError, match="must be letters"):
        check_name(name)


def test_subgroups_are_names_joined_by_dots():
    assert check_subgroup("audio.speech") == "audio.speech" and check_subgroup(None) is None
    with pytest.raises(SesemiError, match="subgroup"):
        check_subgroup("audio..speech")


@pytest.mark.parametrize("version", ["v1", "1.0.0/..", "latest", "1.0.0 "])
def test_versions_must_be_in_normal_form(version):
    with pytest.raises(SesemiError, match="normal form"):
        check_version(version)


def test_versions_order_as_versions():
    assert check_version("1.10.0") > check_version("1.9.0") > check_version("1.9.0rc1")


def test_params_must_be_json():
    assert check_params({"rate": 16000, "tags": ["a"]}) == {"rate": 16000, "tags": ["a"]}
    with pytest.raises(SesemiError, match="JSON"):
        check_params({"path": object()})


def test_references_split_into_subgroup_name_version():
    assert split_reference("cnn") == (None, "cnn", None)
    assert split_reference("audio.speech.cnn@1.0.0") == ("audio.speech", "cnn", "1.0.0")


def test_uids_are_8_hex_digits_and_a_version():
    assert check_uid("3f1c9a0e-1.0.0") == "3f1c9a0e-1.0.0"
    for uid in ("/../../somewhere", "3f1c9a0e-../../x", "3f1c9a0e-1.0.0/..", "3F1C9A0E-1.0.0", "3f1c9a0e", "", None):
        with pytest.raises(SesemiError, match="uid|normal form"):
            check_uid(uid)


@pytest.mark.parametrize(
    "reference", ["cnn@../../x", "cnn@/etc", "../cnn@1.0.0", "a..cnn@1.0.0", "/abs.cnn", ".cnn", "cnn@", "a/b.cnn"]
)
def test_every_part_of_a_reference_is_checked(reference):
    """A reference's parts become folders of the cache, so none may be a path or empty."""
    with pytest.raises(SesemiError, match="must be"):
        split_reference(reference)
