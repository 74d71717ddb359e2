"""The maintenance API on a real server: reads open, writes behind the secret key, the what-if refusal (409),
errors naming the field (422)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine

from tests.conftest import EXAMPLES
from tests.web.support import LocalBackend, serving
from vigil.config import Settings
from vigil.model.loader import load_model
from vigil.web.app import create_app

pytest_plugins = ["tests.dbfixtures"]

KEY = "k" * 40
AUTH = {"Authorization": f"Bearer {KEY}"}
WINDOW = {"title": "Backup server to SSDs", "starts_at": "2026-03-01T22:00:00Z", "ends_at": "2026-03-02T00:00:00Z"}


class ModelBackend(LocalBackend):
    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.settings = Settings(environment="development", secret_key=SecretStr(KEY))
        self.model = load_model([EXAMPLES / "pythonanywhere-2014.yaml"])


@pytest.fixture
def client(engine: Engine) -> Iterator[httpx.Client]:
    with serving(create_app(ModelBackend(engine))) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield http


def test_schedule_is_refused_with_the_findings_then_forced_then_cancelled(client: httpx.Client) -> None:
    body = {**WINDOW, "components": ["backup-server"]}
    assert client.post("/api/v1/maintenance", json=body).status_code == 401
    refused = client.post("/api/v1/maintenance", json=body, headers=AUTH)
    assert refused.status_code == 409
    findings = refused.json()["detail"]["findings"]
    assert {f["service"] for f in findings} == {"web", "console", "scheduled-tasks"}
    assert client.get("/api/v1/maintenance").json() == {"maintenance": []}
    forced = client.post("/api/v1/maintenance", json={**body, "force": True}, headers=AUTH)
    assert forced.status_code == 201, forced.text
    doc = forced.json()
    assert doc["forced"] and doc["status"] == "scheduled" and doc["components"] == ["backup-server"]
    assert client.get(f"/api/v1/maintenance/{doc['id']}").json()["findings"] == findings
    assert client.post(f"/api/v1/maintenance/{doc['id']}/cancel").status_code == 401
    cancelled = client.post(f"/api/v1/maintenance/{doc['id']}/cancel", headers=AUTH)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = client.post(f"/api/v1/maintenance/{doc['id']}/cancel", headers=AUTH)
    assert again.status_code == 422 and again.json()["detail"][0]["loc"] == ["body", "status"]
    listed = client.get("/api/v1/maintenance", params={"status": "cancelled"}).json()["maintenance"]
    assert [m["id"] for m in listed] == [doc["id"]]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"ends_at": "2026-03-01T21:00:00Z", "components": ["web1"]}, "ends_at"),
        ({"components": ["nope"]}, "components"),
        ({"components": []}, "components"),
        ({"components": ["web1"], "starts_at": "tonight"}, "starts_at"),
        ({"components": ["web1"], "colour": "red"}, "colour"),
    ],
)
def test_bad_input_is_422_naming_the_field(client: httpx.Client, change: dict[str, object], field: str) -> None:
    answer = client.post("/api/v1/maintenance", json={**WINDOW, **change}, headers=AUTH)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"] == ["body", field]


def test_an_unknown_window_is_404(client: httpx.Client) -> None:
    assert client.get("/api/v1/maintenance/999").status_code == 404
    assert client.post("/api/v1/maintenance/999/cancel", headers=AUTH).status_code == 404
