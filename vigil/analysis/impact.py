"""Blast radius: what goes down or degrades when some components or domains fail, and why.

Works on the model graph rather than the fault tree because people need the *reason* for each effect
("login1 down: runs on vserver8 (failed)") and the difference between down and degraded, which a Boolean
tree does not keep. Statuses only ever worsen (up → degraded → down) as failures spread, so a worklist over
the reverse edges reaches a fixed point even through the cycles that optional requirements may form; only
the part of the graph downstream of a failure is visited.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum

from vigil.model.types import Component, Domain, GroupMode, Model, Requirement, State

__all__ = ["Effect", "Impact", "blast_radius"]


class _Level(IntEnum):
    UP = 0
    DEGRADED = 1
    DOWN = 2


@dataclass(frozen=True, slots=True)
class Effect:
    """What happens to one component: ``status`` is "down", "degraded" or "exposed" (up, redundancy lost).

    ``cause`` is the upstream component or domain the effect comes through (None for the failures given).
    """

    id: str
    status: str
    because: str
    cause: str | None


@dataclass(slots=True)
class Impact:
    failed: list[str]
    down: list[Effect] = field(default_factory=list)
    degraded: list[Effect] = field(default_factory=list)
    exposed: list[Effect] = field(default_factory=list)
    # Every node reached, failure domains included, to its cause: what chain() follows.
    causes: dict[str, str | None] = field(default_factory=dict)

    def chain(self, node_id: str) -> list[str]:
        """Return ``[node_id, cause, cause of cause, ...]`` down to a failure that was given."""
        path = [node_id]
        while (nxt := self.causes.get(path[-1])) is not None and nxt not in path:
            path.append(nxt)
        return path


@dataclass(slots=True)
class _Verdict:
    level: _Level
    because: str
    cause: str | None


_UP = _Verdict(_Level.UP, "", None)
_STATUS = {_Level.UP: "up", _Level.DEGRADED: "degraded", _Level.DOWN: "down"}


def blast_radius(model: Model, *, failed: Iterable[str] = (), states: dict[str, State] | None = None) -> Impact:
    """Return everything that goes down, degrades or loses redundancy.

    ``failed`` ids are taken as down; ``states`` sets what-if states (down, maintenance, degraded) on top of
    those written in the model. Raises KeyError for an id that is neither a component nor a domain.
    """
    given: dict[str, State] = {n: s for n, s in _model_states(model)}
    given.update(states or {})
    for node_id in failed:
        given[node_id] = State.DOWN
    for node_id in given:
        if node_id not in model.components and node_id not in model.domains:
            raise KeyError(node_id)
    verdicts: dict[str, _Verdict] = {}
    for node_id, state in given.items():
        if state in (State.DOWN, State.MAINTENANCE):
            reason = "in maintenance" if state is State.MAINTENANCE else "failed"
            verdicts[node_id] = _Verdict(_Level.DOWN, reason, None)
        elif state is State.DEGRADED and node_id in model.components:
            verdicts[node_id] = _Verdict(_Level.DEGRADED, "degraded", None)
    exposures = _propagate(model, verdicts, fixed=set(verdicts))
    return _collect(model, given, verdicts, exposures)


def _model_states(model: Model) -> Iterable[tuple[str, State]]:
    nodes: list[Component | Domain] = [*model.domains.values(), *model.components.values()]
    for node in nodes:
        if node.state is not State.UP:
            yield node.id, node.state


def _propagate(model: Model, verdicts: dict[str, _Verdict], fixed: set[str]) -> dict[str, str]:
    dependants = model.dependants
    queue = deque(dict.fromkeys(d for n in fixed for d in dependants.get(n, ())))
    # A node waiting in the queue is evaluated once, however many of its inputs changed meanwhile.
    waiting = set(queue)
    exposures: dict[str, str] = {}
    while queue:
        node_id = queue.popleft()
        waiting.discard(node_id)
        if node_id in fixed:
            continue
        comp = model.components.get(node_id)
        if comp is not None:
            verdict, exposed = _evaluate_component(comp, verdicts)
            if exposed:
                exposures[node_id] = exposed
        else:
            verdict = _evaluate_domain(model.domains[node_id], verdicts)
        old = verdicts.get(node_id, _UP)
        if verdict.level > old.level:
            verdicts[node_id] = verdict
            for dependant in dependants.get(node_id, ()):
                if dependant not in waiting:
                    waiting.add(dependant)
                    queue.append(dependant)
    return exposures


def _word(verdicts: dict[str, _Verdict], node_id: str) -> str:
    verdict = verdicts[node_id]
    if verdict.cause is None:
        return verdict.because  # "failed", "in maintenance", "degraded"
    return "down" if verdict.level is _Level.DOWN else "degraded"


def _evaluate_domain(domain: Domain, verdicts: dict[str, _Verdict]) -> _Verdict:
    for parent in domain.domains:
        if verdicts.get(parent, _UP).level is _Level.DOWN:
            return _Verdict(_Level.DOWN, f"within {parent} ({_word(verdicts, parent)})", parent)
    return _UP


def _evaluate_component(comp: Component, verdicts: dict[str, _Verdict]) -> tuple[_Verdict, str]:
    """Return the component's verdict and, if it stays up with a group short of members, a description."""
    for dom in comp.domains:
        if verdicts.get(dom, _UP).level is _Level.DOWN:
            return _Verdict(_Level.DOWN, f"in failure domain {dom} ({_word(verdicts, dom)})", dom), ""
    worst = _UP
    if comp.runs_on is not None:
        host = verdicts.get(comp.runs_on, _UP)
        if host.level is _Level.DOWN:
            return _Verdict(_Level.DOWN, f"runs on {comp.runs_on} ({_word(verdicts, comp.runs_on)})", comp.runs_on), ""
        if host.level is _Level.DEGRADED:
            worst = _Verdict(_Level.DEGRADED, f"runs on {comp.runs_on} ({_word(verdicts, comp.runs_on)})", comp.runs_on)
    exposed = ""
    for req in comp.requirements:
        verdict, short = _evaluate_requirement(req, verdicts)
        if verdict.level is _Level.DOWN:
            return verdict, ""
        if verdict.level > worst.level:
            worst = verdict
        exposed = exposed or short
    return worst, exposed


