"""The runtime end to end: a real config file, real checks (local commands, a local HTTP server), a real database.

Intervals are the minimum (1 s) and the startup spread zero, so each test sees a few rounds in seconds. Waits are
bounded polls, never fixed sleeps that assume a speed.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from tests.dbfixtures import FlakyDatabase, count_rows
from tests.monitors import servers
from tests.notify.receivers import HttpReceiver, http_receiver
from tests.waiting import until
from vigil.alerts.models import Alert, AlertSource, AlertStatus
from vigil.config import Settings
from vigil.db import Base, session_scope, upgrade
from vigil.engine import runtime as runtime_module
from vigil.engine.runtime import Runtime
from vigil.engine.states import ComponentVerdict
from vigil.incidents.service import open_incident, post_update
from vigil.monitors.models import Component, ComponentState, Monitor, PingKind, StateChange
from vigil.monitors.schemas import parse_monitor

pytest_plugins = ["tests.dbfixtures"]
pytestmark = pytest.mark.anyio

S = ComponentState


@pytest.fixture(scope="module")
def http_base() -> Iterator[str]:
    with servers.http_server() as base:
        yield base


def settings_for(url: str, tmp_path: Path) -> Settings:
    return Settings(
        environment="development",
        database_url=url,
        startup_spread=0.0,
        write_flush_interval=0.1,
        pid_file=str(tmp_path / "vigil.pid"),
    )


def config_text(flag: Path, http_base: str, *, extra: str = "") -> str:
    # hv's check passes while the flag file exists: deleting it is pulling the hypervisor's plug.
    check = f"import os, sys; sys.exit(0 if os.path.exists({str(flag)!r}) else 1)"
    return f"""
components:
  - id: hv
    kind: hypervisor
    monitors:
      - {{id: power, type: command, command: [{sys.executable!r}, "-c", {check!r}], interval: 1s, timeout: 900ms,
          failures_before_down: 1}}
  - {{id: vm1, kind: vm, runs_on: hv}}
  - id: vm2
    kind: vm
    runs_on: hv
    monitors:
      - {{id: web, type: http, url: "{http_base}/ok", interval: 1s, timeout: 900ms, failures_before_down: 1}}
  - id: backup
    kind: service
    monitors:
      - {{id: cron, type: heartbeat, token: backup-token-1, period: 1h, grace: 1h, interval: 1s, timeout: 900ms}}
{extra}"""


@pytest.fixture
async def setup(tmp_path: Path, http_base: str) -> AsyncIterator[tuple[Runtime, Path, Path]]:
    flag = tmp_path / "hv-powered"
    flag.touch()
    config = tmp_path / "vigil.yaml"
    config.write_text(config_text(flag, http_base), encoding="utf-8")
    runtime = Runtime(settings=settings_for(f"sqlite:///{tmp_path / 'vigil.db'}", tmp_path), paths=[config])
    await runtime.start()
    yield runtime, config, flag
    await runtime.stop()


async def test_states_follow_checks_and_the_model(setup: tuple[Runtime, Path, Path]) -> None:
    runtime, _, flag = setup
    events = runtime.events.subscribe()
    await until(lambda: runtime.verdicts.get("hv", None) is not None and runtime.verdicts["hv"].state is S.UP)
    await until(lambda: runtime.verdicts["vm2"].state is S.UP)
    assert runtime.verdicts["vm1"].state is S.UNKNOWN  # nobody watches it, nothing failed
    flag.unlink()
    await until(lambda: runtime.verdicts["hv"].state is S.DOWN)
    assert runtime.verdicts["vm1"].state is S.DOWN
    assert runtime.verdicts["vm1"].cause == "hv"
    assert runtime.verdicts["vm2"].state is S.UP  # its own monitor still answers: observation wins
    seen = [(e.component_id, e.monitor_id, e.to_state) for e in events.pending()]
    assert ("hv", "hv/power", S.DOWN) in seen
    assert ("hv", None, S.DOWN) in seen
    assert ("vm1", None, S.DOWN) in seen
    flag.touch()
    await until(lambda: runtime.verdicts["hv"].state is S.UP)
    await until(lambda: runtime.verdicts["vm1"].state is S.UNKNOWN)
    # The outbox has it all, in order, once the writer has run.
    await runtime.states.flush()
    with session_scope(runtime.database) as session:
        changes = session.scalars(select(StateChange).where(StateChange.component_id == "vm1")).all()
        assert [(c.to_state, c.cause) for c in changes][-2:] == [(S.DOWN, "hv"), (S.UNKNOWN, None)]
        assert session.get(Component, "hv").state is S.UP  # type: ignore[union-attr]
    await runtime.results.flush()
    assert count_rows(runtime.database, "check_results") >= 6


async def test_a_failure_ping_is_evaluated_at_once(setup: tuple[Runtime, Path, Path]) -> None:
    runtime, _, _ = setup
    await until(lambda: runtime.verdicts["backup"].state is S.UP)
    ping = await runtime.pings.record(
        token="backup-token-1", kind=PingKind.FAIL, at=datetime.now(UTC), body="disk full"
    )
    assert ping is not None
    await until(lambda: runtime.verdicts["backup"].state is S.DOWN, timeout=3)
    assert "failure" in runtime.verdicts["backup"].reason
    assert (
        await runtime.pings.record(token="no-such-token", kind=PingKind.SUCCESS, at=datetime.now(UTC), body=None)
        is None
    )


async def test_reload_applies_a_good_config_and_keeps_the_old_one_on_a_bad_one(
    setup: tuple[Runtime, Path, Path], http_base: str
) -> None:
    runtime, config, flag = setup
    await until(lambda: runtime.verdicts["hv"].state is S.UP)
    tracker = runtime._trackers["hv/power"]
    extra = f"""  - id: api
    kind: service
    monitors:
      - {{id: ok, type: http, url: "{http_base}/ok", interval: 1s, timeout: 900ms}}
      - {{id: broken, type: http, url: "not a url", interval: 1s, timeout: 900ms}}
