from __future__ import annotations

from typing import Any

import pytest

from vigil.monitors.jsonpath import parse_json_condition

DOC = {"status": "ok", "n": 1, "flag": True, "items": [{"id": 7}], "odd key": None}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('$.status == "ok"', None),
        ("$.n == 1", None),
        ("$.n == true", "$.n is 1 (expected true)"),
        ("$.flag == 1", "$.flag is true (expected 1)"),
        ("$.items[0].id == 7", None),
        ("$.items[-1].id != 7", "$.items[-1].id is 7 (expected anything else)"),
        ("$.items[3].id", "$.items[3] missing"),
        ('$["odd key"] == null', None),
        ("$['odd key']", '$["odd key"] is null'),
        ("$.status.deep", "$.status.deep missing"),
        ("$", None),
    ],
)
def test_evaluate(text: str, reason: str | None) -> None:
    assert parse_json_condition(text).evaluate(DOC) == reason


@pytest.mark.parametrize("text", ["status", "$.a ==", "$.a == ok", "$.a >= 1", "$..a", "$.a[x]"])
def test_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_json_condition(text)


def test_any_document() -> None:
    document: Any = [1, 2]
    assert parse_json_condition("$[1] == 2").evaluate(document) is None
    assert parse_json_condition("$.a").evaluate(document) == "$.a missing"
