"""The Alertmanager receiver on a real server: mapping, dedupe by fingerprint, resolve, unknown labels, auth,
bad payloads (4xx and nothing written), and groupKey joining one incident through the incident worker."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.alerts.support import (
    AUTH,
    Vigil,
    alert,
    cels_model,
    changes,
    count,
    notification,
    seed_cels,
    state_of,
    vigil_server,
)
from vigil.alerts.models import Alert
from vigil.db import session_scope
from vigil.incidents.runner import IncidentWorker
from vigil.incidents.service import get_incident, list_incidents
from vigil.model.types import Model
from vigil.monitors.models import ComponentState, Monitor, Outcome, StateChange

pytest_plugins = ["tests.dbfixtures"]

S = ComponentState
PATH = "/api/v1/integrations/alertmanager"


@pytest.fixture(scope="module")
def model() -> Model:
    return cels_model()


@pytest.fixture
def vigil(engine: Engine, model: Model, tmp_path: Path) -> Iterator[Vigil]:
    seed_cels(engine, model)
    with vigil_server(engine, tmp_path) as server:
        yield server


def post(vigil: Vigil, body: Any) -> Any:
    answer = vigil.http.post(PATH, json=body, headers=AUTH)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_firing_takes_the_component_down_and_resolved_brings_it_up(vigil: Vigil) -> None:
    got = post(vigil, notification(alert("fp1", instance="vserver8:9100")))
    assert got == {
        "alerts": [{"fingerprint": "fp1", "status": "firing", "component_id": "vserver8"}],
        "state_changes": 1,
    }
    assert state_of(vigil.engine, "vserver8") is S.DOWN
    (listed,) = vigil.http.get("/api/v1/alerts").json()["alerts"]
    assert listed["component_id"] == "vserver8" and listed["ends_at"] is None
    assert listed["starts_at"] == "2026-03-01T12:00:00Z" and listed["payload"]["groupKey"]
    resolved = alert("fp1", "resolved", ends="2026-03-01T12:30:00Z", instance="vserver8:9100")
    post(vigil, notification(resolved))
    assert state_of(vigil.engine, "vserver8") is S.UP
    assert changes(vigil.engine) == [("vserver8", S.DOWN, None), ("vserver8", S.UP, None)]
    (listed,) = vigil.http.get("/api/v1/alerts", params={"status": "resolved"}).json()["alerts"]
    assert listed["ends_at"] == "2026-03-01T12:30:00Z"


def test_the_same_fingerprint_is_one_alert_and_one_change(vigil: Vigil) -> None:
    body = notification(alert("fp1", instance="vserver8:9100"))
    post(vigil, body)
    again = post(vigil, body)  # Alertmanager repeats a notification every repeat_interval
    assert again["state_changes"] == 0
    assert count(vigil.engine, Alert) == 1 and count(vigil.engine, StateChange) == 1


def test_a_component_stays_down_while_another_of_its_alerts_fires(vigil: Vigil) -> None:
    post(vigil, notification(alert("fp1", instance="vserver8:9100"), alert("fp2", instance="vserver8:9100")))
    post(vigil, notification(alert("fp1", "resolved", ends="2026-03-01T12:10:00Z", instance="vserver8:9100")))
    assert state_of(vigil.engine, "vserver8") is S.DOWN
    post(vigil, notification(alert("fp2", "resolved", ends="2026-03-01T12:11:00Z", instance="vserver8:9100")))
    assert state_of(vigil.engine, "vserver8") is S.UP


def test_a_warning_severity_degrades(vigil: Vigil) -> None:
    post(vigil, notification(alert("fp1", instance="vserver3:9100", severity="warning")))
    assert state_of(vigil.engine, "vserver3") is S.DEGRADED
    post(vigil, notification(alert("fp2", instance="vserver3:9100", severity="critical")))
    assert state_of(vigil.engine, "vserver3") is S.DOWN


def test_unknown_labels_are_recorded_not_dropped(vigil: Vigil) -> None:
    got = post(vigil, notification(alert("fp-x", instance="elsewhere:9100"), alert("fp-g", instance="ghost:9100")))
    notes = [a["note"] for a in got["alerts"]]
    assert notes == ["no mapping rule matches the labels", "rules[3] names unknown component 'no-such-component'"]
    assert got["state_changes"] == 0 and count(vigil.engine, StateChange) == 0
    listed = vigil.http.get("/api/v1/alerts", params={"unmapped": "true"}).json()["alerts"]
    assert sorted(a["fingerprint"] for a in listed) == ["fp-g", "fp-x"]
    assert all(a["component_id"] is None and a["labels"]["instance"] for a in listed)
    assert vigil.http.get("/api/v1/alerts", params={"unmapped": "false"}).json() == {"alerts": []}
    # The vigil_component label maps without a rule.
    got = post(vigil, notification(alert("fp-l", instance="other", vigil_component="vserver3")))
    assert got["alerts"][0]["component_id"] == "vserver3" and state_of(vigil.engine, "vserver3") is S.DOWN


GOOD = notification(alert("fp1", instance="vserver8:9100"))


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({**GOOD, "version": "3"}, ["body", "version"]),
        ({k: v for k, v in GOOD.items() if k != "groupKey"}, ["body", "groupKey"]),
        ({**GOOD, "status": "burning"}, ["body", "status"]),
        ({**GOOD, "alerts": "nope"}, ["body", "alerts"]),
        ({**GOOD, "alerts": [{**GOOD["alerts"][0], "fingerprint": ""}]}, ["body", "alerts", 0, "fingerprint"]),
        ({**GOOD, "alerts": [{**GOOD["alerts"][0], "startsAt": "yesterday"}]}, ["body", "alerts", 0, "startsAt"]),
        (
            {**GOOD, "alerts": [{**GOOD["alerts"][0], "startsAt": "2026-03-01T12:00:00"}]},
            ["body", "alerts", 0, "startsAt"],
        ),
        ({**GOOD, "alerts": [{**GOOD["alerts"][0], "labels": {"a": 1}}]}, ["body", "alerts", 0, "labels", "a"]),
        ([GOOD], ["body"]),
    ],
)
def test_bad_payloads_are_refused_naming_the_field_and_change_nothing(vigil: Vigil, body: Any, loc: list[Any]) -> None:
    answer = vigil.http.post(PATH, json=body, headers=AUTH)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"] == loc
    assert count(vigil.engine, Alert) == 0 and count(vigil.engine, StateChange) == 0
    assert state_of(vigil.engine, "vserver8") is S.UP


def test_a_body_that_is_not_json_is_refused(vigil: Vigil) -> None:
    headers = {**AUTH, "Content-Type": "application/json"}
    answer = vigil.http.post(PATH, content=b"{not json", headers=headers)
    assert answer.status_code == 422 and answer.json()["detail"][0]["type"] == "json_invalid"
    assert count(vigil.engine, Alert) == 0


def test_the_token_is_needed(vigil: Vigil) -> None:
    assert vigil.http.post(PATH, json=GOOD).status_code == 401
    assert vigil.http.post(PATH, json=GOOD, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert vigil.http.post(PATH, json=GOOD, headers={"Authorization": AUTH["Authorization"][7:]}).status_code == 401
    # Unauthenticated garbage is 401 too: the token is checked before the body.
    assert vigil.http.post(PATH, json={"version": "3"}).status_code == 401
    assert count(vigil.engine, Alert) == 0 and count(vigil.engine, StateChange) == 0


def test_no_token_configured_is_503(engine: Engine, model: Model, tmp_path: Path) -> None:
    seed_cels(engine, model)
    with vigil_server(engine, tmp_path, token=None) as server:
        answer = server.http.post(PATH, json=GOOD, headers=AUTH)
        assert answer.status_code == 503 and "no token configured" in answer.json()["detail"]
    assert count(engine, Alert) == 0


def test_an_invalid_mapping_file_is_503_with_the_reason(engine: Engine, model: Model, tmp_path: Path) -> None:
    seed_cels(engine, model)
    with vigil_server(engine, tmp_path, mapping="rules:\n  - match: {instance: x}\n") as server:
        answer = server.http.post(PATH, json=GOOD, headers=AUTH)
    assert answer.status_code == 503
    assert "rules[0].component: Field required" in answer.json()["detail"]
    assert count(engine, Alert) == 0


def _incidents(engine: Engine) -> list[tuple[str | None, list[str]]]:
    with session_scope(engine) as session:
        found = [get_incident(session=session, incident_id=i.id) for i in list_incidents(session=session)]
        return sorted((i.probable_cause, sorted(c.component_id for c in i.components)) for i in found)


def _worker(engine: Engine, model: Model) -> IncidentWorker:
    now = datetime(2026, 3, 1, 12, 5, tzinfo=UTC)
    return IncidentWorker(engine, model=lambda: model, quiet_period=timedelta(minutes=10), clock=lambda: now)


def test_one_group_key_is_one_incident(vigil: Vigil, model: Model) -> None:
    key = '{}:{cluster="pool"}'
    post(vigil, notification(alert("fp-ha1", instance="vserver-ha1:9100"), group_key=key))
    # The second alert of the group arrives later, for another component: it joins the first one's incident.
    later = alert("fp-3", starts="2026-03-01T12:01:00Z", instance="vserver3:9100")
    post(vigil, notification(later, group_key=key))
    assert ("vserver3", S.DOWN, "vserver-ha1") in changes(vigil.engine)
    _worker(vigil.engine, model).run_once()
    ((cause, components),) = _incidents(vigil.engine)
    assert cause == "vserver-ha1" and {"vserver-ha1", "vserver3"} <= set(components)


def test_one_group_key_in_one_notification_is_one_incident(vigil: Vigil, model: Model) -> None:
    both = notification(
        alert("fp-3", starts="2026-03-01T12:01:00Z", instance="vserver3:9100"),
        alert("fp-ha1", instance="vserver-ha1:9100"),
        group_key='{}:{cluster="pool"}',
    )
    post(vigil, both)
    # The oldest firing alert of the group is the anchor; its change comes first in the outbox.
    assert changes(vigil.engine) == [("vserver-ha1", S.DOWN, None), ("vserver3", S.DOWN, "vserver-ha1")]
    _worker(vigil.engine, model).run_once()
    assert len(_incidents(vigil.engine)) == 1


def test_different_group_keys_are_different_incidents(vigil: Vigil, model: Model) -> None:
    post(vigil, notification(alert("fp-ha1", instance="vserver-ha1:9100"), group_key="a"))
    post(vigil, notification(alert("fp-3", instance="vserver3:9100"), group_key="b"))
    _worker(vigil.engine, model).run_once()
    assert [cause for cause, _ in _incidents(vigil.engine)] == ["vserver-ha1", "vserver3"]


def test_a_resolved_alert_leaves_down_a_component_whose_monitor_is_down(vigil: Vigil) -> None:
    # Alerts and monitors both observe vserver8: the worse of the two is its state, not the last one written.
    with session_scope(vigil.engine) as session:
        session.add(Monitor(id="vserver8/ping", component_id="vserver8", type="tcp", outcome=Outcome.DOWN))
    post(vigil, notification(alert("fp1", instance="vserver8:9100")))
    assert state_of(vigil.engine, "vserver8") is S.DOWN
    post(vigil, notification(alert("fp1", "resolved", ends="2026-03-01T12:30:00Z", instance="vserver8:9100")))
    assert state_of(vigil.engine, "vserver8") is S.DOWN  # its monitor still fails
    assert changes(vigil.engine) == [("vserver8", S.DOWN, None)]  # no "up" that the monitor would contradict
