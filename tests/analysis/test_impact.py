from __future__ import annotations

import pytest

from tests.conftest import model_from
from vigil.analysis.impact import blast_radius
from vigil.model.types import State

MODEL = """\
domains:
  - {id: site, kind: site}
  - {id: rack, kind: rack, domains: [site]}
components:
  - {id: hv, kind: hypervisor, domains: [rack]}
  - {id: hv2, kind: hypervisor}
  - {id: vm1, kind: vm, runs_on: hv}
  - {id: vm2, kind: vm, runs_on: hv2}
  - {id: vm3, kind: vm, runs_on: hv2}
  - {id: nfs, kind: storage}
  - {id: cache, kind: service}
  - id: app
    kind: service
    depends_on:
      - any: [vm1, vm2]
      - {id: nfs, startup_only: true}
      - {id: cache, optional: true}
  - id: quorum
    kind: service
    depends_on:
      - {at_least: 2, of: [vm1, vm2, vm3]}
  - {id: front, kind: service, depends_on: [app]}
"""


def statuses(impact: object) -> dict[str, str]:
    return {e.id: e.status for e in (*impact.down, *impact.degraded, *impact.exposed)}  # type: ignore[attr-defined]


def test_runs_on_failure_with_reason_and_chain() -> None:
    impact = blast_radius(model_from(MODEL), failed=["hv"])
    assert statuses(impact) == {"vm1": "down", "app": "exposed", "quorum": "exposed"}
    (vm1,) = impact.down
    assert vm1.because == "runs on hv (failed)" and vm1.cause == "hv"
    assert impact.failed == ["hv"]


def test_domain_failure_propagates_through_nested_domains() -> None:
    impact = blast_radius(model_from(MODEL), failed=["site"])
    assert statuses(impact)["hv"] == "down"
    assert impact.down[0].because == "in failure domain rack (down)"
    assert impact.chain("vm1") == ["vm1", "hv", "rack", "site"]


def test_group_loses_quorum_and_dependants_follow() -> None:
    impact = blast_radius(model_from(MODEL), failed=["hv", "hv2"])
    got = statuses(impact)
    assert got["app"] == "down" and got["front"] == "down" and got["quorum"] == "down"
    app = next(e for e in impact.down if e.id == "app")
    assert app.because == "needs any of [vm1, vm2]: vm1 down, vm2 down"
    assert impact.chain("front")[:2] == ["front", "app"]


def test_optional_and_startup_only_degrade() -> None:
    impact = blast_radius(model_from(MODEL), failed=["cache", "nfs"])
    got = statuses(impact)
    assert got == {"app": "degraded", "front": "degraded"}
    app = next(e for e in impact.degraded if e.id == "app")
    assert app.because == "cannot restart while nfs is lost (nfs failed)"
    only_cache = blast_radius(model_from(MODEL), failed=["cache"])
    assert only_cache.degraded[0].because == "optional cache lost (cache failed)"
    assert only_cache.degraded[1].because == "needs app (degraded)"


def test_degraded_member_does_not_count_towards_quorum() -> None:
    model = model_from(MODEL)
    impact = blast_radius(model, failed=["vm1"], states={"vm2": State.DEGRADED})
    got = statuses(impact)
    assert got["app"] == "down"
    assert "vm2 degraded" in next(e for e in impact.down if e.id == "app").because
    # 2 of [vm1, vm2, vm3] with vm1 down and vm2 degraded: only vm3 can serve, the quorum is lost.
    quorum = next(e for e in impact.down if e.id == "quorum")
    assert quorum.because == "needs 2 of [vm1, vm2, vm3]: vm1 failed, vm2 degraded"
    # With vm2 merely degraded and nothing down, the quorum holds but redundancy is reduced.
    only_degraded = statuses(blast_radius(model, states={"vm2": State.DEGRADED}))
    assert only_degraded == {"app": "exposed", "quorum": "exposed"}


def test_maintenance_state_in_model_counts_as_down() -> None:
    model = model_from(MODEL).with_states({"hv2": State.MAINTENANCE})
    impact = blast_radius(model)
    assert impact.failed == ["hv2"]
    assert next(e for e in impact.down if e.id == "vm2").because == "runs on hv2 (in maintenance)"


def test_unknown_id_raises_key_error() -> None:
    with pytest.raises(KeyError):
        blast_radius(model_from(MODEL), failed=["nope"])


def test_optional_cycle_terminates() -> None:
    model = model_from(
        "components:\n  - {id: a, kind: service, depends_on: [{id: b, optional: true}]}\n"
        "  - {id: b, kind: service, depends_on: [a]}\n  - {id: c, kind: host}\n"
        "  - {id: d, kind: service, depends_on: [c, {id: a, optional: true}]}\n"
    )
    impact = blast_radius(model, failed=["a"])
    assert statuses(impact) == {"b": "down", "d": "degraded"}


def test_states_written_in_each_model_are_its_own() -> None:
    # The states a model carries are remembered per model object: a changed copy must not see the original's.
    base = model_from(MODEL)
    assert blast_radius(base).failed == []
    changed = base.with_states({"hv2": State.MAINTENANCE})
    assert blast_radius(changed).failed == ["hv2"]
    assert blast_radius(base).failed == []
    assert blast_radius(changed.with_states({"hv2": State.UP, "nfs": State.DOWN})).failed == ["nfs"]


def test_reason_names_each_lost_member_as_it_was_when_the_verdict_was_made() -> None:
    # vm2 is only degraded (declared) when app loses the whole "all" group through vm1; the reason says so.
    model = model_from(
        "components:\n  - {id: vm1, kind: vm}\n  - {id: vm2, kind: vm}\n"
        "  - id: app\n    kind: service\n    depends_on: [{all: [vm1, vm2]}]\n"
    )
    impact = blast_radius(model, failed=["vm1"], states={"vm2": State.DEGRADED})
    (app,) = impact.down
    assert app.because == "needs all of [vm1, vm2]: vm1 failed, vm2 degraded"
