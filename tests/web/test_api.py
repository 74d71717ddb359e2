from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import Engine

from tests.dbfixtures import result
from tests.web.support import MASK, T0, TOKEN
from vigil.db import session_scope
from vigil.monitors.models import ComponentState, Outcome
from vigil.monitors.store import record_results, record_state_change

pytest_plugins = ["tests.dbfixtures"]

MONITOR_KEYS = {
    "id",
    "component_id",
    "type",
    "enabled",
    "outcome",
    "consecutive_failures",
    "consecutive_successes",
    "last_checked_at",
    "created_at",
    "config",
    "heartbeat",
}
COMPONENT_KEYS = {"id", "name", "kind", "tier", "state", "state_since", "state_cause", "retired_at", "monitors"}
HTTP_MONITOR = "web/http:http://x"


def get(base_url: str, path: str, **params: object) -> httpx.Response:
    return httpx.get(base_url + path, params={k: str(v) for k, v in params.items()})


def test_components_list_the_current_ones_with_their_monitors(base_url: str) -> None:
    response = get(base_url, "/api/v1/components")
    assert response.status_code == 200
    components = response.json()["components"]
    assert [c["id"] for c in components] == ["cron", "jobs", "web"]  # "old" is retired
    web = components[2]
    assert set(web) == COMPONENT_KEYS
    assert {k: web[k] for k in ("name", "kind", "tier", "state", "state_since", "state_cause")} == {
        "name": "Web",
        "kind": "service",
        "tier": "standard",
        "state": "up",
        "state_since": "2026-03-01T12:00:00Z",
        "state_cause": None,
    }
    assert components[0]["state_cause"] == "web"
    assert [m["id"] for m in components[0]["monitors"]] == ["cron/backup"]  # "cron/gone" is disabled
    assert set(web["monitors"][0]) == MONITOR_KEYS


def test_one_component_retired_or_not_and_404(base_url: str) -> None:
    assert get(base_url, "/api/v1/components/old").json()["retired_at"] == "2026-03-01T12:00:00Z"
    response = get(base_url, "/api/v1/components/nope")
    assert response.status_code == 404
    assert response.json() == {"detail": "no component with id 'nope'"}


def test_monitors_list_filter_and_one_by_id_with_slashes(base_url: str) -> None:
    listed = get(base_url, "/api/v1/monitors").json()["monitors"]
    assert [m["id"] for m in listed][:2] == ["cron/backup", "jobs/job-0"] and len(listed) == 22
    cron = get(base_url, "/api/v1/monitors", component="cron").json()["monitors"]
    assert [m["id"] for m in cron] == ["cron/backup"]
    assert get(base_url, "/api/v1/monitors", component="nope").status_code == 404
    monitor = get(base_url, f"/api/v1/monitors/{HTTP_MONITOR}").json()
    assert monitor["id"] == HTTP_MONITOR and monitor["type"] == "http" and monitor["heartbeat"] is None
    heartbeat = get(base_url, "/api/v1/monitors/cron/backup").json()
    assert heartbeat["heartbeat"] == {"last_ping_at": None, "last_start_at": None, "last_fail_at": None}
    assert get(base_url, "/api/v1/monitors/cron/gone").json()["enabled"] is False
    response = get(base_url, "/api/v1/monitors/web/nope")
    assert (response.status_code, response.json()["detail"]) == (404, "no monitor with id 'web/nope'")


def test_no_token_or_secret_ever_leaves_the_api(base_url: str) -> None:
    assert httpx.post(f"{base_url}/ping/{TOKEN}", content=b"job output").status_code == 200
    monitor = get(base_url, f"/api/v1/monitors/{HTTP_MONITOR}").json()
    assert monitor["config"] == {"url": "http://x", "headers": {"Authorization": MASK}, "auth": {}}
    assert get(base_url, "/api/v1/monitors/cron/backup").json()["config"] == {"type": "heartbeat", "period": 3600.0}
    for path in ("/api/v1/components", "/api/v1/monitors", "/api/v1/components/cron", "/api/v1/monitors/cron/backup"):
        text = get(base_url, path).text
        assert TOKEN not in text and "leak" not in text and "job-token" not in text and "job output" not in text


