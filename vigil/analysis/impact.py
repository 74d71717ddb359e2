"""Blast radius: what goes down or degrades when some components or domains fail, and why.

Works on the model graph rather than the fault tree because people need the *reason* for each effect
("login1 down: runs on vserver8 (failed)") and the difference between down and degraded, which a Boolean
tree does not keep. Statuses only ever worsen (up → degraded → down) as failures spread, so a worklist over
the reverse edges reaches a fixed point even through the cycles that optional requirements may form; only
the part of the graph downstream of a failure is visited.

A failure of a site or of DNS reaches ten thousand components of a large model, so the propagation works on
plain levels and keeps, for each verdict, only what its reason needs (the members lost and their levels at
that moment); the sentences are written once, for the verdicts that are final.
"""

from __future__ import annotations

import weakref
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from vigil.gcpause import gc_paused
from vigil.model.types import Component, Domain, GroupMode, Model, Requirement, State

__all__ = ["Effect", "Impact", "blast_radius"]

_UP, _DEGRADED, _DOWN = 0, 1, 2
_ALL = GroupMode.ALL


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


# What a reason is made of, written out only for the final verdicts (see _reason):
#   (_WITHIN, parent) | (_IN_DOMAIN, domain) | (_RUNS_ON, host, host level)
#   (_NEEDS_ONE, requirement, level of its one member)
#   (_NEEDS, requirement, [(member, level), ...], level) for an ``all`` group
#   (_GROUP, requirement, [member, ...]) for an any/at-least group that lost too many members
_WITHIN, _IN_DOMAIN, _RUNS_ON, _NEEDS_ONE, _NEEDS, _GROUP = range(6)
_Recipe = tuple[Any, ...]
# A verdict: (level, cause, recipe); the failures given have no cause and their reason as recipe.
_Verdict = tuple[int, str | None, Any]
# An exposure: the group short of members, the members lost, how many are left.
_Exposure = tuple[Requirement, list[str], int]


def blast_radius(model: Model, *, failed: Iterable[str] = (), states: dict[str, State] | None = None) -> Impact:
    """Return everything that goes down, degrades or loses redundancy.

    ``failed`` ids are taken as down; ``states`` sets what-if states (down, maintenance, degraded) on top of
    those written in the model. Raises KeyError for an id that is neither a component nor a domain.
    """
    given: dict[str, State] = dict(_model_states(model))
    given.update(states or {})
    for node_id in failed:
        given[node_id] = State.DOWN
    for node_id in given:
        if node_id not in model.components and node_id not in model.domains:
            raise KeyError(node_id)
    # Tens of thousands of small objects and no cycles: the cyclic collector would only rescan the model.
    with gc_paused():
        return _blast_radius(model, given)


def _blast_radius(model: Model, given: dict[str, State]) -> Impact:
    verdicts: dict[str, _Verdict] = {}
    levels: dict[str, int] = {}
    for node_id, state in given.items():
        if state in (State.DOWN, State.MAINTENANCE):
            verdicts[node_id] = (_DOWN, None, "in maintenance" if state is State.MAINTENANCE else "failed")
            levels[node_id] = _DOWN
        elif state is State.DEGRADED and node_id in model.components:
            verdicts[node_id] = (_DEGRADED, None, "degraded")
            levels[node_id] = _DEGRADED
    # Declared degraded members cannot serve in a redundancy group; members degraded by their own losses can.
    unusable = {n for n, v in verdicts.items() if v[0] == _DEGRADED}
    exposures = _propagate(model, verdicts, levels, unusable)
    return _collect(model, given, verdicts, exposures)


# States written in the model, per model: a scan of every node, which alone took 10 ms at 100k components.
# Models are not changed once built (Model.dependants relies on it too); the entry goes with its model.
_states_cache: dict[int, tuple[weakref.ref[Model], tuple[tuple[str, State], ...]]] = {}


def _model_states(model: Model) -> tuple[tuple[str, State], ...]:
    key = id(model)
    hit = _states_cache.get(key)
    if hit is not None and hit[0]() is model:
        return hit[1]
    nodes: list[Component | Domain] = [*model.domains.values(), *model.components.values()]
    found = tuple((node.id, node.state) for node in nodes if node.state is not State.UP)

    def forget(ref: weakref.ref[Model], key: int = key) -> None:
        if (entry := _states_cache.get(key)) is not None and entry[0] is ref:
            del _states_cache[key]

    _states_cache[key] = (weakref.ref(model, forget), found)
    return found


def _propagate(
    model: Model, verdicts: dict[str, _Verdict], levels: dict[str, int], unusable: set[str]
) -> dict[str, _Exposure]:
    dependants = model.dependants
    components, domains = model.components, model.domains
    fixed = set(verdicts)
    level_of = levels.get
    # Nodes not to queue: those waiting already (a node is evaluated once, however many of its inputs changed
    # meanwhile) and those down (they stay down and expose nothing, whatever else fails).
    skip = {n for n in fixed if levels[n] == _DOWN}
    queue: deque[str] = deque()
    for node_id in fixed:
        for dependant in dependants.get(node_id, ()):
            if dependant not in skip:
                skip.add(dependant)
                queue.append(dependant)
    exposures: dict[str, _Exposure] = {}
    while queue:
        node_id = queue.popleft()
        skip.discard(node_id)
        if node_id in fixed:
            continue
        comp = components.get(node_id)
        if comp is not None:
            verdict, exposed = _evaluate_component(comp, levels, unusable)
            if exposed is not None:
                exposures[node_id] = exposed
        else:
            verdict = _evaluate_domain(domains[node_id], levels)
        if verdict is not None and verdict[0] > level_of(node_id, _UP):
            verdicts[node_id] = verdict
            levels[node_id] = verdict[0]
            if verdict[0] == _DOWN:
                skip.add(node_id)
            for dependant in dependants.get(node_id, ()):
                if dependant not in skip:
                    skip.add(dependant)
                    queue.append(dependant)
    return exposures


