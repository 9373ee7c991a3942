"""The lookup table (sesemi/hub/lookup.py): rows, conflicts, and which models a reference names."""

from __future__ import annotations

import pytest

from sesemi.errors import SesemiError
from sesemi.hub.ids import model_uid
from sesemi.hub.lookup import Archive, ModelInfo, conflict, format_table, matches, parse_table


def info(name="cnn", version="1.0.0", subgroup=None, **params) -> ModelInfo:
    return ModelInfo(model_uid(name, subgroup, params, version), name, subgroup, version, params)


def test_table_round_trips():
    rows = {i.uid: (i, Archive(f"{i.name}/{i.uid}.tar.gz", "ab" * 32, 10)) for i in (info(), info("rnn"))}
    assert parse_table(format_table(rows), "models.json") == rows


@pytest.mark.parametrize("text", ["", "[]", '{"format": 2, "models": {}}', '{"format": 1, "models": {"x": {}}}'])
def test_a_file_that_is_not_a_table_is_one_error_line(text):
    with pytest.raises(SesemiError, match="not a sesemi lookup table"):
        parse_table(text, "memory://repo/models.json")


def test_a_uid_or_a_name_and_version_is_published_once():
    first = info(rate=16000)
    rows = {first.uid: (first, Archive("a", "", 0))}
    assert "already published; publish a new version" in conflict(rows, first)
    assert f"already published (as {first.uid})" in conflict(rows, info(rate=8000))  # same name and version
    assert conflict(rows, info(version="1.1.0")) is None
    assert conflict(rows, info(subgroup="other")) is None


def test_references_name_a_uid_a_version_or_the_latest_version():
    models = [info(version="1.0.0"), info(version="1.10.0"), info(version="1.9.0"), info("cnn", "2.0.0", "x")]
    assert matches(models, models[0].uid) == [models[0]]
    assert matches(models, "cnn@1.9.0") == [models[2]]
    assert matches(models, "cnn", "1.0.0") == [models[0]]
    assert matches(models, "x.cnn") == [models[3]]
    assert matches(models, "cnn") == [models[1], models[3]]  # the latest of each subgroup
    assert matches(models[:3], "cnn") == [models[1]]  # 1.10.0 > 1.9.0
    assert matches(models, "rnn") == [] and matches(models, "00000000-1.0.0") == []
