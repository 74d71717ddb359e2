"""Errors raised while loading a model: every problem names its file, line and field path.

``ModelError`` carries *all* problems found (validation never stops at the first one), so a user fixes a
config in one round instead of one error per run. :func:`schema_issues` turns a Pydantic ``ValidationError``
into such problems; the model loader and the monitor config (``vigil.monitors.config``) both use it, so a bad
field reads the same wherever it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pydantic import ValidationError

    from vigil.model.types import Model

__all__ = ["Lines", "ModelError", "ModelIssue", "dotted", "schema_issues"]


@dataclass(frozen=True, slots=True)
class ModelIssue:
    """One problem in a model file. ``line`` is 1-based; 0 when the problem is about the file as a whole."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        field = f" {self.path}:" if self.path else ""
        return f"{where}:{field} {self.message}"


class ModelError(Exception):
    """The model could not be loaded; ``issues`` lists every problem found, sorted by file and line.

    ``partial`` is what could be built from the entries that passed the schema, so that ``vigil validate`` can
    check their monitors in the same run. Its references are not known to resolve: never analyse it.
    """

    def __init__(self, issues: list[ModelIssue], *, partial: Callable[[], Model] | None = None) -> None:
        self.issues = sorted(issues, key=lambda i: (i.file, i.line, i.path))
        self._partial = partial
        super().__init__("\n".join(str(i) for i in self.issues))

    @cached_property
    def partial(self) -> Model | None:
        # Built on first use: only `vigil validate` wants it, and building costs ~10 % of a large failed load.
        return self._partial() if self._partial is not None else None


class Lines(Protocol):
    """Where things are in one file: its name, and the line of a path in it (0 when it cannot be found)."""

    @property
    def file(self) -> str: ...

    def line(self, path: tuple[str | int, ...]) -> int: ...


def dotted(path: tuple[str | int, ...]) -> str:
    """Return ``components[3].depends_on[0].any`` for ``("components", 3, "depends_on", 0, "any")``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def schema_issues(
    lines: Lines,
    prefix: tuple[str | int, ...],
    exc: ValidationError,
    *,
    patterns: Mapping[str, str] | None = None,
) -> list[ModelIssue]:
    """Return one issue per error in ``exc``, at ``prefix`` + the error's location, in the user's words.

    ``patterns`` maps a field's regular expression to the message shown when a value does not match it
    (``{input!r}`` is replaced); Pydantic's own "String should match pattern '^[A-Za-z0-9]...'" explains nothing.
    """
    issues = []
    for error in exc.errors(include_url=False):
        # Union tags ("<any>", "<http>") are how a schema picks a branch; they mean nothing to the user.
        loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("<")))
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        elif error["type"] == "missing":
            message = "required field is missing"
        elif error["type"] == "string_pattern_mismatch" and patterns:
            template = patterns.get(str(error.get("ctx", {}).get("pattern")))
            if template is not None:
                message = template.format(input=error["input"])
        path = (*prefix, *loc)
        issues.append(ModelIssue(lines.file, lines.line(path), dotted(path), message))
    return issues
