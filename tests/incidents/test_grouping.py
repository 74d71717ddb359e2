"""Root-cause grouping as a pure function: changes in, incidents decided, nothing else touched."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

import pytest

from tests.conftest import EXAMPLES, model_from
from vigil.incidents.grouping import Change, IncidentView, group_changes, impact_of, quiet_resolutions, status_of
from vigil.incidents.models import ComponentStatus, Impact, IncidentStatus
from vigil.model.loader import load_model
from vigil.model.types import Model, Tier
from vigil.monitors.models import ComponentState

S = ComponentState
CS = ComponentStatus
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
VMS = {"login1", "login2", "buildbot", "pwca", "horde", "repo.anl-external.org"}
_ids = count(1)


@pytest.fixture(scope="module")
def cels() -> Model:
    return load_model([EXAMPLES / "cels-2022.yaml"])


def change(cid: str, to: ComponentState, cause: str | None = None, *, minutes: float = 0, frm: S = S.UP) -> Change:
    return Change(next(_ids), cid, frm, to, cause, T0 + timedelta(minutes=minutes))


def vserver8_down() -> list[Change]:
    # What the engine emits when vserver8's monitor fails: the host with no cause, each VM naming it.
    return [change("vserver8", S.DOWN), *(change(vm, S.DOWN, "vserver8", frm=S.UNKNOWN) for vm in sorted(VMS))]


def states_after(changes: list[Change]) -> dict[str, ComponentState]:
    return {c.component_id: c.to_state for c in changes}


def opened(view: IncidentView, ident: int) -> IncidentView:
    view.id = ident
    view.changes = []
    return view


def test_cels_failure_is_one_incident_caused_by_vserver8(cels: Model) -> None:
    changes = vserver8_down()
    (incident,) = group_changes(cels, [], changes, states_after(changes))  # exactly one, not one per VM
    assert incident.id is None and incident.probable_cause == "vserver8"
    assert incident.components == {"vserver8": CS.MAJOR_OUTAGE, **dict.fromkeys(VMS, CS.MAJOR_OUTAGE)}
    assert incident.status is IncidentStatus.INVESTIGATING
    assert incident.impact is Impact.CRITICAL  # repo.anl-external.org is critical and in major outage
    assert incident.started_at == T0
    assert [c.component_id for c in incident.changes] == [c.component_id for c in changes]
    assert "vserver8" in incident.title and "6 more affected" in incident.title


def test_the_same_failure_in_two_batches_still_makes_one_incident(cels: Model) -> None:
    changes = vserver8_down()
    states = states_after(changes)
    (first,) = group_changes(cels, [], changes[:3], states)
    (second,) = group_changes(cels, [opened(first, 1)], changes[3:], states)
    assert second.id == 1
    assert set(second.components) == {"vserver8", *VMS}


def test_the_radius_fills_in_failing_components_that_sent_no_change_yet(cels: Model) -> None:
    # Only the host's change arrived; the VMs are already down in the components table (the engine wrote them).
    states = {"vserver8": S.DOWN, **dict.fromkeys(VMS, S.DOWN), "login3": S.UP}
    (incident,) = group_changes(cels, [], [change("vserver8", S.DOWN)], states)
    assert set(incident.components) == {"vserver8", *VMS}


def test_a_vm_whose_own_monitor_answers_is_not_affected(cels: Model) -> None:
    states = {"vserver8": S.DOWN, **dict.fromkeys(VMS, S.DOWN), "horde": S.UP}
    (incident,) = group_changes(cels, [], [change("vserver8", S.DOWN)], states)
    assert "horde" not in incident.components  # the monitor looked; the model only inferred


def test_an_unrelated_failure_opens_its_own_incident(cels: Model) -> None:
    changes = vserver8_down()
    states = states_after(changes)
    (first,) = group_changes(cels, [], changes, states)
    other = change("vserver-ha1", S.DOWN, minutes=5)
    states["vserver-ha1"] = S.DOWN
    (second,) = group_changes(cels, [opened(first, 1)], [other], states)
    assert second.id is None and second.probable_cause == "vserver-ha1"
    assert second.components == {"vserver-ha1": CS.MAJOR_OUTAGE}
    assert second.impact is Impact.MAJOR  # a standard hypervisor down; svn survives on the other node


def test_two_unrelated_failures_in_one_batch_make_two_incidents(cels: Model) -> None:
    changes = [*vserver8_down(), change("vserver-ha1", S.DOWN)]
    decided = group_changes(cels, [], changes, states_after(changes))
    assert sorted(v.probable_cause or "" for v in decided) == ["vserver-ha1", "vserver8"]


def test_a_deeper_failure_takes_over_the_incident_of_its_victim(cels: Model) -> None:
    # login1's own monitor fails first (nothing upstream known yet), then the host is found down.
    first_change = change("login1", S.DOWN)
    (first,) = group_changes(cels, [], [first_change], {"login1": S.DOWN})
    assert first.probable_cause == "login1"
    host = change("vserver8", S.DOWN, minutes=1)
    later = [host, *(change(vm, S.DOWN, "vserver8", minutes=1) for vm in sorted(VMS - {"login1"}))]
    states = {"vserver8": S.DOWN, **dict.fromkeys(VMS, S.DOWN)}
    decided = group_changes(cels, [opened(first, 7)], later, states)
    assert len(decided) == 1 and decided[0].id == 7
    assert decided[0].probable_cause == "vserver8"
    assert set(decided[0].components) == {"vserver8", *VMS}


def test_recovery_moves_to_monitoring_and_a_new_failure_back_to_investigating(cels: Model) -> None:
    changes = vserver8_down()
    (incident,) = group_changes(cels, [], changes, states_after(changes))
    incident = opened(incident, 1)
    back = [change("vserver8", S.UP, minutes=30, frm=S.DOWN)]
    back += [change(vm, S.UNKNOWN, minutes=30, frm=S.DOWN) for vm in sorted(VMS)]  # unwatched VMs: unknown again
    (recovered,) = group_changes(cels, [incident], back, states_after(back))
    assert recovered.status is IncidentStatus.MONITORING
    assert recovered.mitigated_at == T0 + timedelta(minutes=30)
    assert set(recovered.components.values()) == {CS.OPERATIONAL}
    assert recovered.impact is Impact.NONE
    recovered.changes = []
    again = [change("vserver8", S.DOWN, minutes=33)]
    (failing,) = group_changes(cels, [recovered], again, {"vserver8": S.DOWN})
    assert failing.id == 1  # it joins the incident it belongs to, it does not open another
    assert failing.status is IncidentStatus.INVESTIGATING and failing.mitigated_at is None


def test_partial_recovery_keeps_investigating(cels: Model) -> None:
    changes = vserver8_down()
    (incident,) = group_changes(cels, [], changes, states_after(changes))
    (still,) = group_changes(cels, [opened(incident, 1)], [change("vserver8", S.UP, frm=S.DOWN)], {"vserver8": S.UP})
    assert still.status is IncidentStatus.INVESTIGATING and still.mitigated_at is None
    assert still.components["vserver8"] is CS.OPERATIONAL and still.components["horde"] is CS.MAJOR_OUTAGE


def test_a_taken_over_incident_keeps_its_status_but_records_mitigation(cels: Model) -> None:
    view = IncidentView(1, "vserver8", IncidentStatus.IDENTIFIED, {"vserver8": CS.MAJOR_OUTAGE}, T0, taken_over=True)
    (after,) = group_changes(cels, [view], [change("vserver8", S.UP, frm=S.DOWN)], {"vserver8": S.UP})
    assert after.status is IncidentStatus.IDENTIFIED  # a person runs it
    assert after.mitigated_at == T0


def test_changes_outside_any_incident_are_ignored(cels: Model) -> None:
    ups = [change("vserver3", S.UP, frm=S.UNKNOWN), change("login3", S.MAINTENANCE)]
    assert group_changes(cels, [], ups, states_after(ups)) == []


def test_inputs_are_not_modified(cels: Model) -> None:
    view = IncidentView(1, "vserver8", IncidentStatus.INVESTIGATING, {"vserver8": CS.MAJOR_OUTAGE}, T0)
    group_changes(cels, [view], [change("login1", S.DOWN, "vserver8")], {"login1": S.DOWN})
    assert view.components == {"vserver8": CS.MAJOR_OUTAGE} and view.changes == []


def test_a_failure_of_a_component_unknown_to_the_model_is_its_own_incident(cels: Model) -> None:
    (view,) = group_changes(cels, [], [change("gone", S.DOWN)], {"gone": S.DOWN})
    assert view.probable_cause == "gone" and view.components == {"gone": CS.MAJOR_OUTAGE}


def test_degraded_joins_with_its_status() -> None:
    model = model_from(
        "components:\n  - {id: db, kind: database}\n"
        "  - id: web\n    kind: service\n    depends_on: [{all: [db], optional: true}]\n"
    )
    changes = [change("db", S.DOWN), change("web", S.DEGRADED, "db")]
    (view,) = group_changes(model, [], changes, states_after(changes))
    assert view.components == {"db": CS.MAJOR_OUTAGE, "web": CS.DEGRADED_PERFORMANCE}


@pytest.mark.parametrize(
    ("tier", "status", "expected"),
    [
        (Tier.CRITICAL, CS.MAJOR_OUTAGE, Impact.CRITICAL),
        (Tier.CRITICAL, CS.DEGRADED_PERFORMANCE, Impact.MAJOR),
        (Tier.CRITICAL, CS.PARTIAL_OUTAGE, Impact.MAJOR),
        (Tier.STANDARD, CS.MAJOR_OUTAGE, Impact.MAJOR),
        (Tier.STANDARD, CS.DEGRADED_PERFORMANCE, Impact.MINOR),
        (Tier.BEST_EFFORT, CS.MAJOR_OUTAGE, Impact.MINOR),
        (Tier.CRITICAL, CS.UNDER_MAINTENANCE, Impact.NONE),
        (Tier.CRITICAL, CS.OPERATIONAL, Impact.NONE),
    ],
)
def test_impact_rule(tier: Tier, status: ComponentStatus, expected: Impact) -> None:
    assert impact_of({"x": tier}, {"x": status, "y": CS.OPERATIONAL}) is expected


def test_impact_is_the_worst_of_the_components() -> None:
    tiers = {"a": Tier.BEST_EFFORT, "b": Tier.CRITICAL}
    assert impact_of(tiers, {"a": CS.MAJOR_OUTAGE, "b": CS.DEGRADED_PERFORMANCE}) is Impact.MAJOR


def test_status_of_engine_states() -> None:
    assert [status_of(s) for s in S] == [
        CS.OPERATIONAL,  # up
        CS.DEGRADED_PERFORMANCE,
        CS.MAJOR_OUTAGE,
        CS.UNDER_MAINTENANCE,
        CS.OPERATIONAL,  # unknown: nothing says it is broken
    ]


def test_quiet_resolutions() -> None:
    quiet = timedelta(minutes=10)

    def view(ident: int, status: IncidentStatus, mitigated: datetime | None, taken: bool = False) -> IncidentView:
        return IncidentView(ident, "x", status, {}, T0, taken_over=taken, mitigated_at=mitigated)

    views = [
        view(1, IncidentStatus.MONITORING, T0),  # quiet for exactly the period: resolves
        view(2, IncidentStatus.MONITORING, T0 + timedelta(minutes=1)),  # not yet
        view(3, IncidentStatus.MONITORING, T0, taken=True),  # a person runs it
        view(4, IncidentStatus.INVESTIGATING, T0),
        view(5, IncidentStatus.MONITORING, None),
    ]
    assert quiet_resolutions(views, now=T0 + quiet, quiet_period=quiet) == [1]
