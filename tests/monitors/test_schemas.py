from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from vigil.monitors.schemas import (
    CommandMonitorSpec,
    HeartbeatMonitorSpec,
    HttpMonitorSpec,
    MonitorSpec,
    PostgresMonitorSpec,
    TcpMonitorSpec,
    monitor_json_schema,
    parse_monitor,
    split_nameserver,
)


def errors(data: dict[str, Any]) -> list[tuple[str, str]]:
    """Return (dotted field path, message) for each problem, without the union tags, as the loader shows them."""
    with pytest.raises(ValidationError) as caught:
        parse_monitor(data)
    found = []
    for error in caught.value.errors():
        path = ".".join(str(part) for part in error["loc"] if not str(part).startswith("<"))
        found.append((path, error["msg"]))
    return found


def test_defaults() -> None:
    spec = parse_monitor({"type": "http", "url": "https://example.com/health"})
    assert isinstance(spec, HttpMonitorSpec)
    assert (spec.interval, spec.timeout, spec.failures_before_down, spec.successes_before_up) == (60, 10, 2, 1)
    assert (spec.method, spec.expected_status, spec.verify_tls, spec.follow_redirects) == (
        "GET",
        ((200, 399),),
        True,
        True,
    )
    assert spec.max_body == 1024 * 1024
    assert spec.monitor_id == "http:https://example.com/health"
    assert spec.latency_limit() is None


@pytest.mark.parametrize(
    ("data", "monitor_id"),
    [
        ({"type": "tcp", "host": "db1", "port": 5432}, "tcp:db1:5432"),
        ({"type": "tls", "host": "example.com"}, "tls:example.com:443"),
        ({"type": "dns", "name": "example.com", "record_type": "mx"}, "dns:example.com/MX"),
        ({"type": "command", "command": "pg_isready -h 'db 1'"}, "command:pg_isready -h 'db 1'"),
        ({"type": "heartbeat", "id": "nightly-backup"}, "nightly-backup"),
        ({"type": "postgres", "dsn": "postgresql://app:s3cret@db:5433/shop"}, "postgres:db:5433/shop"),
        ({"type": "postgres", "host": "db", "user": "app", "password": "s3cret"}, "postgres:db:5432/app"),
        ({"type": "redis", "url": "redis://:s3cret@cache:6380/1"}, "redis:redis://cache:6380"),
        (
            {"type": "http", "url": "https://bot:s3cret@example.com/x", "method": "HEAD"},
            "http:HEAD:https://example.com/x",
        ),
    ],
)
def test_ids_leave_secrets_out(data: dict[str, Any], monitor_id: str) -> None:
    spec = parse_monitor(data)
    assert spec.monitor_id == monitor_id
    if spec.type != "http":  # an HTTP URL is not a secret field; only its id leaves the userinfo out
        assert "s3cret" not in repr(spec)


def test_command_string_is_split() -> None:
    spec = parse_monitor({"type": "command", "command": "check_disk -w '10%' /var"})
    assert isinstance(spec, CommandMonitorSpec)
    assert spec.command == ["check_disk", "-w", "10%", "/var"]


def test_postgres_conninfo_keeps_the_password() -> None:
    spec = parse_monitor({"type": "postgres", "host": "db", "user": "app", "password": "s3cret", "dbname": "shop"})
    assert isinstance(spec, PostgresMonitorSpec)
    assert "password=s3cret" in spec.conninfo()


def test_heartbeat_defaults() -> None:
    spec = parse_monitor({"type": "heartbeat"})
    assert isinstance(spec, HeartbeatMonitorSpec)
    assert (spec.period, spec.grace, spec.failures_before_down) == (86400, 3600, 1)


def test_status_forms() -> None:
    spec = parse_monitor({"type": "http", "url": "http://x/", "expected_status": ["2xx", 418, "300 - 302"]})
    assert isinstance(spec, HttpMonitorSpec)
    assert spec.expected_status == ((200, 299), (418, 418), (300, 302))


