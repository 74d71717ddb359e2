"""Property tests on small random *models*: the fault tree, the engine and the blast radius must agree with
a brute-force enumeration of every combination of failures, written here independently of them."""

from __future__ import annotations

import itertools
import math
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil.analysis.impact import blast_radius
from vigil.analysis.report import analyze_model
from vigil.model.loader import load_model_texts
from vigil.model.types import Component, GroupMode, Model, State


@st.composite
def models(draw: Any) -> dict[str, Any]:
    n_dom = draw(st.integers(0, 2))
    n_comp = draw(st.integers(1, 7))
    domains = [{"id": f"d{i}", "kind": "site", "availability": draw(st.sampled_from([0.9, 0.99, 0.5]))}
               for i in range(n_dom)]  # fmt: skip
    comps = []
    for i in range(n_comp):
        comp: dict[str, Any] = {
            "id": f"c{i}",
            "kind": "service",
            "availability": draw(st.sampled_from([0.6, 0.9, 0.95, 0.99])),
        }
        if i and draw(st.booleans()):
            comp["runs_on"] = f"c{draw(st.integers(0, i - 1))}"
        if n_dom and draw(st.integers(0, 3)) == 0:
            comp["domains"] = [f"d{draw(st.integers(0, n_dom - 1))}"]
        reqs = []
        for _ in range(draw(st.integers(0, 2)) if i else 0):
            members = draw(st.lists(st.integers(0, i - 1), min_size=1, max_size=3, unique=True))
            ids = [f"c{m}" for m in members]
            mode = draw(st.sampled_from(["single", "all", "any", "at_least"]))
            req: dict[str, Any] = (
                {"id": ids[0]} if mode == "single" else {"at_least": draw(st.integers(1, len(ids))), "of": ids}
                if mode == "at_least" else {mode: ids}
            )  # fmt: skip
            flag = draw(st.sampled_from([None, None, "optional", "startup_only"]))
            if flag:
                req[flag] = True
            reqs.append(req)
        if reqs:
            comp["depends_on"] = reqs
        comps.append(comp)
    return {"domains": domains, "components": comps}


def _member_failed(model: Model, node: str, failed: frozenset[str], in_group: bool, hard_startup: bool) -> bool:
    comp = model.components.get(node)
    if in_group and comp is not None and comp.state is State.DEGRADED:
        return True
    return _fails(model, node, failed, hard_startup)


def _fails(model: Model, node: str, failed: frozenset[str], hard_startup: bool) -> bool:
    """The documented semantics, by direct recursion (models here are tiny)."""
    if node in failed:
        return True
    if node in model.domains:
        return any(_fails(model, p, failed, hard_startup) for p in model.domains[node].domains)
    comp: Component = model.components[node]
    if any(_fails(model, d, failed, hard_startup) for d in comp.domains):
        return True
    if comp.runs_on and _fails(model, comp.runs_on, failed, hard_startup):
        return True
    for req in comp.requirements:
        if req.optional or (req.startup_only and not hard_startup):
            continue
        grouped = req.is_group and req.mode is not GroupMode.ALL
        down = sum(_member_failed(model, m, failed, grouped, hard_startup) for m in req.members)
        if len(req.members) - down < req.k:
            return True
    return False


def _brute(model: Model, service: str) -> tuple[set[frozenset[str]], float]:
    basics = [*model.domains, *model.components]
    prob = {n: 1 - (model.domains[n].availability if n in model.domains else model.components[n].availability)
            for n in basics}  # fmt: skip
    cuts: set[frozenset[str]] = set()
    p_fail = 0.0
    for bits in itertools.product((False, True), repeat=len(basics)):
        failed = frozenset(n for n, b in zip(basics, bits, strict=True) if b)
        if _fails(model, service, failed, hard_startup=True):
            p_fail += math.prod(prob[n] if b else 1 - prob[n] for n, b in zip(basics, bits, strict=True))
            cuts.add(failed)
    minimal = {c for c in cuts if not any(o < c for o in cuts)}
    return minimal, p_fail


def _load(spec: dict[str, Any]) -> Model:
    return load_model_texts([("random.yaml", yaml.safe_dump(spec))])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(models(), st.data())
def test_cut_sets_and_availability_match_brute_force(spec: dict[str, Any], data: st.DataObject) -> None:
    model = _load(spec)
    degraded = data.draw(st.lists(st.sampled_from(sorted(model.components)), max_size=2, unique=True))
    model = model.with_states({d: State.DEGRADED for d in degraded})
    report = analyze_model(model, services=list(model.components), max_order=None)
    for svc in report.services:
        minimal, p_fail = _brute(model, svc.id)
        assert {frozenset(ids) for ids, _ in svc.ranked_cut_sets()} == minimal, svc.id
        assert svc.exact
        assert abs((1 - svc.availability) - p_fail) < 1e-12
        assert {p.id for p in svc.spofs} == {next(iter(c)) for c in minimal if len(c) == 1} - {svc.id}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(models(), st.data())
def test_bounded_order_is_the_small_part_of_the_full_answer(spec: dict[str, Any], data: st.DataObject) -> None:
    model = _load(spec)
    order = data.draw(st.integers(1, 3))
    full = analyze_model(model, services=list(model.components), max_order=None, importance=False)
    part = analyze_model(model, services=list(model.components), max_order=order, importance=False)
    for whole, bounded in zip(full.services, part.services, strict=True):
        expected = {frozenset(ids) for ids, _ in whole.ranked_cut_sets() if len(ids) <= order}
        assert {frozenset(ids) for ids, _ in bounded.ranked_cut_sets()} == expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(models(), st.data())
def test_blast_radius_matches_brute_force(spec: dict[str, Any], data: st.DataObject) -> None:
    model = _load(spec)
    nodes = sorted([*model.domains, *model.components])
    failed = frozenset(data.draw(st.lists(st.sampled_from(nodes), min_size=1, max_size=3, unique=True)))
    impact = blast_radius(model, failed=failed)
    # While running, a startup requirement only degrades: "down" follows the hard requirements alone.
    expected = {c for c in model.components if c not in failed and _fails(model, c, failed, hard_startup=False)}
    assert {e.id for e in impact.down} == expected
    for effect in impact.down:
        chain = impact.chain(effect.id)
        assert chain[-1] in failed, chain