def test_results_newest_first_with_a_limit(base_url: str, engine: Engine) -> None:
    with session_scope(engine) as session:
        rows = [
            result(HTTP_MONITOR, T0 + timedelta(minutes=i), latency=0.01 * (i + 1), reason=f"r{i}") for i in range(5)
        ]
        record_results(session=session, results=rows)
    response = get(base_url, f"/api/v1/results/{HTTP_MONITOR}", limit=2)
    assert response.status_code == 200
    document = response.json()
    assert document["monitor_id"] == HTTP_MONITOR
    assert [r["reason"] for r in document["results"]] == ["r4", "r3"]
    first = document["results"][0]
    assert set(first) == {"id", "started_at", "latency_ms", "outcome", "reason"}
    assert first["started_at"] == "2026-03-01T12:04:00Z" and first["outcome"] == "up"
    assert first["latency_ms"] == pytest.approx(50.0)
    assert len(get(base_url, f"/api/v1/results/{HTTP_MONITOR}").json()["results"]) == 5
    assert get(base_url, "/api/v1/results/web/nope").status_code == 404


def test_uptime_over_a_window(base_url: str, engine: Engine) -> None:
    with session_scope(engine) as session:
        outcomes = [Outcome.UP, Outcome.UP, Outcome.DOWN, Outcome.UP, Outcome.UP]
        rows = [result(HTTP_MONITOR, T0 + timedelta(minutes=i), outcome=o) for i, o in enumerate(outcomes)]
        record_results(session=session, results=rows)
    end = (T0 + timedelta(minutes=5)).isoformat()
    response = get(base_url, f"/api/v1/uptime/{HTTP_MONITOR}", days=1, end=end)
    assert response.status_code == 200
    document = response.json()
    assert set(document) == {
        "monitor_id",
        "start",
        "end",
        "checks",
        "failures",
        "degraded",
        "downtime_seconds",
        "observed_seconds",
        "uptime",
    }
    assert (document["start"], document["end"]) == ("2026-02-28T12:05:00Z", "2026-03-01T12:05:00Z")
    assert (document["checks"], document["failures"]) == (5, 1)
    assert document["downtime_seconds"] == pytest.approx(60.0)
    assert document["uptime"] == pytest.approx(1 - 60.0 / document["observed_seconds"])
    nothing = get(base_url, "/api/v1/uptime/cron/backup", days=1, end=end).json()
    assert (nothing["checks"], nothing["uptime"]) == (0, None)


def test_state_changes_after_an_id(base_url: str, engine: Engine) -> None:
    with session_scope(engine) as session:
        record_state_change(session=session, to_state=Outcome.DOWN, at=T0, monitor_id=HTTP_MONITOR, reason="503")
        record_state_change(session=session, to_state=ComponentState.DOWN, at=T0, component_id="web", cause=None)
        record_state_change(session=session, to_state=ComponentState.UP, at=T0, component_id="jobs")
    first = get(base_url, "/api/v1/state-changes", limit=2).json()
    changes = first["state_changes"]
    assert [c["to_state"] for c in changes] == ["down", "down"]
    assert set(changes[0]) == {"id", "component_id", "monitor_id", "from_state", "to_state", "at", "cause", "reason"}
    assert changes[0]["monitor_id"] == HTTP_MONITOR and changes[0]["component_id"] is None
    assert (changes[0]["from_state"], changes[0]["reason"], changes[0]["at"]) == (
        "unknown",
        "503",
        "2026-03-01T12:00:00Z",
    )
    assert changes[1]["from_state"] == "up"
    rest = get(base_url, "/api/v1/state-changes", after=first["next_after"]).json()
    assert [c["component_id"] for c in rest["state_changes"]] == ["jobs"]
    done = get(base_url, "/api/v1/state-changes", after=rest["next_after"]).json()
    assert done == {"state_changes": [], "next_after": rest["next_after"]}


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        (f"/api/v1/results/{HTTP_MONITOR}", {"limit": 0}, "limit"),
        (f"/api/v1/results/{HTTP_MONITOR}", {"limit": 1001}, "limit"),
        (f"/api/v1/results/{HTTP_MONITOR}", {"limit": "ten"}, "limit"),
        (f"/api/v1/uptime/{HTTP_MONITOR}", {"days": 0}, "days"),
        (f"/api/v1/uptime/{HTTP_MONITOR}", {"days": 4000}, "days"),
        (f"/api/v1/uptime/{HTTP_MONITOR}", {"end": "2026-03-01T12:00:00"}, "end"),  # no offset: ambiguous
        (f"/api/v1/uptime/{HTTP_MONITOR}", {"end": "yesterday"}, "end"),
        ("/api/v1/state-changes", {"after": -1}, "after"),
        ("/api/v1/state-changes", {"limit": 5000}, "limit"),
    ],
)
def test_bad_parameters_give_422_naming_the_field(
    base_url: str, path: str, params: dict[str, object], field: str
) -> None:
    response = get(base_url, path, **params)
    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [["query", field]]