@pytest.mark.parametrize(
    ("data", "path", "message"),
    [
        ({"type": "http", "url": "ftp://x"}, "url", "is not an http:// or https:// URL"),
        ({"type": "http", "url": "http://x", "interval": "5s"}, "timeout", "timeout (10s) must be shorter"),
        ({"type": "http", "url": "http://x", "timeout": "2m"}, "timeout", "must be shorter than the interval (60s)"),
        ({"type": "http", "url": "http://x", "interval": 30}, "interval", "needs a unit"),
        ({"type": "http", "url": "http://x", "interval": "500ms"}, "interval", "must be at least 1s"),
        ({"type": "http", "url": "http://x", "interval": "soon"}, "interval", "is not a duration"),
        ({"type": "http", "url": "http://x", "expected_status": "600"}, "expected_status", "from 100 to 599"),
        ({"type": "http", "url": "http://x", "expected_status": ["ok"]}, "expected_status", "is not a status code"),
        ({"type": "http", "url": "http://x", "regex": "a("}, "regex", "invalid regular expression"),
        ({"type": "http", "url": "http://x", "json_path": "status"}, "json_path", "starts with '$'"),
        ({"type": "http", "url": "http://x", "json_path": "$.a = 1"}, "json_path", "expected .key, [index], =="),
        ({"type": "http", "url": "http://x", "json_path": "$.a == ok"}, "json_path", "is not a JSON value"),
        ({"type": "http", "url": "http://x", "method": "FETCH"}, "method", "Input should be"),
        ({"type": "http", "url": "http://x", "max_body": "lots"}, "max_body", "could not parse value and unit"),
        ({"type": "http", "url": "http://x", "verify_tls": "maybe"}, "verify_tls", "valid boolean"),
        (
            {"type": "http", "url": "http://x", "degraded_if": {"latency_ms_above": -1}},
            "degraded_if.latency_ms_above",
            "",
        ),
        ({"type": "http", "url": "http://x", "degraded_if": {"loss": 1}}, "degraded_if.loss", "Extra inputs"),
        (
            {"type": "http", "url": "http://x", "failures_before_down": 0},
            "failures_before_down",
            "greater than or equal to 1",
        ),
        ({"type": "http", "url": "http://x", "id": "has space"}, "id", "should match pattern"),
        ({"type": "http", "url": "http://x", "colour": "red"}, "colour", "Extra inputs are not permitted"),
        ({"type": "tcp", "host": "db"}, "port", "Field required"),
        ({"type": "tcp", "host": "db", "port": 70000}, "port", "less than or equal to 65535"),
        ({"type": "tcp", "host": "d b", "port": 1}, "host", "should match pattern"),
        ({"type": "tls", "host": "x", "degraded_days": -1}, "degraded_days", "greater than or equal to 0"),
        ({"type": "dns", "name": "x", "record_type": "SRV"}, "record_type", "'A', 'AAAA', 'CNAME', 'MX' or 'TXT'"),
        ({"type": "dns", "name": "x", "nameserver": "ns1.example.com"}, "nameserver", "must be an IP address"),
        ({"type": "dns", "name": "x", "nameserver": "127.0.0.1:99999"}, "nameserver", "out of range"),
        ({"type": "command", "command": []}, "command", "at least 1 item"),
        ({"type": "command", "command": "echo 'open"}, "command", "No closing quotation"),
        (
            {"type": "command", "command": "true", "expected_exit_code": 256},
            "expected_exit_code",
            "less than or equal to 255",
        ),
        ({"type": "heartbeat", "period": "often"}, "period", "is not a duration"),
        ({"type": "postgres"}, "", "give either dsn or host"),
        ({"type": "postgres", "dsn": "host=db", "host": "db"}, "", "give either dsn or host"),
        ({"type": "postgres", "dsn": "nonsense without equals"}, "dsn", "invalid dsn"),
        ({"type": "redis", "url": "http://cache"}, "url", "must start with redis://"),
        ({"type": "smtp", "host": "x"}, "", "type must be one of http, tcp"),
        ({"host": "x"}, "", "type must be one of"),
    ],
)
def test_bad_field(data: dict[str, Any], path: str, message: str) -> None:
    found = errors(data)
    assert any(where == path and message in text for where, text in found), found


def test_latency_limits() -> None:
    assert parse_monitor({"type": "http", "url": "http://x", "max_latency": "2s"}).latency_limit() == 2
    tcp = parse_monitor({"type": "tcp", "host": "x", "port": 1, "degraded_if": {"latency_ms_above": 250}})
    assert tcp.latency_limit() == 0.25
    both = {"type": "http", "url": "http://x", "max_latency": "2s", "degraded_if": {"latency_ms_above": 5}}
    assert errors(both) == [("", "Value error, give either max_latency or degraded_if.latency_ms_above, not both")]


def test_specs_are_frozen() -> None:
    spec = TcpMonitorSpec.model_validate({"type": "tcp", "host": "x", "port": 1})
    with pytest.raises(ValidationError, match="frozen"):
        spec.port = 2  # type: ignore[misc]


def test_json_schema() -> None:
    schema = TypeAdapter(MonitorSpec).json_schema()
    assert {"HttpMonitorSpec", "RedisMonitorSpec"} <= set(schema["$defs"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.53", ("10.0.0.53", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("[::1]:53", ("::1", 53)),
        ("::1", ("::1", 53)),
    ],
)
def test_split_nameserver(text: str, expected: tuple[str, int]) -> None:
    assert split_nameserver(text) == expected


@pytest.mark.parametrize("token", ["backup-7f3a9c2e", "A_b-0123", "x" * 64])
def test_heartbeat_token_accepted(token: str) -> None:
    spec = parse_monitor({"type": "heartbeat", "token": token})
    assert isinstance(spec, HeartbeatMonitorSpec) and spec.token == token


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("short", "at least 8 characters"),
        ("x" * 65, "at most 64 characters"),
        ("has/slash", "should match pattern"),
        ("with space", "should match pattern"),
        ("dot.ted-token", "should match pattern"),
        ("caf\u00e9-token", "should match pattern"),
        (12345678, "valid string"),
    ],
)
def test_heartbeat_token_refused(token: object, message: str) -> None:
    found = errors({"type": "heartbeat", "token": token})
    assert [(path, message in text) for path, text in found] == [("token", True)], found


def test_heartbeat_token_is_optional_and_kept_out_of_reprs() -> None:
    assert HeartbeatMonitorSpec.model_validate({"type": "heartbeat"}).token is None
    spec = parse_monitor({"type": "heartbeat", "token": "secret-ping-token"})
    # Whoever has the token can report the job done: a config logged by repr must not show it.
    assert "secret-ping-token" not in repr(spec)
    assert spec.monitor_id == "heartbeat:heartbeat"


def test_monitor_json_schema_describes_the_token() -> None:
    schema = monitor_json_schema()
    token = schema["$defs"]["HeartbeatMonitorSpec"]["properties"]["token"]
    assert token["anyOf"][0] == {"maxLength": 64, "minLength": 8, "pattern": "^[A-Za-z0-9_-]+$", "type": "string"}
