"""Per-service resilience reports: single points of failure, cut sets, availability, importance, what-if.

This is the layer the CLI (and later the web UI) calls: it turns the model into a fault tree once, runs the
engine for every service over that one tree (so shared infrastructure is analysed once), and names what the
numbers mean: which single failures take a service down, which of them are failure domains or shared hosts
that silently defeat a redundancy group, and which exist only because of a startup requirement.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from vigil.analysis import parallel
from vigil.analysis.build import ModelTree, build_fault_tree, gate_id
from vigil.analysis.engine import Analyzer, CutSets, Probability
from vigil.analysis.faulttree import GateKind
from vigil.analysis.impact import blast_radius
from vigil.analysis.spof import SingleFailures
from vigil.gcpause import gc_paused
from vigil.model.types import Model, State, Tier

__all__ = ["HOURS_PER_YEAR", "ModelReport", "ServiceReport", "Spof", "analyze_model", "select_services", "what_if"]

HOURS_PER_YEAR = 8766.0  # 365.25 days: what "downtime per year" means for an SLO


@dataclass(frozen=True, slots=True)
class Spof:
    """A single component or domain whose failure alone takes the service down."""

    id: str
    kind: str  # the component kind, or "domain:<kind>"
    startup: bool = False  # a SPOF only because a startup requirement needs it
    defeats: tuple[str, ...] = ()  # redundancy groups it takes down at once ("any of [q1, q2]")


@dataclass(slots=True)
class ServiceReport:
    id: str
    name: str
    kind: str
    tier: str
    slo: float | None
    availability: float
    exact: bool
    availability_lower: float
    availability_upper: float
    method: str
    spofs: list[Spof]
    cuts: CutSets  # the minimal cut sets, kept as the engine's diagram: listing them all costs, so on demand
    cut_set_count: int
    order_distribution: dict[int, int]
    importance: list[tuple[str, float, float]] = field(default_factory=list)  # (id, birnbaum, fussell_vesely)
    status: str = "up"  # under a what-if: up, degraded or down
    new_spofs: list[str] = field(default_factory=list)  # what-if: SPOFs that the baseline does not have

    def ranked_cut_sets(self, limit: int | None = None) -> list[tuple[list[str], float]]:
        """Return ``(sorted ids, probability of that combination)``, most likely first, at most ``limit``."""
        return [(sorted(ids), p) for ids, p in self.cuts.ranked(limit)]

    @property
    def downtime_hours_per_year(self) -> float:
        return (1.0 - self.availability) * HOURS_PER_YEAR

    @property
    def slo_gap(self) -> float | None:
        """Availability minus the SLO target (negative: the design cannot meet its SLO)."""
        return None if self.slo is None else self.availability - self.slo


@dataclass(slots=True)
class ModelReport:
    name: str
    max_order: int | None
    services: list[ServiceReport]
    assumed: list[str]  # components and domains whose availability is the model default
    states: dict[str, str] = field(default_factory=dict)


def select_services(model: Model, ids: Iterable[str] | None = None) -> list[str]:
    """Return the components to report on: ``ids`` if given (KeyError if unknown), else every component that
    is a service, is critical, or has an SLO."""
    if ids is not None:
        chosen = list(ids)
        for node_id in chosen:
            if node_id not in model.components:
                raise KeyError(node_id)
        return chosen
    return [
        c.id for c in model.components.values() if c.kind == "service" or c.tier is Tier.CRITICAL or c.slo is not None
    ]


def analyze_model(
    model: Model,
    *,
    max_order: int | None = 3,
    services: Iterable[str] | None = None,
    importance: bool = True,
    budget_seconds: float = 10.0,
    progress: Callable[[int, int], None] | None = None,
) -> ModelReport:
    """Analyse every selected service of ``model``; ``progress(done, total)`` is called after each one.

    Raises KeyError for an unknown service id.
    """
    with gc_paused():
        return _analyze(model, max_order, services, importance, budget_seconds, progress)


def _analyze(
    model: Model,
    max_order: int | None,
    services: Iterable[str] | None,
    importance: bool,
    budget_seconds: float,
    progress: Callable[[int, int], None] | None,
) -> ModelReport:
    chosen = select_services(model, services)
    mtree = build_fault_tree(model)
    analyzer = Analyzer(mtree.tree)
    rest = _Rest(model, mtree, analyzer, [gate_id(sid) for sid in chosen], importance, budget_seconds)
    # Cut sets stay here (they are diagrams of this process's manager); the rest may go to a second process.
    background = parallel.start(rest, chosen) if parallel.wanted(len(chosen), len(mtree.tree.events)) else None
    reports = []
    if background is None:
        for done, sid in enumerate(chosen, 1):
            reports.append(_service_report(model, sid, analyzer.cut_sets(gate_id(sid), max_order=max_order), rest(sid)))
            if progress is not None:
                progress(done, len(chosen))
    else:
        try:
            cuts = []
            for done, sid in enumerate(chosen, 1):
                cuts.append(analyzer.cut_sets(gate_id(sid), max_order=max_order))
                if progress is not None and done < len(chosen):
                    progress(done, len(chosen))
            # On any failure of the child the same results are computed here (the memo tables were filled in
            # the same order, so they are the same to the last bit).
            results = background.results() or [rest(sid) for sid in chosen]
        finally:
            background.cancel()
        reports = [_service_report(model, sid, c, r) for sid, c, r in zip(chosen, cuts, results, strict=True)]
        if progress is not None and chosen:
            progress(len(chosen), len(chosen))
    assumed = sorted(
        [c.id for c in model.components.values() if c.availability_source == "default"]
        + [d.id for d in model.domains.values() if d.availability_source == "default"]
    )
    states = {c.id: str(c.state) for c in model.components.values() if c.state is not State.UP}
    states.update({d.id: str(d.state) for d in model.domains.values() if d.state is not State.UP})
    return ModelReport(model.name, max_order, reports, assumed, states)


def what_if(
    model: Model,
    *,
    states: dict[str, State],
    max_order: int | None = 3,
    services: Iterable[str] | None = None,
    budget_seconds: float = 10.0,
) -> ModelReport:
    """Analyse the services with ``states`` applied, marking SPOFs that the baseline model does not have.

    A service listed with ``new_spofs`` has lost its last redundancy: one more failure takes it down.
    Raises KeyError for an unknown id.
    """
    chosen = select_services(model, services)
    base = analyze_model(model, max_order=1, services=chosen, importance=False, budget_seconds=budget_seconds)
    changed = model.with_states(states)
    report = analyze_model(
        changed, max_order=max_order, services=chosen, importance=False, budget_seconds=budget_seconds
    )
    impact = blast_radius(changed)
    status = {e.id: e.status for e in (*impact.down, *impact.degraded)}
    for node_id, state in states.items():
        if node_id in changed.components:
            status.setdefault(node_id, "down" if state in (State.DOWN, State.MAINTENANCE) else str(state))
    before = {s.id: {p.id for p in s.spofs} for s in base.services}
    for service in report.services:
        service.status = status.get(service.id, "up")
        if service.status != "down":
            service.new_spofs = sorted({p.id for p in service.spofs} - before[service.id])
    return report


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What a service's report needs besides its cut sets: small values that a child process can send back."""

    probability: Probability
    spofs: list[Spof]
    importance: list[tuple[str, float, float]]


