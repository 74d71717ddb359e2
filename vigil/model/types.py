"""The validated infrastructure model: plain data that the analysis engine reads.

Loading (``vigil.model.loader``) turns YAML into these objects after checking them; nothing here parses
or validates, so the analysis can trust every reference it follows. Treat them as immutable and derive
changed copies with ``dataclasses.replace`` (as :meth:`Model.with_states` does). They are not declared
``frozen`` because a frozen dataclass is eight times slower to create, and a 100,000-component model creates
a quarter of a million of them on every load.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cached_property
from typing import Any

from vigil.model.errors import Lines, ModelIssue, dotted

__all__ = [
    "KNOWN_COMPONENT_KINDS",
    "Component",
    "Domain",
    "DomainKind",
    "GroupMode",
    "Model",
    "MonitorEntry",
    "RawSection",
    "Requirement",
    "State",
    "Tier",
]

# Kinds Vigil knows how to draw and describe; any other lowercase word is accepted as a kind too.
KNOWN_COMPONENT_KINDS = (
    "service",
    "vm",
    "host",
    "hypervisor",
    "storage",
    "database",
    "queue",
    "network",
    "power",
    "site",
    "provider",
    "container",
    "load_balancer",
    "dns",
)


class Tier(StrEnum):
    CRITICAL = "critical"
    STANDARD = "standard"
    BEST_EFFORT = "best-effort"


class State(StrEnum):
    """What-if state of a component or domain."""

    UP = "up"
    DOWN = "down"
    MAINTENANCE = "maintenance"  # out of service on purpose: counts as down for what depends on it
    DEGRADED = "degraded"  # running, but cannot stand in as a redundant member (e.g. a replica re-syncing)


class DomainKind(StrEnum):
    SITE = "site"
    RACK = "rack"
    PROVIDER = "provider"
    POWER = "power"
    NETWORK = "network"
    ZONE = "zone"
    REGION = "region"
    MAINTENANCE_GROUP = "maintenance_group"
    OTHER = "other"


class GroupMode(StrEnum):
    ALL = "all"
    ANY = "any"
    AT_LEAST = "at_least"


@dataclass(slots=True)
class Requirement:
    """One entry of ``depends_on``: a single component (mode ALL, one member) or a redundancy group.

    ``k`` is how many members must be up: len(members) for ALL, 1 for ANY.
    ``optional``: losing it degrades the dependant but does not take it down.
    ``startup_only``: needed to (re)start; while running, losing it only degrades the dependant, but the
    resilience analysis counts it as hard because every restart needs it (the Galaxy storage lesson).
    """

    members: tuple[str, ...]
    mode: GroupMode
    k: int
    optional: bool = False
    startup_only: bool = False
    name: str | None = None

    @property
    def is_group(self) -> bool:
        return len(self.members) > 1 or self.mode is not GroupMode.ALL

    def describe(self) -> str:
        """Return e.g. ``nfs1``, ``all of [a, b]``, ``any of [a, b]``, ``2 of [a, b, c]``."""
        if not self.is_group:
            return self.members[0]
        inner = ", ".join(self.members)
        if self.mode is GroupMode.ALL:
            return f"all of [{inner}]"
        if self.mode is GroupMode.ANY:
            return f"any of [{inner}]"
        return f"{self.k} of [{inner}]"


@dataclass(slots=True)
class MonitorEntry:
    """One item of a component's ``monitors:`` list, as written: the model does not validate it.

    Monitor types belong to ``vigil.monitors`` (which imports the model, never the other way round); its
    ``monitors_of`` validates these entries and reports the bad ones without failing the model. ``path`` and
    ``lines`` place the entry and its fields in its file, e.g. ``components[3].monitors[1].url`` at line 17.
    """

    data: Any  # whatever the YAML held: usually a mapping with a 'type', but anything loads
    path: tuple[str | int, ...]  # ("components", 3, "monitors", 1)
    lines: Lines = field(repr=False, compare=False)

    @property
    def file(self) -> str:
        return self.lines.file

    def line(self, *sub: str | int) -> int:
        """Return the line of the entry, or of a field in it (``line("url")``); 0 if it cannot be found.

        The first call for a file parses it again to find lines (see ``FileLines``); later calls are cheap.
        """
        return self.lines.line((*self.path, *sub))

    def issue(self, sub: tuple[str | int, ...], message: str) -> ModelIssue:
        path = (*self.path, *sub)
        return ModelIssue(self.lines.file, self.lines.line(path), dotted(path), message)


@dataclass(slots=True)
class RawSection:
    """A top-level section the model carries without understanding it (``notifications:``, issue 4).

    As with :class:`MonitorEntry`, the domain that owns it (``vigil.notify.config``) validates it and places its
    problems with ``lines``; the model never imports that domain.
    """

    data: Any
    path: tuple[str | int, ...]  # ("notifications",)
    lines: Lines = field(repr=False, compare=False)

    @property
    def file(self) -> str:
        return self.lines.file

    def issue(self, sub: tuple[str | int, ...], message: str) -> ModelIssue:
        path = (*self.path, *sub)
        return ModelIssue(self.lines.file, self.lines.line(path), dotted(path), message)


@dataclass(slots=True)
class Component:
    id: str
    kind: str
    name: str
    availability: float  # steady-state probability of being up, from the model or the default
    availability_source: str  # "availability", "mtbf/mttr" or "default"
    owner: str | None = None
    tier: Tier = Tier.STANDARD
    slo: float | None = None  # target availability as a fraction (0.999 for 99.9 %)
    description: str | None = None
    runs_on: str | None = None
    requirements: tuple[Requirement, ...] = ()
    domains: tuple[str, ...] = ()
    state: State = State.UP
    file: str = ""
    monitors: tuple[MonitorEntry, ...] = ()  # unvalidated: see vigil.monitors.config.monitors_of


@dataclass(slots=True)
class Domain:
    """A failure domain: when it fails, every member (and every sub-domain) fails with it."""

    id: str
    kind: DomainKind
    name: str
    availability: float
    availability_source: str
    domains: tuple[str, ...] = ()  # enclosing domains (a rack within a site)
    state: State = State.UP
    description: str | None = None
    file: str = ""


@dataclass
class Model:
    """Components and failure domains by id; every reference in them is known to resolve."""

    name: str
    components: dict[str, Component]
    domains: dict[str, Domain]
    default_availability: float = 0.999
    sources: tuple[str, ...] = ()
    notifications: tuple[RawSection, ...] = ()  # one per file with a `notifications:` section, unvalidated

    def node_ids(self) -> list[str]:
        return [*self.domains, *self.components]

    @cached_property
    def dependants(self) -> dict[str, list[str]]:
        """Reverse edges: for each component or domain id, the components/domains that use it directly."""
        rev: dict[str, list[str]] = {}
        for comp in self.components.values():
            if comp.runs_on is not None:
                rev.setdefault(comp.runs_on, []).append(comp.id)
            for req in comp.requirements:
                for member in req.members:
                    rev.setdefault(member, []).append(comp.id)
            for dom in comp.domains:
                rev.setdefault(dom, []).append(comp.id)
        for domain in self.domains.values():
            for parent in domain.domains:
                rev.setdefault(parent, []).append(domain.id)
        return rev

    def with_states(self, states: dict[str, State]) -> Model:
        """Return a copy of the model where the given components/domains have the given states."""
        comps = dict(self.components)
        doms = dict(self.domains)
        for node_id, state in states.items():
            if node_id in comps:
                comps[node_id] = replace(comps[node_id], state=state)
            elif node_id in doms:
                doms[node_id] = replace(doms[node_id], state=state)
            else:
                raise KeyError(node_id)
        return Model(self.name, comps, doms, self.default_availability, self.sources, self.notifications)