def _evaluate_requirement(req: Requirement, verdicts: dict[str, _Verdict]) -> tuple[_Verdict, str]:
    if req.is_group and req.mode is not GroupMode.ALL:
        return _evaluate_group(req, verdicts)
    lost = [(m, verdicts[m].level) for m in req.members if verdicts.get(m, _UP).level is not _Level.UP]
    if not lost:
        return _UP, ""
    level = max(lv for _, lv in lost)
    return _requirement_verdict(req, verdicts, [m for m, _ in lost], level), ""


def _evaluate_group(req: Requirement, verdicts: dict[str, _Verdict]) -> tuple[_Verdict, str]:
    """An any/at-least group: members that are down, or *declared* degraded (a replica re-syncing), cannot
    serve. A member merely degraded by its own optional losses still serves, so it still counts."""
    lost = [
        m
        for m in req.members
        if (v := verdicts.get(m, _UP)).level is _Level.DOWN or (v.level is _Level.DEGRADED and v.cause is None)
    ]
    if not lost:
        return _UP, ""
    up = len(req.members) - len(lost)
    if up >= req.k:
        detail = ", ".join(f"{m} {_word(verdicts, m)}" for m in lost)
        return _UP, f"{req.describe()}: {up} of {len(req.members)} left ({detail})"
    return _requirement_verdict(req, verdicts, lost, _Level.DOWN), ""


def _requirement_verdict(req: Requirement, verdicts: dict[str, _Verdict], lost: list[str], level: _Level) -> _Verdict:
    detail = ", ".join(f"{m} {_word(verdicts, m)}" for m in lost)
    cause = lost[0]
    what = req.describe() if req.is_group else req.members[0]
    if level is _Level.DOWN and req.optional:
        return _Verdict(_Level.DEGRADED, f"optional {what} lost ({detail})", cause)
    if level is _Level.DOWN and req.startup_only:
        return _Verdict(_Level.DEGRADED, f"cannot restart while {what} is lost ({detail})", cause)
    if req.is_group:
        return _Verdict(level, f"needs {what}: {detail}", cause)
    return _Verdict(level, f"needs {what} ({_word(verdicts, cause)})", cause)


def _collect(model: Model, given: dict[str, State], verdicts: dict[str, _Verdict], exposures: dict[str, str]) -> Impact:
    impact = Impact(failed=sorted(n for n, s in given.items() if s in (State.DOWN, State.MAINTENANCE)))
    impact.causes = {n: v.cause for n, v in verdicts.items()}
    for node_id, verdict in verdicts.items():
        if verdict.cause is None or node_id in model.domains:
            continue
        effect = Effect(node_id, _STATUS[verdict.level], verdict.because, verdict.cause)
        (impact.down if verdict.level is _Level.DOWN else impact.degraded).append(effect)
    for node_id, text in exposures.items():
        if verdicts.get(node_id, _UP).level is _Level.UP:
            impact.exposed.append(Effect(node_id, "exposed", f"redundancy reduced: {text}", None))
    for effects in (impact.down, impact.degraded, impact.exposed):
        effects.sort(key=lambda e: e.id)
    return impact
