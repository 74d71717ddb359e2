"""The YAML file format as Pydantic models: one source for validation and for ``vigil schema``.

Each component and domain is validated on its own (see ``loader``), so one bad entry is reported without
hiding the problems of the others.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, model_validator

from vigil.model.types import DomainKind, State, Tier

__all__ = [
    "ID_PATTERN",
    "KIND_PATTERN",
    "PATTERN_MESSAGES",
    "AllSpec",
    "AnySpec",
    "AtLeastSpec",
    "ComponentSpec",
    "DefaultsSpec",
    "DomainSpec",
    "FileSpec",
    "RefSpec",
    "file_json_schema",
    "parse_duration",
]

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$"
KIND_PATTERN = r"^[a-z][a-z0-9_-]*$"
# What to say when a value does not match one of these patterns (see vigil.model.errors.schema_issues).
PATTERN_MESSAGES = {
    ID_PATTERN: "{input!r} is not a valid id: use letters, digits and . _ : / @ + - (no spaces)",
    KIND_PATTERN: "{input!r} is not a kind: use a lowercase word such as service, vm, host, storage",
}

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|y|w|d|h|m|s)")
_UNIT_SECONDS = {"y": 365 * 86400.0, "w": 7 * 86400.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(value: object) -> float:
    """Return seconds for ``"8760h"``, ``"30m"``, ``"1d12h"``, ``"1y"``; raises ValueError otherwise.

    A bare number is refused: ``mttr: 4`` could mean hours or minutes, and guessing is how SLO maths goes wrong.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("a duration is a string such as '8760h', '30m', '1d12h'")
    if not isinstance(value, str):
        raise ValueError(f"duration {value!r} needs a unit, e.g. '{value}h' or '{value}m'")
    text = value.strip().lower().replace(" ", "")
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"{value!r} is not a duration (use units y, w, d, h, m, s: '8760h', '30m', '1d12h')")
    if total <= 0:
        raise ValueError(f"duration {value!r} must be greater than zero")
    return total


def _fraction(value: object, *, what: str) -> float:
    if isinstance(value, str):
        text = value.strip()
        if not text.endswith("%"):
            raise ValueError(f"{what} as text must be a percentage such as '99.9%'")
        return _percent(text[:-1], original=value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} must be a number")
    return float(value)


def _percent(value: object, *, original: object) -> float:
    # Decimal keeps 99.9 % exactly 0.999 instead of 0.9990000000000001.
    try:
        return float(Decimal(str(value)) / 100)
    except (InvalidOperation, ValueError):
        raise ValueError(f"{original!r} is not a percentage") from None


def _availability(value: object) -> float:
    number = _fraction(value, what="availability")
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"availability {value!r} must be between 0 and 1 (or a percentage string like '99.9%')")
    return number


def _slo(value: object) -> float:
    # A bare number is a percentage (slo: 99.9), the way people write SLOs; text may say '99.9%'.
    if isinstance(value, str):
        number = _fraction(value, what="slo")
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("slo must be a percentage such as 99.9")
    else:
        number = _percent(value, original=value)
    if not 0.0 < number <= 1.0:
        raise ValueError(f"slo {value!r} must be a percentage above 0 and at most 100, e.g. 99.9")
    return number


Id = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        pattern=ID_PATTERN,
        description="Unique id: letters, digits and . _ : / @ + - (no spaces).",
    ),
]
Availability = Annotated[
    float,
    BeforeValidator(_availability),
    Field(description="Steady-state availability: a fraction (0.999) or a percentage string ('99.9%')."),
]
Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    Field(description="A duration with units: '8760h', '30m', '1d12h', '1y'.", json_schema_extra={"type": "string"}),
]
Slo = Annotated[
    float,
    BeforeValidator(_slo),
    Field(description="Target availability in percent (99.9) or as text ('99.9%')."),
]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _FailureData(_Spec):
    availability: Availability | None = None
    mtbf: Duration | None = Field(default=None, description="Mean time between failures, e.g. '8760h'.")
    mttr: Duration | None = Field(default=None, description="Mean time to repair, e.g. '4h'.")

    @model_validator(mode="after")
    def _one_source(self) -> _FailureData:
        if self.availability is not None and (self.mtbf is not None or self.mttr is not None):
            raise ValueError("give either availability or mtbf + mttr, not both")
        if (self.mtbf is None) != (self.mttr is None):
            raise ValueError("mtbf and mttr go together: give both or neither")
        return self

    def steady_availability(self) -> float | None:
        """Return the availability given or implied by MTBF/(MTBF+MTTR); None when no failure data."""
        if self.availability is not None:
            return self.availability
        if self.mtbf is not None and self.mttr is not None:
            return self.mtbf / (self.mtbf + self.mttr)
        return None


