"""`vigil serve`, `vigil reload`, `vigil heartbeats` and `vigil db upgrade` as a user runs them: real processes,
a real port on 127.0.0.1, a SQLite file. Each wait is a bounded poll."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from vigil.db import head_revision

VIGIL = [sys.executable, "-m", "vigil.cli"]


def vigil(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*VIGIL, *args], env=env, capture_output=True, text=True, timeout=60)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environment(tmp_path: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update(
        VIGIL_ENVIRONMENT="development",
        VIGIL_DATABASE_URL=f"sqlite:///{tmp_path / 'vigil.db'}",
        VIGIL_PID_FILE=str(tmp_path / "vigil.pid"),
        VIGIL_PORT=str(port),
        VIGIL_STARTUP_SPREAD="0",
    )
    return env


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def until(condition: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except (OSError, ValueError, KeyError):
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


CONFIG = """
components:
  - id: self
    kind: service
    monitors:
      - {{id: healthz, type: http, url: "http://127.0.0.1:{port}/healthz", interval: 1s, timeout: 900ms}}
  - id: job
    kind: service
    monitors:
      - {{id: cron, type: heartbeat, token: job-token-1234, period: 1h, interval: 1s, timeout: 900ms}}
      - {{id: bad, type: tcp, host: 127.0.0.1}}
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path, dict[str, str]]]:
    port = free_port()
    config = tmp_path / "vigil.yaml"
    config.write_text(CONFIG.format(port=port), encoding="utf-8")
    env = environment(tmp_path, port)
    process = subprocess.Popen(
        [*VIGIL, "serve", str(config)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        until(lambda: get(f"{base}/healthz")[0] == 200)
        yield process, base, config, env
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def test_serve_checks_reloads_and_stops_cleanly(
    server: tuple[subprocess.Popen[str], str, Path, dict[str, str]], tmp_path: Path
) -> None:
    process, base, config, env = server
    health = json.loads(get(f"{base}/healthz")[1])
    assert health["status"] == "ok"
    assert [issue for issue in health["config_issues"] if "components[1].monitors[1].port" in issue]

    # The engine checks its own /healthz; the component turns up through the JSON API and /metrics.
    until(lambda: json.loads(get(f"{base}/api/v1/components/self")[1])["state"] == "up")
    metrics = get(f"{base}/metrics")[1]
    assert 'vigil_monitor_up{component="self",monitor="self/healthz",type="http"} 1.0' in metrics

    # A heartbeat ping is accepted and the failure variant takes the job down at once.
    assert get(f"{base}/ping/job-token-1234")[0] == 200
    until(lambda: json.loads(get(f"{base}/api/v1/components/job")[1])["state"] == "up")
    assert get(f"{base}/ping/job-token-1234/fail")[0] == 200
    until(lambda: json.loads(get(f"{base}/api/v1/components/job")[1])["state"] == "down", timeout=5)
    assert get(f"{base}/ping/not-a-known-token")[0] == 404

    # `vigil heartbeats` lists the ping URL from the database.
    listing = vigil("heartbeats", env=env)
    assert "job/cron" in listing.stdout and "/ping/job-token-1234" in listing.stdout

    # `vigil reload`: a new component appears without a restart; a broken config keeps the running one.
    config.write_text(config.read_text() + "  - {id: extra, kind: service}\n", encoding="utf-8")
    reload = vigil("reload", env=env)
    assert reload.returncode == 0, reload.stderr
    until(lambda: get(f"{base}/api/v1/components/extra")[0] == 200)
    config.write_text("components: [{id: x, kind: Bad Kind}]\n", encoding="utf-8")
    os.kill(process.pid, signal.SIGHUP)
    until(lambda: json.loads(get(f"{base}/healthz")[1])["last_reload_error"])
    assert get(f"{base}/api/v1/components/extra")[0] == 200

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert not (tmp_path / "vigil.pid").exists()


def test_serve_refuses_a_broken_config_with_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "vigil.yaml"
    config.write_text("components:\n  - {id: a, kind: service, runs_on: nowhere}\n", encoding="utf-8")
    done = vigil("serve", str(config), env=environment(tmp_path, free_port()))
    assert done.returncode == 2
    assert "vigil.yaml:2: components[0].runs_on" in done.stderr
    assert "nothing was started" in done.stderr


def test_serve_reports_a_port_in_use(tmp_path: Path) -> None:
    config = tmp_path / "vigil.yaml"
    config.write_text("components: [{id: a, kind: service}]\n", encoding="utf-8")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = vigil("serve", str(config), env=environment(tmp_path, port))
    assert done.returncode == 1
    assert "did not start" in done.stderr or "address already in use" in done.stderr.lower()


def test_reload_without_a_server_says_so(tmp_path: Path) -> None:
    done = vigil("reload", env=environment(tmp_path, free_port()))
    assert done.returncode == 1
    assert "no pid file" in done.stderr
    (tmp_path / "vigil.pid").write_text("999999999\n")
    done = vigil("reload", env=environment(tmp_path, free_port()))
    assert done.returncode == 1
    assert "not running" in done.stderr


def test_db_upgrade_migrates_and_says_where(tmp_path: Path) -> None:
    env = environment(tmp_path, free_port())
    done = vigil("db", "upgrade", env=env)
    assert done.returncode == 0, done.stderr
    assert f"is at revision {head_revision()}" in done.stderr  # the newest migration, whichever it is
    env["VIGIL_DATABASE_URL"] = f"sqlite:///{tmp_path / 'missing' / 'dir' / 'vigil.db'}"
    done = vigil("db", "upgrade", env=env)
    assert done.returncode == 1
    assert "cannot migrate" in done.stderr


def test_production_refuses_to_start_without_a_secret(tmp_path: Path) -> None:
    config = tmp_path / "vigil.yaml"
    config.write_text("components: [{id: a, kind: service}]\n", encoding="utf-8")
    env = environment(tmp_path, free_port())
    env["VIGIL_ENVIRONMENT"] = "production"
    done = vigil("serve", str(config), env=env)
    assert done.returncode == 2
    assert "VIGIL_SECRET_KEY" in done.stderr