class _Rest:
    """Computes a service's :class:`_Outcome` (in this process, or in a forked child for every service)."""

    def __init__(
        self,
        model: Model,
        mtree: ModelTree,
        analyzer: Analyzer,
        tops: list[str],
        importance: bool,
        budget_seconds: float,
    ) -> None:
        self._model = model
        self._mtree = mtree
        self._analyzer = analyzer
        self._tops = tops
        self._importance = importance
        self._budget = budget_seconds
        self._namer: _SpofNamer | None = None

    def __call__(self, sid: str) -> _Outcome:
        if self._namer is None:
            self._namer = _SpofNamer(self._model, self._mtree, self._tops)
        top = gate_id(sid)
        prob = self._analyzer.probability(top, budget_seconds=self._budget)
        spofs = self._namer.describe(top, sid)
        rows: list[tuple[str, float, float]] = []
        if self._importance and prob.exact:
            found = self._analyzer.importance(top)
            ordered = sorted(found.items(), key=lambda kv: (-kv[1].fussell_vesely, -kv[1].birnbaum, kv[0]))
            rows = [(k, v.birnbaum, v.fussell_vesely) for k, v in ordered[:10]]
        return _Outcome(prob, spofs, rows)


def _service_report(model: Model, sid: str, cuts: CutSets, outcome: _Outcome) -> ServiceReport:
    comp = model.components[sid]
    prob = outcome.probability
    return ServiceReport(
        id=sid,
        name=comp.name,
        kind=comp.kind,
        tier=str(comp.tier),
        slo=comp.slo,
        availability=1.0 - prob.value,
        exact=prob.exact,
        availability_lower=1.0 - prob.upper,
        availability_upper=1.0 - prob.lower,
        method=prob.method,
        spofs=outcome.spofs,
        cuts=cuts,
        cut_set_count=cuts.count,
        order_distribution=dict(sorted(cuts.order_distribution.items())),
        importance=outcome.importance,
    )


