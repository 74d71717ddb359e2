"""Shared pieces of the alerts tests: a server with a token and a mapping, payload builders, row counts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from sqlalchemy import Engine, func, select

from tests.conftest import EXAMPLES
from tests.web.support import LocalBackend, serving
from vigil.alerts.models import Alert
from vigil.config import Settings
from vigil.db import session_scope
from vigil.incidents.worker import ensure_cursor
from vigil.model.loader import load_model
from vigil.model.types import Model
from vigil.monitors.models import Component, ComponentState, StateChange
from vigil.web.app import create_app

TOKEN = "integration-token-" + "t" * 24
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAPPING = """\
rules:
  - match: {instance: "vserver8:9100"}
    component: vserver8
  - match: {instance: "vserver3:9100"}
    component: vserver3
  - match: {instance: "vserver-ha1:9100"}
    component: vserver-ha1
  - match: {instance: "ghost:9100"}
    component: no-such-component
"""
ZERO = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt while an alert fires


class AlertBackend(LocalBackend):
    """A backend whose settings hold the integration token (None: unset) and the mapping file."""

    def __init__(self, engine: Engine, *, token: str | None, mapping: Path | None) -> None:
        super().__init__(engine)
        self.settings = Settings(
            environment="development", integration_token=SecretStr(token or ""), alert_mapping=mapping
        )


def cels_model() -> Model:
    return load_model([EXAMPLES / "cels-2022.yaml"])


def seed_cels(engine: Engine, model: Model) -> None:
    """The CELS components, all up, and the incident worker's cursor at the end of the (empty) outbox."""
    with session_scope(engine) as session:
        for comp in model.components.values():
            up = ComponentState.UP
            session.add(Component(id=comp.id, name=comp.name or comp.id, kind=comp.kind, tier=comp.tier, state=up))
        session.flush()
        ensure_cursor(session=session)


@dataclass
class Vigil:
    http: httpx.Client
    engine: Engine
    url: str


@contextmanager
def vigil_server(
    engine: Engine, tmp_path: Path, *, token: str | None = TOKEN, mapping: str = MAPPING
) -> Iterator[Vigil]:
    path = tmp_path / "alert-mapping.yaml"
    path.write_text(mapping, encoding="utf-8")
    backend = AlertBackend(engine, token=token, mapping=path)
    with serving(create_app(backend)) as url, httpx.Client(base_url=url, timeout=10) as http:
        yield Vigil(http, engine, url)


def alert(
    fingerprint: str,
    status: str = "firing",
    *,
    starts: str = "2026-03-01T12:00:00Z",
    ends: str = ZERO,
    **labels: str,
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "HostDown", **labels},
        "annotations": {"summary": f"{labels.get('instance', '?')} is down"},
        "startsAt": starts,
        "endsAt": ends,
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": fingerprint,
    }


def notification(*alerts: dict[str, Any], group_key: str = '{}:{alertname="HostDown"}') -> dict[str, Any]:
    firing = any(a["status"] == "firing" for a in alerts)
    return {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": "firing" if firing else "resolved",
        "receiver": "vigil",
        "groupLabels": {"alertname": "HostDown"},
        "commonLabels": {"alertname": "HostDown"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


def count(engine: Engine, table: type[Alert] | type[StateChange]) -> int:
    with session_scope(engine) as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def state_of(engine: Engine, component_id: str) -> ComponentState:
    with session_scope(engine) as session:
        comp = session.get(Component, component_id)
        assert comp is not None
        return comp.state


def changes(engine: Engine) -> list[tuple[str | None, ComponentState, str | None]]:
    with session_scope(engine) as session:
        rows = session.scalars(select(StateChange).order_by(StateChange.id))
        return [(r.component_id, r.to_state, r.cause) for r in rows]
