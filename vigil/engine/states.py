"""From check results to states: flap damping per monitor, then component states through the model.

Pure functions and small classes, no I/O: the runtime feeds them results and persists what they decide.

A monitor goes down after ``failures_before_down`` failed results in a row and comes back after
``successes_before_up`` good ones; up ↔ degraded needs no damping (both mean "answering").

A component's own state is the worst of its monitors' (unknown ones aside). Then the model speaks, through
the analysis engine's blast radius over the components seen down:

- a component seen down whose own dependencies explain it (its hypervisor is down too) is
  ``down (caused by vserver8)``: the cause is followed to the deepest failure, so six VMs on one dead
  hypervisor all name the hypervisor, not each other;
- a component nobody watches directly takes the state the model gives it (down or degraded, with the cause),
  or stays unknown;
- a direct observation beats an inference: a VM whose own monitor answers stays up even if the model says its
  host is down (one of the two is wrong, and the monitor is the one that looked);
- a component declared ``state: maintenance`` in the config is in maintenance whatever its monitors say.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from vigil.analysis.impact import blast_radius
from vigil.model.types import Component, GroupMode, Model, State
from vigil.monitors.models import ComponentState
from vigil.monitors.result import CheckResult, Outcome

__all__ = ["ComponentVerdict", "MonitorTracker", "component_states", "own_state", "upstream_cause"]

_SEVERITY = {
    ComponentState.UNKNOWN: 0,
    ComponentState.UP: 1,
    ComponentState.DEGRADED: 2,
    ComponentState.DOWN: 3,
}


class MonitorTracker:
    """The damped state of one monitor, and the reason and latency of its last result."""

    __slots__ = (
        "failures",
        "failures_before_down",
        "last_latency",
        "last_reason",
        "state",
        "successes",
        "successes_before_up",
    )

    def __init__(
        self,
        *,
        failures_before_down: int,
        successes_before_up: int,
        state: ComponentState = ComponentState.UNKNOWN,
    ) -> None:
        self.failures_before_down = failures_before_down
        self.successes_before_up = successes_before_up
        self.state = state  # restored from the database on start, so a restart is not a storm of changes
        self.failures = 0
        self.successes = 0
        # Of the last result, only what states and metrics read: a whole result (its details dict) per monitor
        # would be most of the engine's memory per monitor.
        self.last_reason: str | None = None  # None until the first result
        self.last_latency = 0.0

    def add(self, result: CheckResult) -> ComponentState | None:
        """Take one result; return the new state if it changed, else None."""
        self.last_reason = result.reason
        self.last_latency = result.latency
        if result.outcome is Outcome.DOWN:
            self.failures += 1
            self.successes = 0
            new = ComponentState.DOWN if self.failures >= self.failures_before_down else self.state
        else:
            self.successes += 1
            self.failures = 0
            answering = ComponentState(result.outcome.value)
            recovering = self.state is ComponentState.DOWN and self.successes < self.successes_before_up
            new = self.state if recovering else answering
        if new is self.state:
            return None
        self.state = new
        return new


@dataclass(frozen=True, slots=True)
class ComponentVerdict:
    """A component's state, the upstream failure it comes from (None when its own monitors decided) and why."""

    state: ComponentState
    cause: str | None = None
    reason: str = ""


def worse(a: ComponentVerdict, b: ComponentVerdict) -> ComponentVerdict:
    """Return the worse of two observations of one component (its monitors', its firing alerts'); ``a`` on a tie."""
    return b if _SEVERITY[b.state] > _SEVERITY[a.state] else a


def own_state(trackers: Iterable[MonitorTracker]) -> ComponentVerdict:
    """Return the worst state among the monitors that know something, with the reason of the worst."""
    worst: MonitorTracker | None = None
    for tracker in trackers:
        if worst is None or _SEVERITY[tracker.state] > _SEVERITY[worst.state]:
            worst = tracker
    if worst is None or worst.state is ComponentState.UNKNOWN:
        return ComponentVerdict(ComponentState.UNKNOWN)
    reason = worst.last_reason or "" if worst.state is not ComponentState.UP else ""
    return ComponentVerdict(worst.state, None, reason)


def component_states(
    model: Model, own: Mapping[str, ComponentVerdict], maintenance: Collection[str] = ()
) -> dict[str, ComponentVerdict]:
    """Return the state of every component of ``model`` given what its own monitors say (``own``; missing
    means unknown). ``maintenance``: the components of the maintenance windows in progress (issue 4), in
    maintenance like those declared so in the config. Raises nothing for ids in ``own`` that the model lacks:
    they are ignored."""
    seen_down = {cid for cid, v in own.items() if v.state is ComponentState.DOWN and cid in model.components}
    impact = blast_radius(model, failed=seen_down)
    down = set(seen_down) | set(impact.failed)
    down.update(effect.id for effect in impact.down)
    down.update(node for node in impact.causes if node in model.domains)
    explained = {cid: cause for cid in seen_down if (cause := upstream_cause(model.components[cid], down))}
    effects = {effect.id: effect for effect in (*impact.down, *impact.degraded)}

    def root(node: str) -> str:
        path = {node}
        while (nxt := explained.get(node) or impact.causes.get(node)) is not None and nxt not in path:
            path.add(nxt)
            node = nxt
        return node

    verdicts: dict[str, ComponentVerdict] = {}
    for cid, comp in model.components.items():
        mine = own.get(cid, ComponentVerdict(ComponentState.UNKNOWN))
        if comp.state is State.MAINTENANCE:
            verdicts[cid] = ComponentVerdict(ComponentState.MAINTENANCE, None, "in maintenance (declared in config)")
        elif cid in maintenance:
            # A window in progress: its failures are planned. What its monitors see still feeds the blast radius
            # above (seen_down), so a dependant outside the window that goes down names it as the cause.
            verdicts[cid] = ComponentVerdict(ComponentState.MAINTENANCE, None, "in maintenance (scheduled window)")
        elif cid in explained:
            cause = root(cid)
            verdicts[cid] = ComponentVerdict(ComponentState.DOWN, cause, f"{mine.reason or 'down'} (caused by {cause})")
        elif mine.state is ComponentState.DOWN:
            verdicts[cid] = mine
        elif (effect := effects.get(cid)) is not None and (
            effect.status == "degraded" or mine.state is ComponentState.UNKNOWN
        ):
            # Model degradation (an optional dependency lost) adds to a monitor that answers; model "down"
            # only fills in for a component that nobody watches.
            state = ComponentState.DOWN if effect.status == "down" else ComponentState.DEGRADED
            if mine.state is ComponentState.DEGRADED and state is ComponentState.DEGRADED:
                verdicts[cid] = mine
            else:
                verdicts[cid] = ComponentVerdict(state, root(cid), effect.because)
        else:
            verdicts[cid] = mine
    return verdicts


def upstream_cause(comp: Component, down: set[str]) -> str | None:
    """Return the upstream node whose failure alone takes ``comp`` down, given the ``down`` set, or None.

    Only hard dependencies count: a failure domain, what it runs on, and requirements that are neither optional
    nor startup-only with fewer members up than they need. Hard dependencies form a DAG (cycles are refused at
    load), so a component's own failure never feeds back into this answer.
    """
    for domain in comp.domains:
        if domain in down:
            return domain
    if comp.runs_on is not None and comp.runs_on in down:
        return comp.runs_on
    for req in comp.requirements:
        if req.optional or req.startup_only:
            continue
        lost = [m for m in req.members if m in down]
        needed = len(req.members) if req.mode is GroupMode.ALL else req.k
        if lost and len(req.members) - len(lost) < needed:
            return lost[0]
    return None
