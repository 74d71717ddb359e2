from __future__ import annotations

import httpx
from sqlalchemy import Engine

from tests.web.support import TOKEN, LocalBackend, seed, serving
from vigil.web.app import create_app

pytest_plugins = ["tests.dbfixtures"]


def test_healthz_answers_200_when_ok_and_503_when_failing(base_url: str, backend: LocalBackend) -> None:
    response = httpx.get(f"{base_url}/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "pending_pings": 0}
    backend.status = "failing"
    response = httpx.get(f"{base_url}/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "failing"


def test_healthz_is_failing_when_the_health_check_raises(engine: Engine) -> None:
    class Broken(LocalBackend):
        def health(self) -> dict[str, object]:
            raise RuntimeError("boom")

    seed(engine)
    with serving(create_app(Broken(engine))) as base_url:
        response = httpx.get(f"{base_url}/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "failing", "problems": ["the health check failed: RuntimeError"]}


def test_metrics_serialises_the_backend_registry(base_url: str) -> None:
    assert httpx.get(f"{base_url}/ping/{TOKEN}").status_code == 200
    response = httpx.get(f"{base_url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert "vigil_pings_total 1.0" in response.text.splitlines()
    openmetrics = httpx.get(f"{base_url}/metrics", headers={"Accept": "application/openmetrics-text"})
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.rstrip().endswith("# EOF")


def test_the_lifespan_starts_and_stops_the_backend(engine: Engine) -> None:
    seed(engine)
    backend = LocalBackend(engine)
    with serving(create_app(backend)) as base_url:
        assert (backend.started, backend.stopped) == (1, 0)
        assert backend.pings.running
        assert httpx.get(f"{base_url}/ping/{TOKEN}").status_code == 200
    assert (backend.started, backend.stopped) == (1, 1)
    assert not backend.pings.running
