"""The monitors declared in a model: each component's ``monitors:`` entries, validated, keyed and placed.

The model loads monitor entries without looking at them (``vigil.model`` does not know monitor types), so a bad
monitor never stops the model, nor the other monitors: :func:`monitors_of` returns the valid ones and one
:class:`~vigil.model.errors.ModelIssue` per problem, worded and placed like the model's own errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import ValidationError

from vigil.model.errors import ModelIssue, schema_issues
from vigil.model.types import Model, MonitorEntry
from vigil.monitors.schemas import (
    MONITOR_TYPES,
    PATTERN_MESSAGES,
    HeartbeatMonitorSpec,
    MonitorSpec,
    parse_monitor,
)

__all__ = ["MAX_KEY_LENGTH", "MonitorConfig", "MonitorSet", "monitors_of"]

# The length of the monitors table's primary key (vigil.monitors.models.Monitor.id); a longer key could not be
# stored, so it is a config problem, reported here rather than as a database error at sync time.
MAX_KEY_LENGTH = 512


@dataclass(frozen=True, slots=True)
class MonitorConfig:
    """One valid monitor: its spec, the component it checks, and where it is written."""

    key: str  # "<component id>/<monitor id>": the primary key of the monitors table
    component_id: str
    spec: MonitorSpec
    file: str
    line: int | None  # None when not looked up (monitors_of(lines=False)) or not found

    @property
    def where(self) -> str:
        """Return ``file:line`` (or the file alone), as error messages show places."""
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(slots=True)
class MonitorSet:
    """The monitors to run, and the problems of those left out (empty when every monitor is valid)."""

    monitors: list[MonitorConfig] = field(default_factory=list)
    issues: list[ModelIssue] = field(default_factory=list)


def monitors_of(model: Model, *, lines: bool = True) -> MonitorSet:
    """Validate every component's monitors; return the valid ones, in model order, and an issue for each other.

    Left out, each with an issue: an entry that fails the monitor schema; a second monitor with the id of an
    earlier one of the same component (the first is kept); a heartbeat whose token an earlier heartbeat already
    uses (pings could not tell them apart); a monitor whose key is another's, which ids containing '/' allow
    (component ``a/b`` monitor ``c`` and component ``a`` monitor ``b/c``), or too long to store.

    Finding the lines of valid monitors parses each file that has monitors once more (line-aware, as the
    loader does for errors): about 0.4 s per 10,000 components in those files, so milliseconds for a usual
    model. With ``lines=False`` their ``line`` is None and only files with a problem are parsed again.
    """
    result = MonitorSet()
    keys: dict[str, MonitorConfig] = {}
    tokens: dict[str, MonitorConfig] = {}
    for component in model.components.values():
        ids: dict[str, MonitorConfig] = {}
        for entry in component.monitors:
            spec = _parse(entry, result.issues)
            if spec is None:
                continue
            key = f"{component.id}/{spec.monitor_id}"
            config = MonitorConfig(key, component.id, spec, entry.file, (entry.line() or None) if lines else None)
            problem = _conflict(entry, config, ids, keys, tokens)
            if problem is not None:
                result.issues.append(problem)
                continue
            ids[spec.monitor_id] = keys[key] = config
            if isinstance(spec, HeartbeatMonitorSpec) and spec.token is not None:
                tokens[spec.token] = config
            result.monitors.append(config)
    return result


def _parse(entry: MonitorEntry, issues: list[ModelIssue]) -> MonitorSpec | None:
    data = entry.data
    # The type is checked first: Pydantic's discriminator error names no field, and says nothing useful
    # about an entry that is not a mapping at all (a bare URL, say).
    if not isinstance(data, Mapping):
        issues.append(entry.issue((), f"a monitor is a mapping with a 'type' ({', '.join(MONITOR_TYPES)})"))
        return None
    kind = data.get("type")
    if kind is None:
        issues.append(entry.issue(("type",), f"required field is missing: one of {', '.join(MONITOR_TYPES)}"))
        return None
    if kind not in MONITOR_TYPES:
        issues.append(entry.issue(("type",), f"{kind!r} is not a monitor type: use {', '.join(MONITOR_TYPES)}"))
        return None
    try:
        return parse_monitor(data)
    except ValidationError as exc:
        issues.extend(schema_issues(entry.lines, entry.path, exc, patterns=PATTERN_MESSAGES))
        return None


def _conflict(
    entry: MonitorEntry,
    config: MonitorConfig,
    ids: dict[str, MonitorConfig],
    keys: dict[str, MonitorConfig],
    tokens: dict[str, MonitorConfig],
) -> ModelIssue | None:
    spec = config.spec
    # Point at the id when one is written; a derived id (type:target) has no line of its own.
    id_field: tuple[str | int, ...] = ("id",) if spec.id is not None else ()
    first = ids.get(spec.monitor_id)
    if first is not None:
        return entry.issue(
            id_field,
            f"duplicate monitor id {spec.monitor_id!r} in component {config.component_id!r} (first at "
            f"{first.where}); give one of them another id",
        )
    first = keys.get(config.key)
    if first is not None:
        return entry.issue(
            id_field,
            f"monitor key {config.key!r} is also that of component {first.component_id!r}'s monitor at "
            f"{first.where}; change one of the monitor ids",
        )
    if len(config.key) > MAX_KEY_LENGTH:
        return entry.issue(
            id_field,
            f"the key '<component id>/<monitor id>' is {len(config.key)} characters, more than "
            f"{MAX_KEY_LENGTH}: give the monitor a shorter id",
        )
    if isinstance(spec, HeartbeatMonitorSpec) and spec.token is not None:
        first = tokens.get(spec.token)
        if first is not None:  # the token is a secret: say where the other one is, not what it is
            return entry.issue(("token",), f"the same token is used by the heartbeat at {first.where} ({first.key})")
    return None
