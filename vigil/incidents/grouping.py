"""Root-cause grouping: which incident each component state change joins, opens or recovers. Pure, no I/O.

The engine already follows a failure to the deepest failed component upstream (a VM down because its
hypervisor is down carries ``cause="vserver8"``), so the *root* of a change is its cause, or the component
itself when nothing upstream explains it. The rules, applied to the changes in outbox order:

1. A failure (down or degraded) joins the open incident it belongs to: the one whose probable cause is its
   root, whose affected components or blast radius (of its probable cause) hold the root or the component, or
   whose probable cause lies in the blast radius of the root (the new root is deeper: it becomes the
   incident's probable cause). Several candidates: the oldest wins (the others are merged, rule 5).
2. A failure that belongs to no open incident opens one: probable cause = its root, affected = the root and
   whatever its blast radius takes down or degrades that the engine sees failing now.
3. A change of a component already affected updates its status there (a recovery makes it ``operational``).
   Scheduled maintenance: a component in maintenance opens nothing; one that leaves maintenance still down
   (the window overran), or one outside a window taken down by a component in it, opens an incident at once
   whose title says so.
4. When every affected component is operational, the incident is mitigated and moves to ``monitoring``; a new
   failure moves it back to ``investigating``. After the quiet period in ``monitoring`` it resolves
   (:func:`quiet_resolutions`). An incident a person took over keeps its status: only its components and key
   times follow the engine.
5. Whenever an incident's probable cause becomes (or is opened as) X, every other open incident the engine
   opened and no person took over, whose probable cause is X, is affected by X's incident or lies in X's blast
   radius, is explained by X: it is merged into X's incident (:func:`automatic_merges`). This is how the
   VM and service failures seen before their hypervisor's own check end up in the hypervisor's incident.

Impact, from the affected components' tiers and statuses (the worst rule that applies wins):
``critical`` when a critical component is in major outage; ``major`` when a critical component is otherwise
impaired (degraded, partial outage) or a standard one is in major outage; ``minor`` when anything else is
impaired (a standard component degraded, a best-effort component in any outage); ``none`` otherwise
(maintenance is planned, not an impact).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from vigil.analysis.impact import blast_radius
from vigil.incidents.models import ComponentStatus, Impact, IncidentStatus
from vigil.model.types import Model, Tier
from vigil.monitors.models import ComponentState

__all__ = [
    "Change",
    "IncidentView",
    "Radii",
    "automatic_merges",
    "group_changes",
    "impact_of",
    "quiet_resolutions",
    "status_of",
]

S = ComponentState
FAILING = frozenset({S.DOWN, S.DEGRADED})
_IMPAIRED = frozenset(
    {ComponentStatus.DEGRADED_PERFORMANCE, ComponentStatus.PARTIAL_OUTAGE, ComponentStatus.MAJOR_OUTAGE}
)


@dataclass(frozen=True, slots=True)
class Change:
    """A component's state change from the outbox (monitor changes are not grouped: their component's are)."""

    id: int
    component_id: str
    from_state: ComponentState
    to_state: ComponentState
    cause: str | None
    at: datetime
    reason: str = ""

    @property
    def root(self) -> str:
        return self.cause or self.component_id


@dataclass(slots=True)
class IncidentView:
    """What grouping reads and decides of one open incident; ``id`` None for one this batch opens."""

    id: int | None
    probable_cause: str | None
    status: IncidentStatus
    components: dict[str, ComponentStatus]
    started_at: datetime
    impact: Impact = Impact.NONE
    taken_over: bool = False
    auto: bool = True  # opened by the engine (only those are merged automatically)
    mitigated_at: datetime | None = None
    title: str = ""
    changes: list[Change] = field(default_factory=list)  # the changes this batch applied to it, in order


def status_of(state: ComponentState) -> ComponentStatus:
    """Return the Statuspage status for an engine state (unknown counts as operational: nothing says broken)."""
    if state is S.DOWN:
        return ComponentStatus.MAJOR_OUTAGE
    if state is S.DEGRADED:
        return ComponentStatus.DEGRADED_PERFORMANCE
    if state is S.MAINTENANCE:
        return ComponentStatus.UNDER_MAINTENANCE
    return ComponentStatus.OPERATIONAL


def impact_of(tiers: Mapping[str, Tier], components: Mapping[str, ComponentStatus]) -> Impact:
    """Return the impact of an incident with these affected components (rule in the module docstring);
    a component missing from ``tiers`` counts as standard."""
    worst = Impact.NONE
    rank = list(Impact)
    for cid, status in components.items():
        if status not in _IMPAIRED:
            continue
        tier = tiers.get(cid, Tier.STANDARD)
        outage = status is ComponentStatus.MAJOR_OUTAGE
        if tier is Tier.CRITICAL:
            found = Impact.CRITICAL if outage else Impact.MAJOR
        elif tier is Tier.STANDARD:
            found = Impact.MAJOR if outage else Impact.MINOR
        else:
            found = Impact.MINOR
        if rank.index(found) > rank.index(worst):
            worst = found
    return worst


class Radii:
    """Blast radius per root, computed once per batch (a site's radius can be thousands of components); share one
    between :func:`group_changes` and :func:`automatic_merges` of the same batch."""

    def __init__(self, model: Model) -> None:
        self._model = model
        self._cache: dict[str, frozenset[str]] = {}

    def __call__(self, root: str) -> frozenset[str]:
        hit = self._cache.get(root)
        if hit is None:
            try:
                impact = blast_radius(self._model, failed=[root])
                hit = frozenset({root, *(e.id for e in impact.down), *(e.id for e in impact.degraded)})
            except KeyError:  # a component that left the config: it is its own radius
                hit = frozenset({root})
            self._cache[root] = hit
        return hit


def group_changes(
    model: Model,
    incidents: Sequence[IncidentView],
    changes: Iterable[Change],
    states: Mapping[str, ComponentState],
    radii: Radii | None = None,
) -> list[IncidentView]:
    """Apply ``changes`` (oldest first) to copies of the open ``incidents``; return the incidents touched.

    ``states`` is every component's current state (after the changes). New incidents come back with id None,
    in the order they were opened; the inputs are not modified.
    """
    radii = radii or Radii(model)
    views = [replace(v, components=dict(v.components), changes=[]) for v in incidents]
    touched: dict[int, IncidentView] = {}
    for change in changes:
        for target in _apply(model, radii, views, change, states):
            touched[id(target)] = target
    for view in touched.values():
        _settle(model, view, states)
    return list(touched.values())


def _apply(
    model: Model, radii: Radii, views: list[IncidentView], change: Change, states: Mapping[str, ComponentState]
) -> list[IncidentView]:
    cid, failing = change.component_id, change.to_state in FAILING
    if not failing:
        # A recovery (or maintenance) only matters to the incidents that list the component.
        holders = [v for v in views if cid in v.components]
        for holder in holders:
            holder.components[cid] = status_of(change.to_state)
            holder.changes.append(change)
        return holders
    view = _belongs_to(radii, views, change)
    if view is None:
        view = IncidentView(
            id=None,
            probable_cause=change.root,
            status=IncidentStatus.INVESTIGATING,
            components={},
            started_at=change.at,
            title=_unplanned_title(change, states),
        )
        views.append(view)
        _widen(model, radii, view, change.root, states)
    elif view.probable_cause != change.root and view.probable_cause in radii(change.root):
        view.probable_cause = change.root  # deeper than what the incident knew: the radius grows with it
        _widen(model, radii, view, change.root, states)
    view.components[cid] = status_of(change.to_state)
    view.changes.append(change)
    if view.status is IncidentStatus.MONITORING and not view.taken_over:
        view.status = IncidentStatus.INVESTIGATING  # it failed again while we watched
    view.mitigated_at = None
    return [view]


def _belongs_to(radii: Radii, views: list[IncidentView], change: Change) -> IncidentView | None:
    root, cid = change.root, change.component_id
    for view in sorted(views, key=lambda v: (v.id is None, v.id or 0)):  # oldest first; new ones last
        cause = view.probable_cause
        if cause == root or root in view.components or cid in view.components:
            return view
        if cause is not None and (root in radii(cause) or cid in radii(cause) or cause in radii(root)):
            return view
    return None


def _widen(model: Model, radii: Radii, view: IncidentView, root: str, states: Mapping[str, ComponentState]) -> None:
    # Affected = the root and the part of its blast radius that the engine sees failing: a VM whose own
    # monitor still answers is up, whatever the model infers (the engine decided the same way).
    for member in sorted(radii(root)):
        if member in model.components and member not in view.components:
            state = states.get(member, S.UNKNOWN)
            if state in FAILING or state is S.MAINTENANCE:
                view.components[member] = status_of(state)


def _settle(model: Model, view: IncidentView, states: Mapping[str, ComponentState]) -> None:
    view.impact = impact_of(
        {c: model.components[c].tier for c in view.components if c in model.components}, view.components
    )
    if view.id is None and not view.title:  # a maintenance title (see _unplanned_title) is kept
        view.title = _title(model, view)
    recovered = all(status not in _IMPAIRED for status in view.components.values())
    if recovered and view.mitigated_at is None and view.changes:
        view.mitigated_at = view.changes[-1].at
        if not view.taken_over and view.status is not IncidentStatus.RESOLVED:
            view.status = IncidentStatus.MONITORING


def _title(model: Model, view: IncidentView) -> str:
    cause = view.probable_cause or "?"
    comp = model.components.get(cause)
    name = comp.name if comp is not None and comp.name and comp.name != cause else None
    what = f"{name} ({cause})" if name else cause
    others = len([c for c in view.components if c != cause])
    state = "degraded" if view.components.get(cause) is ComponentStatus.DEGRADED_PERFORMANCE else "down"
    return f"{what} {state}" + (f", {others} more affected" if others else "")


def _unplanned_title(change: Change, states: Mapping[str, ComponentState]) -> str:
    # Scheduled maintenance (issue 4): a window's own failures are planned (the engine reports its components
    # in maintenance, which opens nothing). Two failures are not: a component that leaves maintenance still
    # down (the window ended and the work overran), and a component outside the window taken down by one inside.
    cid = change.component_id
    if change.from_state is S.MAINTENANCE and change.to_state is S.DOWN:
        because = f" (caused by {change.cause})" if change.cause else ""
        return f"maintenance overran: {cid} still down{because}"
    if change.cause is not None and change.cause != cid and states.get(change.cause) is S.MAINTENANCE:
        return f"maintenance of {change.cause} took down {cid}: beyond what was planned"
    return ""


def automatic_merges(
    model: Model, incidents: Sequence[IncidentView], targets: Iterable[int], radii: Radii | None = None
) -> list[tuple[int, int]]:
    """Return ``(source, target)`` pairs: the open incidents explained by each target (rule 5 above).

    ``targets`` are the ids of the incidents whose probable cause just changed or that were just opened (oldest
    first); ``incidents`` every open incident. A source is an incident the engine opened (``auto``) that no
    person took over, whose probable cause is the target's, is among its affected components or lies in the
    blast radius of the target's probable cause. Each source is merged once, and an incident merged away is
    no longer a target. One radius per target: cheap however many incidents are open.
    """
    radii = radii or Radii(model)
    ordered = sorted((v for v in incidents if v.id is not None), key=lambda v: v.id or 0)
    by_id = {v.id: v for v in ordered}
    gone: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for target_id in sorted(set(targets)):
        target = by_id.get(target_id)
        if target is None or target_id in gone or target.probable_cause is None:
            continue
        cause, reach = target.probable_cause, radii(target.probable_cause)
        for view in ordered:
            source_id = view.id
            if source_id is None or source_id == target_id or source_id in gone:
                continue
            if not view.auto or view.taken_over or view.status is IncidentStatus.RESOLVED:
                continue
            theirs = view.probable_cause
            if theirs is not None and (theirs == cause or theirs in target.components or theirs in reach):
                pairs.append((source_id, target_id))
                gone.add(source_id)
    return pairs


def quiet_resolutions(incidents: Iterable[IncidentView], *, now: datetime, quiet_period: timedelta) -> list[int]:
    """Return the ids of the incidents in ``monitoring`` for at least ``quiet_period`` without a new failure,
    not taken over by a person: those resolve now."""
    return [
        view.id
        for view in incidents
        if view.id is not None
        and view.status is IncidentStatus.MONITORING
        and not view.taken_over
        and view.mitigated_at is not None
        and now - view.mitigated_at >= quiet_period
    ]
