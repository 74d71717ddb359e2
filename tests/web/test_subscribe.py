"""Subscribers over HTTP, through a real server on SQLite and PostgreSQL: the public subscribe call and its
422s, the confirmation and unsubscribe links (GET changes nothing, POST acts, tampered links refused), the
admin's list, approval and deletion behind the bearer token; tokens and secrets never come out."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Engine, select

from tests.web.support import LocalBackend, serving
from vigil.config import get_settings
from vigil.db import session_scope
from vigil.notify.models import Delivery, Subscriber, SubscriberStatus
from vigil.web.app import create_app
from vigil.web.subscribe import RateLimit

pytest_plugins = ["tests.dbfixtures"]

KEY = "subscribe-test-key-0123456789abcdef"
ADMIN = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(autouse=True)
def secret_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("VIGIL_SECRET_KEY", KEY)
    monkeypatch.setenv("VIGIL_ENVIRONMENT", "production")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def base_url_limited(backend: LocalBackend, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("VIGIL_SUBSCRIBE_RATE_LIMIT", "3")
    get_settings.cache_clear()
    with serving(create_app(backend)) as url:
        yield url


def stored(engine: Engine, subscriber_id: int) -> tuple[SubscriberStatus, str, str]:
    with session_scope(engine) as session:
        row = session.get(Subscriber, subscriber_id)
        assert row is not None
        return row.status, row.confirm_token, row.unsubscribe_token


def test_double_opt_in_and_unsubscribe_by_the_links(base_url: str, engine: Engine) -> None:
    # tests/web/support.seed made the components: web, cron, jobs, and old (retired).
    answer = httpx.post(f"{base_url}/api/v1/subscribers", json={"address": "ops@example.org", "components": ["web"]})
    assert answer.status_code == 202, answer.text
    document = answer.json()
    assert document["status"] == "pending" and document["components"] == ["web"]
    assert not any("token" in key or key == "secret" for key in document)
    subscriber_id = document["id"]
    _, confirm_token, unsubscribe_token = stored(engine, subscriber_id)
    with session_scope(engine) as session:  # the confirmation request waits in the outbox
        assert session.scalars(select(Delivery.change).where(Delivery.subscriber_id == subscriber_id)).all()

    page = httpx.get(f"{base_url}/subscribe/confirm/{confirm_token}")
    assert page.status_code == 200 and '<form method="post"' in page.text and "<script" not in page.text
    assert stored(engine, subscriber_id)[0] is SubscriberStatus.PENDING  # a mail scanner's GET confirms nothing
    tampered = confirm_token[:-2] + ("AA" if not confirm_token.endswith("AA") else "BB")
    assert httpx.post(f"{base_url}/subscribe/confirm/{tampered}").status_code == 400
    assert stored(engine, subscriber_id)[0] is SubscriberStatus.PENDING
    assert httpx.post(f"{base_url}/subscribe/confirm/{confirm_token}").status_code == 200
    assert stored(engine, subscriber_id)[0] is SubscriberStatus.CONFIRMED

    assert httpx.get(f"{base_url}/subscribe/unsubscribe/{unsubscribe_token}").status_code == 200
    assert stored(engine, subscriber_id)[0] is SubscriberStatus.CONFIRMED
    assert httpx.post(f"{base_url}/subscribe/unsubscribe/{unsubscribe_token}").status_code == 200
    assert stored(engine, subscriber_id)[0] is SubscriberStatus.UNSUBSCRIBED
    # An old confirmation link does not bring an unsubscribed address back.
    assert httpx.post(f"{base_url}/subscribe/confirm/{confirm_token}").status_code == 410
    assert stored(engine, subscriber_id)[0] is SubscriberStatus.UNSUBSCRIBED


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"address": "not an address"}, "address"),
        ({"address": "ops@example.org", "components": ["nope"]}, "components"),
        ({"address": "ops@example.org", "components": ["old"]}, "components"),  # retired: no longer there
        ({"address": "ops@example.org", "components": []}, "components"),
        ({"kind": "webhook"}, "url"),
        ({"kind": "webhook", "url": "ftp://x"}, "url"),
        ({"kind": "webhook", "url": "https://hooks.example.org/x", "secret": "short"}, "secret"),
        ({"address": "ops@example.org", "colour": "blue"}, "colour"),
        ({"kind": "pigeon", "address": "ops@example.org"}, "kind"),
    ],
)
def test_bad_subscriptions_name_the_field_and_store_nothing(
    base_url: str, engine: Engine, body: dict[str, object], field: str
) -> None:
    answer = httpx.post(f"{base_url}/api/v1/subscribers", json=body)
    assert answer.status_code == 422
    assert [error["loc"][-1] for error in answer.json()["detail"]] == [field]
    with session_scope(engine) as session:
        assert session.scalars(select(Subscriber)).all() == []


def test_admin_lists_approves_and_deletes_behind_the_token(base_url: str, engine: Engine) -> None:
    body = {"kind": "webhook", "url": "https://hooks.example.org/vigil"}
    subscriber_id = httpx.post(f"{base_url}/api/v1/subscribers", json=body).json()["id"]
    assert httpx.get(f"{base_url}/api/v1/subscribers").status_code == 401
    assert httpx.post(f"{base_url}/api/v1/subscribers/{subscriber_id}/approve").status_code == 401
    listing = httpx.get(f"{base_url}/api/v1/subscribers", headers=ADMIN).json()["subscribers"]
    assert [(s["id"], s["status"], s["components"]) for s in listing] == [(subscriber_id, "pending", None)]
    approved = httpx.post(f"{base_url}/api/v1/subscribers/{subscriber_id}/approve", headers=ADMIN)
    assert approved.status_code == 200 and approved.json()["status"] == "confirmed"
    assert httpx.delete(f"{base_url}/api/v1/subscribers/{subscriber_id}", headers=ADMIN).status_code == 204
    assert httpx.delete(f"{base_url}/api/v1/subscribers/{subscriber_id}", headers=ADMIN).status_code == 404


def test_asking_again_for_an_unconfirmed_address_sends_no_second_mail(base_url: str, engine: Engine) -> None:
    body = {"address": "victim@example.org"}
    first = httpx.post(f"{base_url}/api/v1/subscribers", json=body)
    again = httpx.post(f"{base_url}/api/v1/subscribers", json={**body, "components": ["web"]})
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]  # the same pending request, not a new one
    with session_scope(engine) as session:
        assert len(session.scalars(select(Subscriber)).all()) == 1
        assert len(session.scalars(select(Delivery)).all()) == 1  # one confirmation mail


def test_one_client_is_limited_with_a_retry_after_and_nothing_stored(base_url_limited: str, engine: Engine) -> None:
    for n in range(3):
        answer = httpx.post(f"{base_url_limited}/api/v1/subscribers", json={"address": f"a{n}@example.org"})
        assert answer.status_code == 202, answer.text
    refused = httpx.post(f"{base_url_limited}/api/v1/subscribers", json={"address": "a3@example.org"})
    assert refused.status_code == 429 and "too many" in refused.json()["detail"]
    assert 1190 <= int(refused.headers["Retry-After"]) <= 1200  # one request per 20 minutes at 3 per hour
    with session_scope(engine) as session:
        addresses = sorted(s.address for s in session.scalars(select(Subscriber)))
    assert addresses == ["a0@example.org", "a1@example.org", "a2@example.org"]


def test_the_bucket_refills_over_time_per_client_and_forgets_the_idlest() -> None:
    now = [0.0]
    limit = RateLimit(2, clients=2, clock=lambda: now[0])
    assert [limit.take("a"), limit.take("a")] == [0.0, 0.0]
    assert limit.take("a") == pytest.approx(1800.0)  # 2 per hour: one every 30 minutes
    assert limit.take("b") == 0.0  # another client has its own bucket
    now[0] = 1800.0
    assert limit.take("a") == 0.0
    assert limit.take("a") > 0
    limit.take("c")  # a third client: the longest idle ("b") is forgotten, the memory stays bounded
    assert set(limit._buckets) == {"a", "c"}
    assert RateLimit(0).take("a") == 0.0  # 0: no limit
