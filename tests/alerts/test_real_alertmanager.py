"""The real Prometheus Alertmanager posting to a real Vigil: an alert fires, Vigil records it and takes the
component down; the alert ends, Alertmanager sends it resolved, the component comes back up.

Needs /usr/bin/prometheus-alertmanager (Debian: ``apt-get install -y prometheus-alertmanager``); skipped only
when it is absent. Alertmanager runs on free ports of 127.0.0.1 with clustering off and its storage in tmp, and
is killed at the end. Waits are bounded.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select

from tests.alerts.support import TOKEN, Vigil, cels_model, seed_cels, state_of, vigil_server
from vigil.alerts.models import Alert, AlertStatus
from vigil.db import session_scope
from vigil.monitors.models import ComponentState

pytest_plugins = ["tests.dbfixtures"]

BINARY = "/usr/bin/prometheus-alertmanager"
WAIT = 30.0  # seconds, for each step; group_wait and group_interval are 1 s


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait(what: str, condition: Callable[[], bool], log: Path) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {WAIT:g} s; alertmanager said:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)


@pytest.fixture
def binary() -> str:
    if shutil.which(BINARY) is None:
        pytest.skip(f"{BINARY} is absent (apt-get install -y prometheus-alertmanager)")
    return BINARY


@contextmanager
def running_alertmanager(binary: str, vigil: Vigil, tmp_path: Path) -> Iterator[str]:
    """Start Alertmanager with a webhook receiver pointing at ``vigil``; yield its URL; kill it after."""
    config = {
        "route": {
            "receiver": "vigil",
            "group_by": ["alertname"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "vigil",
                "webhook_configs": [
                    {
                        "url": f"{vigil.url}/api/v1/integrations/alertmanager",
                        "send_resolved": True,
                        "http_config": {"authorization": {"credentials": TOKEN}},
                    }
                ],
            }
        ],
    }
    (tmp_path / "am.yml").write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    (tmp_path / "am-data").mkdir()
    port = _free_port()
    log = tmp_path / "am.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={tmp_path / 'am.yml'}",
                f"--storage.path={tmp_path / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait("alertmanager ready", lambda: _ready(url) or process.poll() is not None, log)
        assert process.poll() is None, log.read_text(errors="replace")
        yield url
    finally:
        process.kill()
        process.wait(timeout=10)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _alert(engine: Engine) -> Alert | None:
    with session_scope(engine) as session:
        return session.scalars(select(Alert)).first()


def test_a_real_alertmanager_fires_and_resolves_through_vigil(engine: Engine, tmp_path: Path, binary: str) -> None:
    seed_cels(engine, cels_model())
    with vigil_server(engine, tmp_path) as vigil, running_alertmanager(binary, vigil, tmp_path) as am:
        labels = {"alertname": "HostDown", "instance": "vserver8:9100", "severity": "critical"}
        start = datetime.now(UTC) - timedelta(seconds=5)
        body = [{"labels": labels, "annotations": {"summary": "vserver8 is down"}, "startsAt": start.isoformat()}]
        assert httpx.post(f"{am}/api/v2/alerts", json=body, timeout=5).status_code == 200
        log = tmp_path / "am.log"
        _wait("Vigil recorded the firing alert", lambda: (a := _alert(engine)) is not None and bool(a.labels), log)
        _wait("vserver8 down", lambda: state_of(engine, "vserver8") is ComponentState.DOWN, log)
        firing = _alert(engine)
        assert firing is not None and firing.status is AlertStatus.FIRING and firing.component_id == "vserver8"
        assert firing.group_key and firing.payload["receiver"] == "vigil" and len(firing.fingerprint) == 16

        body[0]["endsAt"] = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
        assert httpx.post(f"{am}/api/v2/alerts", json=body, timeout=5).status_code == 200
        _wait("vserver8 up again", lambda: state_of(engine, "vserver8") is ComponentState.UP, log)
        resolved = _alert(engine)
        assert resolved is not None and resolved.status is AlertStatus.RESOLVED
        assert resolved.fingerprint == firing.fingerprint  # one row: deduplicated by fingerprint