class _SpofNamer:
    """Names what each single point of failure does, with caches shared by every service of one report."""

    def __init__(self, model: Model, mtree: ModelTree, tops: list[str]) -> None:
        self.model = model
        self.mtree = mtree
        self.singles = SingleFailures(mtree.tree)
        # The same without startup requirements (None if the model has none): what is left is needed to run.
        self.running = SingleFailures(mtree.tree, mtree.startup) if mtree.startup else None
        # For each gate: the any/at-least groups below it that some single failure defeats, computed once
        # bottom-up over the union of the services' cones (children before parents).
        self._cone_groups: dict[str, frozenset[str]] = {}
        self._causes: dict[str, tuple[str, frozenset[str]]] = {}
        for gate in mtree.tree.topological_gates(tops):
            below: set[str] = set()
            for child in gate.children:
                below.update(self._cone_groups.get(child, ()))
            if gate.kind is not GateKind.OR and gate.id in mtree.groups and self._group_causes(gate.id):
                below.add(gate.id)
            self._cone_groups[gate.id] = frozenset(below)

    def _group_causes(self, gid: str) -> frozenset[str]:
        """Single failures that take the group down *through at least two of its live members* (a shared
        hypervisor, a failure domain). The last live member of a group is no common cause: it is simply a
        single point of failure, reported as such."""
        gate = self.mtree.tree.gates[gid]
        counts: dict[str, int] = {}
        for child in gate.children:
            if child not in self.mtree.tree.houses:
                for node_id in self.singles.of(child):
                    counts[node_id] = counts.get(node_id, 0) + 1
        shared = frozenset(n for n, c in counts.items() if c >= 2) & self.singles.of(gid)
        if shared:
            owner, req = self.mtree.groups[gid]
            self._causes[gid] = (f"{owner}: {req.name + ' = ' if req.name else ''}{req.describe()}", shared)
        return shared

    def describe(self, top: str, sid: str) -> list[Spof]:
        """Return the service's single points of failure (its own failure aside), most probable first."""
        p = self.mtree.tree.events
        # Ranked as the engine ranks cut sets: by probability, then by id.
        singles = sorted((n for n in self.singles.of(top) if n != sid), key=lambda n: (-p[n], n))
        running = self.running.of(top) if self.running is not None else None
        groups = [self._causes[g] for g in sorted(self._cone_groups.get(top, ()))]
        out = []
        for node_id in singles:
            domain = self.model.domains.get(node_id)
            kind = f"domain:{domain.kind}" if domain is not None else self.model.components[node_id].kind
            defeats = tuple(sorted(desc for desc, shared in groups if node_id in shared))
            startup = running is not None and node_id not in running
            out.append(Spof(node_id, kind, startup, defeats))
        return out
