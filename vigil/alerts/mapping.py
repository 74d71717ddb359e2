"""Which component an alert is about, from its labels: the file of ``VIGIL_ALERT_MAPPING``.

Format (YAML)::

    label: vigil_component          # optional (this is the default): a label whose value is a component id
    rules:                          # tried in order after the label; the first whose labels all match wins
      - match: {instance: "vserver8:9100"}
        component: vserver8
      - match: {job: postgres, env: prod}
        component: db

Without a file only the ``vigil_component`` label maps. :func:`load_mapping` raises :class:`AlertMappingError`
naming the file and the place (``rules[1].component: Field required``).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["DEFAULT_LABEL", "AlertMapping", "AlertMappingError", "MappingRule", "load_mapping"]

DEFAULT_LABEL = "vigil_component"


class AlertMappingError(ValueError):
    """The mapping file cannot be read or is not valid; the message names the file and the place."""


class MappingRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    match: dict[str, str] = Field(min_length=1)
    component: str = Field(min_length=1)


class AlertMapping(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str | None = DEFAULT_LABEL
    rules: list[MappingRule] = Field(default_factory=list)

    def component_for(self, labels: Mapping[str, str]) -> tuple[str | None, str]:
        """Return ``(component id, how)``: the id the label or the first matching rule names and what matched,
        or ``(None, why not)``."""
        if self.label and labels.get(self.label):
            return labels[self.label], f"label {self.label}"
        for index, rule in enumerate(self.rules):
            if all(labels.get(name) == value for name, value in rule.match.items()):
                return rule.component, f"rules[{index}]"
        return None, "no mapping rule matches the labels"


def load_mapping(path: str | Path | None) -> AlertMapping:
    """Return the mapping in ``path`` (the default one for None); raises :class:`AlertMappingError`.

    Read again when the file changes (cached by modification time), so an edit needs no restart.
    """
    if path is None:
        return AlertMapping()
    where = Path(path)
    try:
        stamp = where.stat().st_mtime_ns
    except OSError as exc:
        raise AlertMappingError(f"alert mapping {where}: cannot read: {exc.strerror or exc}") from None
    return _load(where, stamp)


@lru_cache(maxsize=8)
def _load(path: Path, _stamp: int) -> AlertMapping:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise AlertMappingError(f"alert mapping {path}: cannot read: {exc}") from None
    try:
        return AlertMapping.model_validate({} if data is None else data)
    except ValidationError as exc:
        first = exc.errors()[0]
        place = _place(first["loc"]) or "(top)"
        raise AlertMappingError(f"alert mapping {path}: {place}: {first['msg']}") from None


def _place(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
