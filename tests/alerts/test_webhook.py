"""The generic JSON webhook: a component named outright, deduplicated by id, ``up`` resolves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.alerts.support import AUTH, Vigil, cels_model, changes, count, seed_cels, state_of, vigil_server
from vigil.alerts.models import Alert
from vigil.monitors.models import ComponentState, StateChange

pytest_plugins = ["tests.dbfixtures"]

S = ComponentState
PATH = "/api/v1/integrations/webhook"


@pytest.fixture
def vigil(engine: Engine, tmp_path: Path) -> Iterator[Vigil]:
    seed_cels(engine, cels_model())
    with vigil_server(engine, tmp_path) as server:
        yield server


def test_down_then_up_with_the_same_id(vigil: Vigil) -> None:
    body = {"id": "backup-42", "component": "vserver3", "status": "degraded", "summary": "backups slow"}
    assert vigil.http.post(PATH, json=body, headers=AUTH).json()["state_changes"] == 1
    assert state_of(vigil.engine, "vserver3") is S.DEGRADED
    assert vigil.http.post(PATH, json={**body, "status": "down"}, headers=AUTH).status_code == 200
    assert vigil.http.post(PATH, json={**body, "status": "up"}, headers=AUTH).status_code == 200
    assert changes(vigil.engine) == [
        ("vserver3", S.DEGRADED, None),
        ("vserver3", S.DOWN, None),
        ("vserver3", S.UP, None),
    ]
    assert count(vigil.engine, Alert) == 1
    (listed,) = vigil.http.get("/api/v1/alerts").json()["alerts"]
    assert listed["source"] == "webhook" and listed["status"] == "resolved" and listed["annotations"]["summary"]


def test_an_unknown_component_is_recorded_without_a_change(vigil: Vigil) -> None:
    answer = vigil.http.post(PATH, json={"id": "x", "component": "nope", "status": "down"}, headers=AUTH)
    assert answer.json()["alerts"][0]["note"] == "the webhook's component names unknown component 'nope'"
    assert count(vigil.engine, Alert) == 1 and count(vigil.engine, StateChange) == 0


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"id": "x", "component": "vserver3", "status": "sideways"}, ["body", "status"]),
        ({"component": "vserver3", "status": "down"}, ["body", "id"]),
        ({"id": "x", "status": "down"}, ["body", "component"]),
        ({"id": "x", "component": "vserver3", "status": "down", "colour": "red"}, ["body", "colour"]),
    ],
)
def test_bad_bodies_are_refused_and_change_nothing(vigil: Vigil, body: dict[str, str], loc: list[str]) -> None:
    answer = vigil.http.post(PATH, json=body, headers=AUTH)
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == loc
    assert count(vigil.engine, Alert) == 0 and count(vigil.engine, StateChange) == 0


def test_the_token_is_needed(vigil: Vigil) -> None:
    body = {"id": "x", "component": "vserver3", "status": "down"}
    assert vigil.http.post(PATH, json=body).status_code == 401
    assert count(vigil.engine, Alert) == 0