"""
    config.write_text(config_text(flag, http_base, extra=extra), encoding="utf-8")
    assert await runtime.reload()
    assert runtime._trackers["hv/power"] is tracker  # unchanged monitor: same counters, same state
    assert "api/ok" in runtime.monitors
    assert [issue.path for issue in runtime.issues] == ["components[4].monitors[1].url"]
    await until(lambda: runtime.verdicts["api"].state is S.UP)

    config.write_text("components:\n  - {id: hv, kind: nonsense kind}\n", encoding="utf-8")
    assert not await runtime.reload()
    assert runtime.last_reload_error is not None and "kind" in runtime.last_reload_error
    assert "api/ok" in runtime.monitors  # the running config stays
    assert runtime.health()["last_reload_error"] == runtime.last_reload_error

    config.write_text(config_text(flag, http_base), encoding="utf-8")  # api leaves the config
    assert await runtime.reload()
    assert "api/ok" not in runtime.monitors
    with session_scope(runtime.database) as session:
        monitor = session.get(Monitor, "api/ok")
        assert monitor is not None and not monitor.enabled  # kept with its history, disabled
        component = session.get(Component, "api")
        assert component is not None and component.retired_at is not None


async def test_restart_restores_states_and_keeps_generated_tokens(tmp_path: Path, http_base: str) -> None:
    flag = tmp_path / "flag"
    flag.touch()
    config = tmp_path / "vigil.yaml"
    text = config_text(flag, http_base) + "      - {id: nightly, type: heartbeat, period: 1d}\n"
    config.write_text(text, encoding="utf-8")
    settings = settings_for(f"sqlite:///{tmp_path / 'vigil.db'}", tmp_path)
    first = Runtime(settings=settings, paths=[config])
    await first.start()
    await until(lambda: first.verdicts.get("hv") is not None and first.verdicts["hv"].state is S.UP)
    token = first.sync_report.tokens["backup/nightly"]
    await first.stop()
    second = Runtime(settings=settings, paths=[config])
    events = second.events.subscribe()
    await second.start()
    try:
        assert second.sync_report.tokens["backup/nightly"] == token  # the ping URL survives a restart
        assert second.verdicts["hv"].state is S.UP  # restored before any check ran
        await asyncio.sleep(1.5)
        assert not [e for e in events.pending() if e.component_id == "hv"]  # no storm of "changes"
    finally:
        await second.stop()


async def test_the_runtime_survives_a_database_outage(flaky_db: FlakyDatabase, tmp_path: Path, http_base: str) -> None:
    Base.metadata.drop_all(flaky_db.direct)
    upgrade(flaky_db.direct)
    flag = tmp_path / "flag"
    flag.touch()
    config = tmp_path / "vigil.yaml"
    config.write_text(config_text(flag, http_base), encoding="utf-8")
    runtime = Runtime(settings=settings_for("sqlite://", tmp_path), paths=[config], database=flaky_db.engine)
    await runtime.start()
    try:
        await until(lambda: runtime.verdicts.get("hv") is not None and runtime.verdicts["hv"].state is S.UP)
        flaky_db.down()
        flag.unlink()  # hv fails while the database is away
        await until(lambda: runtime.verdicts["hv"].state is S.DOWN)
        await until(lambda: runtime.results.unavailable or runtime.states.unavailable)
        assert runtime.health()["database"] == "unavailable"
        assert runtime.scheduler.stats.finished > 0
        flaky_db.up()
        await until(lambda: not runtime.states.unavailable and runtime.states.pending == 0, timeout=20)
        await runtime.results.flush()
        assert runtime.results.pending == 0
    finally:
        await runtime.stop()
    with session_scope(flaky_db.direct) as session:
        downs = session.scalars(
            select(StateChange).where(StateChange.component_id == "hv", StateChange.to_state == S.DOWN)
        ).all()
        assert len(downs) == 1  # the change made during the outage reached the outbox afterwards
    assert count_rows(flaky_db.direct, "check_results") > 0


async def test_component_states_are_derived_off_the_loop_and_a_stale_derivation_is_dropped(
    setup: tuple[Runtime, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A derivation takes 0.1-0.3 s on a large model under a storm: it runs in the states thread, so that the
    # loop keeps starting checks; one overtaken by a newer derivation must not apply its older verdicts.
    runtime, _, flag = setup
    await until(lambda: runtime.verdicts.get("hv") is not None and runtime.verdicts["hv"].state is S.UP)
    real = runtime_module.component_states
    threads: list[str] = []
    release = threading.Event()

    def slow(*args: Any) -> Any:
        threads.append(threading.current_thread().name)
        if len(threads) == 1:
            release.wait(10)  # the first one is held back while the loop goes on, and comes back stale:
            return {cid: ComponentVerdict(S.UNKNOWN) for cid in args[0].components}  # applied, it would show
        return real(*args)

    monkeypatch.setattr(runtime_module, "component_states", slow)
    flag.unlink()  # hv fails: its monitor's change starts a derivation in the thread
    await until(lambda: len(threads) >= 1)
    ticks = 0
    for _ in range(5):  # the loop is not blocked by the derivation in flight
        await asyncio.sleep(0.01)
        ticks += 1
    assert ticks == 5 and runtime.verdicts["hv"].state is S.UP  # not applied yet
    runtime._recompute()  # newer: on the loop, from the same monitors; the held one is now stale
    assert runtime.verdicts["hv"].state is S.DOWN
    release.set()
    await until(lambda: not runtime._recomputing)
    await asyncio.sleep(0.1)  # its done callback has run: nothing it returned was applied
    assert threads[0].startswith("vigil-states")
    assert runtime.verdicts["hv"].state is S.DOWN and runtime.verdicts["vm1"].cause == "hv"


async def test_a_firing_alert_is_observed_like_a_monitor_and_explains_the_dependants(
    setup: tuple[Runtime, Path, Path],
) -> None:
    # hv's own monitor passes, but Alertmanager says it is down: hv is down (the worse of the two), vm1 (which
    # nobody watches) is down caused by hv, and when the alert resolves hv is up again from its monitor.
    runtime, _, _ = setup
    await until(lambda: runtime.verdicts.get("hv") is not None and runtime.verdicts["hv"].state is S.UP)
    now = datetime.now(UTC)
    with session_scope(runtime.database) as session:
        row = Alert(
            source=AlertSource.ALERTMANAGER,
            fingerprint="fp-hv",
            status=AlertStatus.FIRING,
            component_id="hv",
            labels={"alertname": "HostDown"},
            annotations={},
            starts_at=now,
            first_seen_at=now,
            last_seen_at=now,
            payload={},
        )
        session.add(row)
    await asyncio.to_thread(runtime.alerts_changed)  # as the web app calls it, from a worker thread
    await until(lambda: runtime.verdicts["hv"].state is S.DOWN)
    assert "HostDown" in runtime.verdicts["hv"].reason
    await until(lambda: runtime.verdicts["vm1"].state is S.DOWN)
    assert runtime.verdicts["vm1"].cause == "hv"
    with session_scope(runtime.database) as session:
        session.execute(update(Alert).values(status=AlertStatus.RESOLVED))
    runtime.alerts_changed()
    await until(lambda: runtime.verdicts["hv"].state is S.UP)
    await until(lambda: runtime.verdicts["vm1"].state is S.UNKNOWN)


def runtime_telling(receiver: HttpReceiver, tmp_path: Path, http_base: str) -> tuple[Runtime, Path]:
    """A runtime (not started) on the test config whose one route sends every incident change to ``receiver``;
    and the flag file whose removal fails hv."""
    flag = tmp_path / "hv-powered"
    flag.touch()
    channels = (
        "notifications:\n  channels:\n"
        f"    - {{id: hook, type: webhook, url: '{receiver.url()}', secret: s3cret-s3cret-s3cret, timeout: 5}}\n"
        "  routes:\n    - {channels: [hook]}\n"
    )
    config = tmp_path / "vigil.yaml"
    config.write_text(config_text(flag, http_base, extra=channels), encoding="utf-8")
    return Runtime(settings=settings_for(f"sqlite:///{tmp_path / 'vigil.db'}", tmp_path), paths=[config]), flag


async def test_a_person_s_update_reaches_the_channel_through_the_running_server(tmp_path: Path, http_base: str) -> None:
    # The whole path of a change made outside the engine: the service marks it, the dispatcher's loop (not a
    # test calling it) queues it and sends it to the route's webhook.
    async with http_receiver() as receiver:
        runtime, _ = runtime_telling(receiver, tmp_path, http_base)
        await runtime.start()
        try:
            with session_scope(runtime.database) as session:
                incident_id = open_incident(session=session, title="Backups failing", components=["backup"]).id
                post_update(session=session, incident_id=incident_id, body="Disk replaced; rerunning.")
            await until(lambda: len(receiver.requests) >= 2)
        finally:
            await runtime.stop()
    documents = [r.json() for r in receiver.requests]
    assert [d["change"] for d in documents] == ["opened", "update"]
    assert documents[1]["update"]["body"] == "Disk replaced; rerunning."


async def test_a_failure_reaches_the_channel_by_wake_ups_not_polls(tmp_path: Path, http_base: str) -> None:
    # An idle server polls nothing every second: the state writer's commit wakes the incident worker, the
    # worker's commit wakes the dispatcher. With both polls a minute away, a failure is still told in seconds;
    # so is a person's change the web app reports (incidents_changed).
    async with http_receiver() as receiver:
        runtime, flag = runtime_telling(receiver, tmp_path, http_base)
        runtime.incidents._poll_interval = 60.0
        runtime.notify._poll_interval = 60.0
        await runtime.start()
        try:
            await until(lambda: runtime.verdicts.get("hv") is not None and runtime.verdicts["hv"].state is S.UP)
            await asyncio.sleep(0.5)  # the first rounds at start are over; the next polls are a minute away
            flag.unlink()
            await until(lambda: len(receiver.requests) >= 1)
            assert receiver.requests[0].json()["incident"]["probable_cause"] == "hv"
            with session_scope(runtime.database) as session:
                post_update(session=session, incident_id=receiver.requests[0].json()["incident"]["id"], body="On it.")
            await asyncio.sleep(0.5)
            assert len(receiver.requests) == 1  # marked in the database, not told: nobody woke the dispatcher
            await asyncio.to_thread(runtime.incidents_changed)  # as the web app calls it, after its commit
            await until(lambda: len(receiver.requests) >= 2)
        finally:
            await runtime.stop()
    assert receiver.requests[1].json()["change"] == "update"


async def test_the_runtime_s_clients_open_as_many_connections_as_checks_may_run(tmp_path: Path) -> None:
    # Below the scheduler's concurrency, the client's own cap would queue checks with their timeout running.
    settings = settings_for(f"sqlite:///{tmp_path / 'v.db'}", tmp_path).model_copy(update={"check_concurrency": 900})
    runtime = Runtime(settings=settings, paths=[])
    assert runtime._context.http is not None
    spec = parse_monitor({"type": "http", "url": "http://127.0.0.1:9/"})
    client = runtime._context.http.for_spec(spec)  # type: ignore[arg-type]
    try:
        assert client.curl._max_connections == 900
    finally:
        await runtime._context.http.aclose()
