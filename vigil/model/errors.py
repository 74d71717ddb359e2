"""Errors raised while loading a model: every problem names its file, line and field path.

``ModelError`` carries *all* problems found (validation never stops at the first one), so a user fixes a
config in one round instead of one error per run.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ModelError", "ModelIssue"]


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
    """The model could not be loaded; ``issues`` lists every problem found, sorted by file and line."""

    def __init__(self, issues: list[ModelIssue]) -> None:
        self.issues = sorted(issues, key=lambda i: (i.file, i.line, i.path))
        super().__init__("\n".join(str(i) for i in self.issues))
