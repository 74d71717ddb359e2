"""The incidents API on a real server: reads open, writes behind the secret key, errors naming the field."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine

from tests.web.support import LocalBackend, serving
from vigil.config import Settings
from vigil.db import session_scope
from vigil.monitors.models import Component
from vigil.notify.models import ChangeKind, Delivery, DeliveryStatus, Subscriber, SubscriberKind, SubscriberStatus
from vigil.web.app import create_app

pytest_plugins = ["tests.dbfixtures"]

KEY = "k" * 40


class KeyedBackend(LocalBackend):
    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.settings = Settings(environment="development", secret_key=SecretStr(KEY))
        self.told = 0

    def incidents_changed(self) -> None:  # the runtime's hook: wakes its dispatcher after a person's change
        self.told += 1


@pytest.fixture
def client(engine: Engine) -> Iterator[httpx.Client]:
    with session_scope(engine) as session:
        session.add(Component(id="db", name="DB", kind="database"))
    with serving(create_app(KeyedBackend(engine))) as url, httpx.Client(base_url=url, timeout=10) as http:
        yield http


AUTH = {"Authorization": f"Bearer {KEY}"}


def test_writes_need_the_secret_key(client: httpx.Client) -> None:
    body = {"title": "DB down", "components": {"db": "major_outage"}}
    assert client.post("/api/v1/incidents", json=body).status_code == 401
    wrong = {"Authorization": "Bearer " + "x" * 40}
    assert client.post("/api/v1/incidents", json=body, headers=wrong).status_code == 401
    assert client.post("/api/v1/incidents", json=body, headers={"Authorization": KEY}).status_code == 401
    assert client.get("/api/v1/incidents").json() == {"incidents": []}  # nothing was written


def test_open_update_ack_resolve_merge(client: httpx.Client) -> None:
    made = client.post(
        "/api/v1/incidents", json={"title": "DB down", "components": {"db": "major_outage"}}, headers=AUTH
    )
    assert made.status_code == 201, made.text
    first = made.json()["id"]
    other = client.post("/api/v1/incidents", json={"title": "Dup"}, headers=AUTH).json()["id"]
    update = client.post(
        f"/api/v1/incidents/{first}/updates", json={"message": "On it", "status": "identified"}, headers=AUTH
    )
    assert update.status_code == 201 and update.json()["status"] == "identified"
    assert client.post(f"/api/v1/incidents/{first}/ack", headers=AUTH).json()["acknowledged_at"] is not None
    merged = client.post(f"/api/v1/incidents/{other}/merge", json={"into": first}, headers=AUTH)
    assert merged.status_code == 200 and merged.json()["id"] == first
    assert client.get("/api/v1/incidents", params={"state": "resolved"}).json()["incidents"][0]["id"] == other
    resolved = client.post(f"/api/v1/incidents/{first}/resolve", json={"message": "Done"}, headers=AUTH).json()
    assert resolved["status"] == "resolved" and resolved["resolved_at"] is not None
    timeline = client.get(f"/api/v1/incidents/{first}").json()["timeline"]
    assert [e["body"] for e in timeline if e["kind"] == "update"][-1] == "Done"
    assert client.get("/api/v1/incidents", params={"state": "open"}).json() == {"incidents": []}


def test_each_committed_change_wakes_the_dispatcher_and_a_refused_one_does_not(engine: Engine) -> None:
    with session_scope(engine) as session:
        session.add(Component(id="db", name="DB", kind="database"))
    backend = KeyedBackend(engine)
    with serving(create_app(backend)) as url, httpx.Client(base_url=url, timeout=10) as http:
        made = http.post("/api/v1/incidents", json={"title": "DB down"}, headers=AUTH)
        assert made.status_code == 201 and backend.told == 1
        incident = made.json()["id"]
        assert http.post(f"/api/v1/incidents/{incident}/updates", json={"message": "On it"}, headers=AUTH).is_success
        assert http.post(f"/api/v1/incidents/{incident}/ack", headers=AUTH).is_success
        assert backend.told == 3
        assert http.post("/api/v1/incidents/999/ack", headers=AUTH).status_code == 404  # nothing committed
        assert http.post("/api/v1/incidents", json={"title": "x", "status": "bogus"}, headers=AUTH).status_code == 422
        assert http.get(f"/api/v1/incidents/{incident}").is_success  # reads tell nobody
        assert backend.told == 3


def test_errors_name_the_field(client: httpx.Client) -> None:
    assert client.get("/api/v1/incidents/999").status_code == 404
    bad_status = client.post("/api/v1/incidents", json={"title": "x", "status": "bogus"}, headers=AUTH)
    assert bad_status.status_code == 422 and bad_status.json()["detail"][0]["loc"] == ["body", "status"]
    unknown = client.post(
        "/api/v1/incidents", json={"title": "x", "components": {"nope": "major_outage"}}, headers=AUTH
    )
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["body", "components"]
    assert client.post("/api/v1/incidents/999/ack", headers=AUTH).status_code == 404
    assert client.get("/api/v1/incidents", params={"state": "sideways"}).status_code == 422


def test_deliveries_of_an_incident_behind_the_token(client: httpx.Client, engine: Engine) -> None:
    body = {"title": "DB down", "components": {"db": "major_outage"}}
    opened = client.post("/api/v1/incidents", json=body, headers=AUTH)
    incident_id = opened.json()["id"]
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    with session_scope(engine) as session:
        subscriber = Subscriber(
            kind=SubscriberKind.EMAIL,
            address="a@example.org",
            status=SubscriberStatus.CONFIRMED,
            all_components=True,
            confirm_token="c",
            unsubscribe_token="u",
            created_at=now,
        )
        session.add(subscriber)
        session.flush()
        for channel, status, error, subscriber_id in (
            ("ops-hook", DeliveryStatus.SENT, None, None),
            ("pager", DeliveryStatus.PENDING, "HTTP 503", None),
            ("subscriber", DeliveryStatus.SENT, None, subscriber.id),
            ("subscriber", DeliveryStatus.FAILED, "refused", subscriber.id),
        ):
            session.add(
                Delivery(
                    incident_id=incident_id,
                    channel_id=channel,
                    subscriber_id=subscriber_id,
                    change=ChangeKind.OPENED,
                    status=status,
                    attempts=1,
                    next_attempt_at=now,
                    last_error=error,
                    payload={},
                    created_at=now,
                    sent_at=now if status is DeliveryStatus.SENT else None,
                )
            )
    path = f"/api/v1/incidents/{incident_id}/deliveries"
    assert client.get(path).status_code == 401  # channel names and their errors are not public
    document = client.get(path, headers=AUTH).json()
    assert [(d["channel_id"], d["status"], d["last_error"]) for d in document["deliveries"]] == [
        ("ops-hook", "sent", None),
        ("pager", "pending", "HTTP 503"),
    ]
    assert document["deliveries"][1]["next_attempt_at"] is not None and document["deliveries"][0]["sent_at"]
    assert document["subscribers"] == {"pending": 0, "sent": 1, "failed": 1}
    assert client.get("/api/v1/incidents/999/deliveries", headers=AUTH).status_code == 404