def _evaluate_domain(domain: Domain, levels: dict[str, int]) -> _Verdict | None:
    for parent in domain.domains:
        if levels.get(parent) == _DOWN:
            return _DOWN, parent, (_WITHIN, parent)
    return None


def _evaluate_component(
    comp: Component, levels: dict[str, int], unusable: set[str]
) -> tuple[_Verdict | None, _Exposure | None]:
    """Return the component's verdict (None: up) and, if it stays up with a group short of members, that group."""
    level_of = levels.get
    for dom in comp.domains:
        if level_of(dom) == _DOWN:
            return (_DOWN, dom, (_IN_DOMAIN, dom)), None
    worst: _Verdict | None = None
    host = comp.runs_on
    if host is not None:
        host_level = level_of(host, _UP)
        if host_level == _DOWN:
            return (_DOWN, host, (_RUNS_ON, host, _DOWN)), None
        if host_level == _DEGRADED:
            worst = (_DEGRADED, host, (_RUNS_ON, host, _DEGRADED))
    exposed: _Exposure | None = None
    for req in comp.requirements:
        members = req.members
        if req.mode is _ALL and len(members) == 1:  # one component: the most frequent case by far
            cause = members[0]
            level = level_of(cause, _UP)
            if not level:
                continue
            recipe: _Recipe = (_NEEDS_ONE, req, level)
        elif req.mode is _ALL:  # a group needing every member
            pairs = [(m, x) for m in members if (x := level_of(m, _UP))]
            if not pairs:
                continue
            level = max(x for _, x in pairs)
            recipe = (_NEEDS, req, pairs, level)
            cause = pairs[0][0]
        else:
            lost = [m for m in members if (x := level_of(m, _UP)) == _DOWN or (x and m in unusable)]
            if not lost:
                continue
            left = len(members) - len(lost)
            if left >= req.k:
                if exposed is None:
                    exposed = (req, lost, left)
                continue
            level, recipe, cause = _DOWN, (_GROUP, req, lost), lost[0]
        if level == _DOWN and (req.optional or req.startup_only):
            level = _DEGRADED
        elif level == _DOWN:
            return (_DOWN, cause, recipe), None
        if worst is None or level > worst[0]:
            worst = (level, cause, recipe)
    return worst, exposed


_LEVEL_WORD = ("up", "degraded", "down")


def _reason(given: dict[str, str], recipe: _Recipe) -> str:
    """Write a verdict's reason; a node lost is described by its given reason, else by its level then."""
    kind, node = recipe[0], recipe[1]
    if kind == _NEEDS_ONE:
        member, level = node.members[0], recipe[2]
        word = given.get(member) or _LEVEL_WORD[level]
        if level == _DOWN and node.optional:
            return f"optional {member} lost ({member} {word})"
        if level == _DOWN and node.startup_only:
            return f"cannot restart while {member} is lost ({member} {word})"
        return f"needs {member} ({word})"
    if kind == _RUNS_ON:
        return f"runs on {node} ({given.get(node) or _LEVEL_WORD[recipe[2]]})"
    if kind == _IN_DOMAIN:
        return f"in failure domain {node} ({given.get(node) or 'down'})"
    if kind == _WITHIN:
        return f"within {node} ({given.get(node) or 'down'})"
    req: Requirement = node
    pairs: list[tuple[str, int]]
    if kind == _GROUP:
        pairs, lost_level = [(m, _DOWN) for m in recipe[2]], _DOWN
    else:
        pairs, lost_level = recipe[2], recipe[3]
    detail = ", ".join(f"{m} {given.get(m) or _LEVEL_WORD[x]}" for m, x in pairs)
    what = req.describe() if req.is_group else req.members[0]
    if lost_level == _DOWN and req.optional:
        return f"optional {what} lost ({detail})"
    if lost_level == _DOWN and req.startup_only:
        return f"cannot restart while {what} is lost ({detail})"
    if req.is_group:
        return f"needs {what}: {detail}"
    cause, cause_level = pairs[0]
    return f"needs {what} ({given.get(cause) or _LEVEL_WORD[cause_level]})"


def _collect(
    model: Model, given: dict[str, State], verdicts: dict[str, _Verdict], exposures: dict[str, _Exposure]
) -> Impact:
    impact = Impact(failed=sorted(n for n, s in given.items() if s in (State.DOWN, State.MAINTENANCE)))
    impact.causes = {n: v[1] for n, v in verdicts.items()}
    # The failures given are described by their own reason ("failed", "in maintenance", "degraded").
    given_words: dict[str, str] = {n: v[2] for n, v in verdicts.items() if v[1] is None}
    domains = model.domains
    down, degraded = impact.down, impact.degraded
    for node_id, (level, cause, recipe) in verdicts.items():
        if cause is None or node_id in domains:
            continue
        because = _reason(given_words, recipe)
        if level == _DOWN:
            down.append(Effect(node_id, "down", because, cause))
        else:
            degraded.append(Effect(node_id, "degraded", because, cause))
    for node_id, (req, lost, left) in exposures.items():
        if node_id not in verdicts:
            # Lost members of a group are down or declared degraded: their words did not change since.
            detail = ", ".join(f"{m} {given_words.get(m) or 'down'}" for m in lost)
            text = f"{req.describe()}: {left} of {len(req.members)} left ({detail})"
            impact.exposed.append(Effect(node_id, "exposed", f"redundancy reduced: {text}", None))
    by_id = attrgetter("id")
    for effects in (impact.down, impact.degraded, impact.exposed):
        effects.sort(key=by_id)
    return impact
