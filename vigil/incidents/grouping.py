"""Root-cause grouping: which incident each component state change joins, opens or recovers. Pure, no I/O.

The engine already follows a failure to the deepest failed component upstream (a VM down because its
hypervisor is down carries ``cause="vserver8"``), so the *root* of a change is its cause, or the component
itself when nothing upstream explains it. The rules, applied to the changes in outbox order:

1. A failure (down or degraded) joins the open incident it belongs to: the one whose probable cause is its
   root, whose affected components or blast radius (of its probable cause) hold the root or the component, or
   whose probable cause lies in the blast radius of the root (the new root is deeper: it becomes the
   incident's probable cause). Several candidates: the oldest wins (the others are merged, rule 5).
2. A failure that belongs to no open incident opens one: probable cause = its root, affected = the root and
   its whole blast radius at once (:func:`_widen`): what the model says the root takes down is in
   ``major_outage``, what it degrades (an optional dependency lost, a degraded host) in
   ``degraded_performance``; a component that keeps enough of an any-of/k-of-n group is up (only exposed) and
   not listed. What the engine sees beats the model: a member failing or in maintenance gets its engine state,
   and one whose own monitors answered since the root failed (``observed``) is not listed. The same happens
   when a deeper root becomes an incident's probable cause (rule 1). When the probable cause recovers, the
   members the engine now sees up or unknown become operational (a component listed by the model whose
   monitor never failed sends no change of its own).
3. A change of a component already affected updates its status there (a recovery makes it ``operational``);
   one that does not change its status (a VM of the radius whose own check now fails too) is only recorded
   in ``changes`` for the timeline, without further work.
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
    # What this batch did to ``components``: the ids it added or whose status it changed (what the worker writes),
    # and those the model listed (the blast radius of a new probable cause) rather than their own change.
    dirty: set[str] = field(default_factory=set)
    inferred: list[str] = field(default_factory=list)
    rescan: bool = False  # an impaired status improved: impact and recovery need every component again


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


# A root's radius: its members (the root included), their effects, and the path of each effect (impact.causes).
_Radius = tuple[frozenset[str], dict[str, ComponentStatus], dict[str, str | None]]


class Radii:
    """Blast radius per root (a site's radius can be thousands of components), computed once for a model: share
    one between :func:`group_changes` and :func:`automatic_merges`, and across batches while the model stays
    (the incident worker keeps one per model; ``limit`` roots at most, then it starts afresh)."""

    def __init__(self, model: Model, limit: int = 4096) -> None:
        self.model = model
        self._limit = limit
        self._cache: dict[str, _Radius] = {}

    def _get(self, root: str) -> _Radius:
        hit = self._cache.get(root)
        if hit is None:
            effects: dict[str, ComponentStatus] = {}
            causes: dict[str, str | None] = {}
            try:
                impact = blast_radius(self.model, failed=[root])
            except KeyError:  # a component that left the config: it is its own radius
                pass
            else:
                # Down and degraded only: a component that keeps enough members of an any/k-of-n group is up
                # (``impact.exposed``), it has a working alternative and is not affected.
                effects = {e.id: ComponentStatus.MAJOR_OUTAGE for e in impact.down if e.id != root}
                effects.update((e.id, ComponentStatus.DEGRADED_PERFORMANCE) for e in impact.degraded if e.id != root)
                effects = dict(sorted(effects.items()))
                causes = impact.causes
            if len(self._cache) >= self._limit:
                self._cache.clear()
            hit = (frozenset({root, *effects}), effects, causes)
            self._cache[root] = hit
        return hit

    def __call__(self, root: str) -> frozenset[str]:
        """The root and every component its failure takes down or degrades."""
        return self._get(root)[0]

    def effects(self, root: str) -> dict[str, ComponentStatus]:
        """What the root's failure does to each member of its radius (the root aside), as a Statuspage status:
        ``major_outage`` (down) or ``degraded_performance``; sorted by id. Not to be modified."""
        return self._get(root)[1]

    def causes(self, root: str) -> Mapping[str, str | None]:
        """Each node the root's failure reaches, to the node its effect comes through (toward the root)."""
        return self._get(root)[2]


def group_changes(
    model: Model,
    incidents: Sequence[IncidentView],
    changes: Iterable[Change],
    states: Mapping[str, ComponentState],
    radii: Radii | None = None,
    observed: Mapping[str, datetime] | None = None,
) -> list[IncidentView]:
    """Apply ``changes`` (oldest first) to copies of the open ``incidents``; return the incidents touched.

    ``states`` is every component's current state (after the changes). ``observed``: when each component's own
    monitors last answered (None or a missing id: unknown, and a component the engine sees up is then taken at
    its word, as the model cannot tell how old that word is). New incidents come back with id None, in the
    order they were opened; the inputs are not modified.

    The cost of a change is one lookup per open incident (and one blast radius per new root): a change of a
    component already listed with that status only adds to ``changes``.
    """
    radii = radii or Radii(model)
    # Oldest first, new ones last (appended in order): the order rule 1 prefers.
    ordered = sorted(incidents, key=lambda v: (v.id is None, v.id or 0))
    views = [replace(v, components=dict(v.components), changes=[], dirty=set(), inferred=[]) for v in ordered]
    touched: dict[int, IncidentView] = {}
    for change in changes:
        for target in _apply(model, radii, views, change, states, observed):
            touched[id(target)] = target
    for view in touched.values():
        _settle(model, view, states)
    return list(touched.values())


def _set(view: IncidentView, cid: str, status: ComponentStatus) -> None:
    before = view.components.get(cid)
    if before is status:
        return
    view.components[cid] = status
    view.dirty.add(cid)
    if before in _IMPAIRED:
        view.rescan = True


def _apply(
    model: Model,
    radii: Radii,
    views: list[IncidentView],
    change: Change,
    states: Mapping[str, ComponentState],
    observed: Mapping[str, datetime] | None,
) -> list[IncidentView]:
    cid, failing = change.component_id, change.to_state in FAILING
    if not failing:
        # A recovery (or maintenance) only matters to the incidents that list the component.
        holders = [v for v in views if cid in v.components]
        for holder in holders:
            _set(holder, cid, status_of(change.to_state))
            holder.changes.append(change)
            if cid == holder.probable_cause and change.to_state in (S.UP, S.UNKNOWN):
                _reconcile(holder, states)
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
        _widen(model, radii, view, change, states, observed)
    elif view.probable_cause != change.root and view.probable_cause in radii(change.root):
        view.probable_cause = change.root  # deeper than what the incident knew: the radius grows with it
        _widen(model, radii, view, change, states, observed)
    _set(view, cid, status_of(change.to_state))
    view.changes.append(change)
    if view.status is IncidentStatus.MONITORING and not view.taken_over:
        view.status = IncidentStatus.INVESTIGATING  # it failed again while we watched
    view.mitigated_at = None
    return [view]


def _reconcile(view: IncidentView, states: Mapping[str, ComponentState]) -> None:
    # The probable cause is back: a member listed from the model whose own monitor never failed (it answered
    # all along, or the model was wrong) sends no change that would make it operational; the engine's word now
    # does. Members whose state is not known here keep their status. Once per recovery of the cause.
    for member, status in list(view.components.items()):
        if status in _IMPAIRED and states.get(member) in (S.UP, S.UNKNOWN):
            _set(view, member, ComponentStatus.OPERATIONAL)


def _belongs_to(radii: Radii, views: list[IncidentView], change: Change) -> IncidentView | None:
    root, cid = change.root, change.component_id
    for view in views:  # oldest first; new ones last
        cause = view.probable_cause
        if cause == root or root in view.components or cid in view.components:
            return view
        if cause is not None and (root in radii(cause) or cid in radii(cause) or cause in radii(root)):
            return view
    return None


def _widen(
    model: Model,
    radii: Radii,
    view: IncidentView,
    change: Change,
    states: Mapping[str, ComponentState],
    observed: Mapping[str, datetime] | None,
) -> None:
    # Affected = the root and its whole blast radius, now: the model knows what the root takes with it before
    # each dependant's own check has failed (2,000 VMs checked over a whole interval). The engine's word beats
    # the model's where it has one: a member failing or in maintenance gets its state; one the engine sees up
    # is left out unless its monitors last answered before the root failed (then it is only not checked yet).
    root, failed_at = change.root, change.at
    causes = radii.causes(root)
    answering: dict[str, bool] = {}  # node → the path from the root to it crosses a component the engine sees up

    def seen_up(node: str) -> bool:
        if states.get(node) is not S.UP:
            return False
        seen = observed.get(node) if observed is not None else None
        return seen is None or seen >= failed_at  # answered since the root failed, or we cannot tell

    def cut_off(node: str) -> bool:
        path: list[str] = []
        at: str | None = node
        while at is not None and at != root and at not in answering and at not in path:
            path.append(at)
            at = causes.get(at)
        verdict = answering.get(at, False) if at is not None else False
        for step in reversed(path):
            verdict = verdict or seen_up(step)
            answering[step] = verdict
        return verdict

    for member, effect in radii.effects(root).items():
        if member in view.components:
            continue
        state = states.get(member, S.UNKNOWN)
        if state in FAILING or state is S.MAINTENANCE:
            status = status_of(state)
        elif cut_off(member):
            # It answered (or what it runs on or needs did) since the root failed: up, whatever the model infers.
            continue
        else:  # not checked since the root failed, or nobody watches it: the model is all there is
            status = effect
        _set(view, member, status)
        view.inferred.append(member)
    if root in model.components and root not in view.components:
        state = states.get(root, S.UNKNOWN)
        if state in FAILING or state is S.MAINTENANCE:
            _set(view, root, status_of(state))


def _settle(model: Model, view: IncidentView, states: Mapping[str, ComponentState]) -> None:
    if view.id is None or view.rescan:
        view.impact = impact_of(
            {c: model.components[c].tier for c in view.components if c in model.components}, view.components
        )
    elif view.dirty:
        # Only worse statuses or new components (an improvement sets ``rescan``): the impact can only rise, and
        # the components this batch changed say by how much. A storm's thousands of members cost nothing here.
        dirty = {c: view.components[c] for c in view.dirty}
        extra = impact_of({c: model.components[c].tier for c in dirty if c in model.components}, dirty)
        rank = list(Impact)
        if rank.index(extra) > rank.index(view.impact):
            view.impact = extra
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
