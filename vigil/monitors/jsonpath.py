"""The JSON body condition of HTTP monitors: a dotted path, optionally compared with a JSON value.

Grammar: ``$`` then ``.key``, ``["key"]`` or ``[index]`` steps, then optionally ``==`` or ``!=`` and a JSON literal:
``$.status == "ok"``, ``$.checks[0].healthy == true``, ``$["x-y"].count != 0``. Without a comparison the value
must exist and be neither ``false`` nor ``null`` (``$.db.ok``).

Why not a JSONPath library: health endpoints need "this field equals that", and a full JSONPath (filters,
wildcards, slices) would bring a parser generator dependency for a feature nobody uses in a health check, while
its filter syntax (``$[?(@.status == "ok")]``) is harder to write than the comparison above.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["JsonCondition", "parse_json_condition"]

_STEP = re.compile(r"""\.([A-Za-z_][A-Za-z0-9_-]*)|\[\s*(-?\d+)\s*\]|\[\s*("(?:[^"\\]|\\.)*"|'[^']*')\s*\]""")
_MISSING = object()


@dataclass(frozen=True, slots=True)
class JsonCondition:
    """A parsed condition; ``evaluate`` tells whether a JSON document satisfies it."""

    text: str
    path: tuple[str | int, ...]
    operator: Literal["==", "!=", "truthy"]
    expected: Any = None

    def evaluate(self, document: Any) -> str | None:
        """Return None when the document satisfies the condition, else the reason it does not."""
        value, found = _follow(document, self.path)
        if value is _MISSING:
            return f"{_path_text(self.path[: found + 1])} missing"  # the first step that is not there
        where = _path_text(self.path)
        shown = json.dumps(value)[:80]
        if self.operator == "==" and not _same(value, self.expected):
            return f"{where} is {shown} (expected {json.dumps(self.expected)})"
        if self.operator == "!=" and _same(value, self.expected):
            return f"{where} is {shown} (expected anything else)"
        if self.operator == "truthy" and (value is None or value is False):
            return f"{where} is {shown}"
        return None


def parse_json_condition(text: str) -> JsonCondition:
    """Return the condition for ``$.a.b == "x"``; raises ValueError saying what is wrong and where."""
    source = text.strip()
    if not source.startswith("$"):
        raise ValueError("a JSON condition starts with '$', e.g. '$.status == \"ok\"'")
    pos, path = 1, list[str | int]()
    while (match := _STEP.match(source, pos)) is not None:
        name, index, quoted = match.groups()
        if index is not None:
            path.append(int(index))
        elif quoted is not None:
            path.append(json.loads(quoted) if quoted.startswith('"') else quoted[1:-1])
        else:
            path.append(name)
        pos = match.end()
    rest = source[pos:].strip()
    if not rest:
        return JsonCondition(source, tuple(path), "truthy")
    if not rest.startswith(("==", "!=")):
        raise ValueError(f"unexpected {rest[:20]!r} at position {pos}: expected .key, [index], == or !=")
    try:
        expected = json.loads(rest[2:])
    except json.JSONDecodeError:
        raise ValueError(f'{rest[2:].strip()!r} is not a JSON value (quote strings: "ok")') from None
    operator: Literal["==", "!="] = "==" if rest.startswith("==") else "!="
    return JsonCondition(source, tuple(path), operator, expected)


def _path_text(path: tuple[str | int, ...]) -> str:
    return "$" + "".join(_step_text(step) for step in path)


def _step_text(step: str | int) -> str:
    if isinstance(step, int):
        return f"[{step}]"
    return f".{step}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", step) else f"[{json.dumps(step)}]"


def _follow(document: Any, path: tuple[str | int, ...]) -> tuple[Any, int]:
    """Return the value at the path and how many steps were followed; the value is _MISSING if one is absent."""
    value = document
    for depth, step in enumerate(path):
        in_list = isinstance(step, int) and isinstance(value, list) and -len(value) <= step < len(value)
        in_dict = isinstance(step, str) and isinstance(value, dict) and step in value
        if not (in_list or in_dict):
            return _MISSING, depth
        value = value[step]
    return value, len(path)


def _same(value: Any, expected: Any) -> bool:
    # Python says True == 1; JSON says true and 1 are different values.
    if isinstance(value, bool) or isinstance(expected, bool):
        return type(value) is type(expected) and value == expected
    return bool(value == expected)
