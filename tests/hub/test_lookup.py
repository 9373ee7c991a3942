"""The lookup table (sesemi/hub/lookup.py): rows, conflicts, and which models a reference names."""

from __future__ import annotations

import json

import pytest

from sesemi.errors import SesemiError
from sesemi.hub.ids import check_params, model_uid
from sesemi.hub.lookup import (
    Archive,
    ModelInfo,
    archive_path,
    check_unpublished,
    format_table,
    matches,
    parse_table,
)


def info(name="cnn", version="1.0.0", subgroup=None, **params) -> ModelInfo:
    return ModelInfo(model_uid(name, subgroup, params, version), name, subgroup, version, params)


def test_table_round_trips():
    rows = {i.uid: (i, Archive(archive_path(i), "ab" * 32, 10)) for i in (info(), info("rnn", subgroup="a.b"))}
    assert parse_table(format_table(rows), "models.json") == rows
    assert rows[info("rnn", subgroup="a.b").uid][1].path.startswith("a/b/rnn/1.0.0/")


@pytest.mark.parametrize("text", ["", "[]", '{"format": 2, "models": {}}', '{"format": 1, "models": []}'])
def test_a_file_that_is_not_a_table_is_one_error_line(text):
    with pytest.raises(SesemiError, match="not a sesemi lookup table"):
        parse_table(text, "memory://repo/models.json")


def row(**changes) -> tuple[str, dict]:
    """A row of models.json as sesemi writes it, with `changes` made (as an attacker would)."""
    model = info()
    values = {**model.to_dict(), "archive": {"path": archive_path(model), "sha256": "ab" * 32, "size": 10}}
    values.update(changes)
    return values.pop("key", model.uid), values


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"uid": "/../../somewhere", "key": "/../../somewhere"}, "must be 8 hex digits"),
        ({"uid": "0000abcd-../../x", "key": "0000abcd-../../x"}, "version '../../x' must be a version in normal form"),
        ({"key": "other"}, "filed under another uid"),
        ({"name": "../cnn"}, "name '../cnn' must be letters"),
        ({"name": ""}, "name '' must be letters"),
        ({"subgroup": "a..b"}, "subgroup part '' must be letters"),
        ({"subgroup": "/etc"}, "subgroup part '/etc' must be letters"),
        ({"version": "1.0.0/.."}, "must be a version in normal form"),
        ({"version": "2.0.0"}, "its uid .* is not of its version 2.0.0"),
        ({"archive": {"path": "../../../etc/passwd", "sha256": "ab" * 32, "size": 1}}, "its archive is at '../../../etc/passwd'"),
        ({"archive": {"path": "x"}}, "no archive path, sha256 and size"),
        ({"labels": "abc"}, "labels are not a list of names"),
        ({"metrics": {"val/top1": "high"}}, "metrics are not numbers"),
        ({"uid": None}, "must be 8 hex digits"),
        ({"subgroup": 5}, ""),
        ({"params": ["abc"]}, ""),
    ],
)
def test_rows_that_sesemi_could_not_have_written_are_refused(changes, reason):
    """The ids of a row become folders of the cache: a row with a path-like or empty part, or an
    archive elsewhere than sesemi puts it, makes the table refused in one line, naming the row."""
    key, values = row(**changes)
    text = json.dumps({"format": 1, "models": {key: values}})
    with pytest.raises(SesemiError, match=f"^memory://r/models.json is refused: its row .* could not have been published by sesemi \\(.*{reason}.*\\); the repository was changed by hand"):
        parse_table(text, "memory://r/models.json")


def test_a_uid_or_a_name_and_version_is_published_once():
    first = info(rate=16000)
    rows = {first.uid: (first, Archive("a", "", 0))}
    with pytest.raises(SesemiError, match=f"^{first.uid} is already published; publish a new version$"):
        check_unpublished(rows, first)
    with pytest.raises(SesemiError, match=f"^cnn@1.0.0 is already published \\(as cnn@1.0.0, {first.uid}\\)"):
        check_unpublished(rows, info(rate=8000))  # same name and version
    with pytest.raises(SesemiError, match=f"^cnn@1.0 is already published \\(as cnn@1.0.0, {first.uid}\\)"):
        check_unpublished(rows, info(version="1.0"))  # the same version, written otherwise
    check_unpublished(rows, info(version="1.1.0"))
    check_unpublished(rows, info(subgroup="other"))


def test_references_name_a_uid_a_version_or_the_latest_version():
    models = [info(version="1.0.0"), info(version="1.10.0"), info(version="1.9.0"), info("cnn", "2.0.0", "x")]
    assert matches(models, models[0].uid) == [models[0]]
    assert matches(models, "cnn@1.9.0") == [models[2]]
    assert matches(models, "cnn@1.0.0") == [models[0]]
    assert matches(models, "cnn@1") == matches(models, "cnn@1.0") == [models[0]]  # one version, as publishing counts it
    assert matches(models, "x.cnn") == [models[3]]
    assert matches(models, "cnn") == [models[1], models[3]]  # the latest of each subgroup
    assert matches(models[:3], "cnn") == [models[1]]  # 1.10.0 > 1.9.0
    assert matches(models, "rnn") == [] and matches(models, "00000000-1.0.0") == []


@pytest.mark.parametrize(
    "changes",
    [{"params": {"backbone": "evil"}}, {"name": "rnn"}, {"subgroup": "images"}, {"uid": "0000abcd-1.0.0", "key": "0000abcd-1.0.0"}],
)
def test_a_row_whose_uid_is_not_its_models_is_refused(changes):
    """A uid is the hash of a model's name, subgroup and params: a row that files another model
    under a uid (which the cache then serves for that uid) is refused."""
    key, values = row(**changes)
    text = json.dumps({"format": 1, "models": {key: values}})
    with pytest.raises(SesemiError, match=r"could not have been published by sesemi \(its uid [0-9a-f]{8}-1.0.0 is not that of its name, subgroup, params and version \([0-9a-f]{8}-1.0.0\)\)"):
        parse_table(text, "memory://r/models.json")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"date": 5}, "its date is not a string"),
        ({"author": ["me"]}, "its author is not a string or null"),
        ({"checkpoint": None}, "its checkpoint is not a string"),
        ({"ema": "yes"}, "its ema is not true or false"),
        ({"sesemi": 1.0}, "its sesemi is not a string"),
        ({"subgroup": 5}, "its subgroup is not a string or null"),
        ({"version": 100}, "its version is not a string"),
        ({"params": None}, "its params is not a mapping"),
        ({"params": []}, "its params is not a mapping"),
        ({"meta": "x"}, "its meta is not a mapping"),
    ],
)
def test_rows_with_fields_of_the_wrong_type_are_refused(changes, reason):
    """`sesemi models` sliced a date of 5 (TypeError): a row is sound or refused in one line."""
    key, values = row(**changes)
    text = json.dumps({"format": 1, "models": {key: values}})
    with pytest.raises(SesemiError, match=f"could not have been published by sesemi \\({reason}\\); "):
        parse_table(text, "memory://r/models.json")


def test_params_with_keys_other_than_strings_keep_their_uid_in_the_table():
    """JSON turns keys into strings (and reorders 10 before 2): the uid hashes params as the
    table holds them, so the row is not refused when read back."""
    params = check_params({2: "a", 10: "b"})
    model = ModelInfo(model_uid("cnn", None, params, "1.0.0"), "cnn", None, "1.0.0", params)
    rows = {model.uid: (model, Archive(archive_path(model), "ab" * 32, 10))}
    assert parse_table(format_table(rows), "models.json")[model.uid][0].params == {"2": "a", "10": "b"}