class _RequirementFlags(_Spec):
    optional: bool = Field(default=False, description="Losing it degrades the dependant instead of taking it down.")
    startup_only: bool = Field(default=False, description="Needed to (re)start; analysis counts it as hard.")
    name: str | None = Field(default=None, description="A label for the requirement, e.g. 'file storage'.")


class RefSpec(_RequirementFlags):
    id: Id


class AllSpec(_RequirementFlags):
    all: list[Id] = Field(min_length=1, description="Every member is needed.")


class AnySpec(_RequirementFlags):
    any: list[Id] = Field(min_length=1, description="One member suffices (redundancy, failover).")


class AtLeastSpec(_RequirementFlags):
    at_least: int = Field(ge=1, description="How many members must be up.")
    of: list[Id] = Field(min_length=1, description="The members.")


def _requirement_tag(value: Any) -> str:
    # Choosing the branch from the keys present gives one precise error instead of one per union branch.
    if isinstance(value, str):
        return "<ref>"
    if isinstance(value, dict):
        for key in ("at_least", "of"):
            if key in value:
                return "<at_least>"
        if "any" in value:
            return "<any>"
        if "all" in value:
            return "<all>"
        return "<id>"
    return "<ref>"


RequirementSpec = Annotated[
    Annotated[str, Tag("<ref>"), Field(min_length=1, max_length=200, pattern=ID_PATTERN)]
    | Annotated[RefSpec, Tag("<id>")]
    | Annotated[AllSpec, Tag("<all>")]
    | Annotated[AnySpec, Tag("<any>")]
    | Annotated[AtLeastSpec, Tag("<at_least>")],
    Discriminator(_requirement_tag),
]


class ComponentSpec(_FailureData):
    id: Id
    kind: str = Field(
        pattern=KIND_PATTERN,
        description="service, vm, host, hypervisor, storage, database, queue, network, power, site, provider, ...",
    )
    name: str | None = Field(default=None, description="Display name (defaults to the id).")
    owner: str | None = Field(default=None, description="Team or person responsible.")
    tier: Tier = Tier.STANDARD
    slo: Slo | None = None
    description: str | None = None
    runs_on: Id | None = Field(default=None, description="The host, VM or hypervisor this runs on.")
    depends_on: list[RequirementSpec] = Field(default_factory=list)
    domains: list[Id] = Field(default_factory=list, description="Failure domains this belongs to.")
    state: State = State.UP
    # Any item loads: a bad monitor must not fail the model. vigil.monitors.config validates them later, and
    # `vigil schema` describes the items with the monitor schema (see file_json_schema).
    monitors: list[Any] = Field(default_factory=list, description="Checks of this component (see docs/monitoring.md).")


class DomainSpec(_FailureData):
    id: Id
    kind: DomainKind
    name: str | None = None
    description: str | None = None
    domains: list[Id] = Field(default_factory=list, description="Enclosing domains (a rack within a site).")
    state: State = State.UP


class DefaultsSpec(_Spec):
    availability: Availability = Field(
        default=0.999, description="Availability assumed for components and domains without failure data."
    )


class FileSpec(_Spec):
    """One Vigil model file. Several files (or a directory of them) are merged."""

    model_config = ConfigDict(extra="forbid", title="Vigil model")

    version: Literal[1] = 1
    name: str | None = None
    defaults: DefaultsSpec | None = None
    domains: list[DomainSpec] = Field(default_factory=list)
    components: list[ComponentSpec] = Field(default_factory=list)
    # Validated by vigil.notify.config, not here (the model does not import the notifications domain).
    notifications: dict[str, Any] | None = Field(
        default=None, description="Notification channels and routes (docs/notifications.md)."
    )


def file_json_schema(monitor_schema: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return the JSON Schema of a model file.

    The model leaves the items of a component's ``monitors`` open, since monitor types live in
    ``vigil.monitors``, which depends on the model and not the reverse. Pass the monitor schema
    (``vigil.monitors.schemas.monitor_json_schema()``) to describe them, so that editors complete monitors too;
    its definitions join the file's under ``$defs`` and the items refer to it as ``MonitorSpec``.
    """
    schema = FileSpec.model_json_schema()
    if monitor_schema is None:
        return schema
    monitor = dict(monitor_schema)
    monitor_defs: dict[str, Any] = dict(monitor.pop("$defs", {}))
    defs: dict[str, Any] = schema["$defs"]
    clash = sorted(name for name in [*monitor_defs, "MonitorSpec"] if name in defs)
    if clash:  # a silent overwrite would describe model entries with a monitor's fields, or the reverse
        raise ValueError(f"the monitor schema redefines {', '.join(clash)}")
    defs.update(monitor_defs)
    defs["MonitorSpec"] = monitor
    defs["ComponentSpec"]["properties"]["monitors"]["items"] = {"$ref": "#/$defs/MonitorSpec"}
    return schema
