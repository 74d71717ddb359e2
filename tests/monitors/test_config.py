"""monitors_of: the model's monitor entries become keyed, placed monitor configs, and each bad one an issue."""

from __future__ import annotations

import re
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil.model.errors import ModelIssue
from vigil.model.loader import load_model_texts
from vigil.monitors.config import MAX_KEY_LENGTH, MonitorConfig, MonitorSet, monitors_of
from vigil.monitors.schemas import HeartbeatMonitorSpec, HttpMonitorSpec, TcpMonitorSpec

GOOD = """\
components:
  - id: db
    kind: database
    monitors:
      - type: tcp
        host: db1
        port: 5432
  - id: web
    kind: service
    depends_on: [db]
    monitors:
      - type: http
        url: http://127.0.0.1:8080/healthz
        interval: 30s
      - id: nightly-backup
        type: heartbeat
        period: 1d
        grace: 1h
        token: backup-7f3a9c2e
  - id: cache
    kind: service
"""


def found(text: str, name: str = "m.yaml") -> MonitorSet:
    return monitors_of(load_model_texts([(name, text)]))


def places(issues: list[ModelIssue]) -> list[tuple[str, int, str]]:
    return [(i.file, i.line, i.path) for i in issues]


def component(monitors: str, *, cid: str = "web") -> str:
    """A one-component model whose monitors list is ``monitors`` (YAML lines, indented by six); monitors[0]
    starts on line 5."""
    return f"components:\n  - id: {cid}\n    kind: service\n    monitors:\n{monitors}"


def test_valid_monitors_are_keyed_and_placed() -> None:
    result = found(GOOD, "infra.yaml")
    assert result.issues == []
    assert [(m.key, m.component_id, m.file, m.line) for m in result.monitors] == [
        ("db/tcp:db1:5432", "db", "infra.yaml", 5),
        ("web/http:http://127.0.0.1:8080/healthz", "web", "infra.yaml", 12),
        ("web/nightly-backup", "web", "infra.yaml", 15),
    ]
    tcp, http, heartbeat = (m.spec for m in result.monitors)
    assert isinstance(tcp, TcpMonitorSpec) and tcp.port == 5432
    assert isinstance(http, HttpMonitorSpec) and http.interval == 30
    assert isinstance(heartbeat, HeartbeatMonitorSpec)
    assert (heartbeat.period, heartbeat.grace, heartbeat.token) == (86400, 3600, "backup-7f3a9c2e")
    assert result.monitors[2].where == "infra.yaml:15"


def test_lines_can_be_left_out_and_issues_still_have_theirs() -> None:
    text = GOOD.replace("        port: 5432\n", "        port: 5432\n      - {type: tcp, host: db1}\n")
    result = monitors_of(load_model_texts([("m.yaml", text)]), lines=False)
    assert [m.line for m in result.monitors] == [None, None, None]
    assert places(result.issues) == [("m.yaml", 8, "components[0].monitors[1].port")]


def test_a_model_without_monitors_has_none() -> None:
    result = found("components:\n  - {id: a, kind: host}\n")
    assert result.monitors == [] and result.issues == []


def test_one_broken_monitor_leaves_the_others_and_the_model_working() -> None:
    text = GOOD.replace("        port: 5432\n", "        port: 5432\n      - type: http\n        url: ftp://nope\n")
    model = load_model_texts([("m.yaml", text)])
    assert set(model.components) == {"db", "web", "cache"}
    result = monitors_of(model)
    assert [m.key for m in result.monitors] == [
        "db/tcp:db1:5432",
        "web/http:http://127.0.0.1:8080/healthz",
        "web/nightly-backup",
    ]
    (issue,) = result.issues
    assert (issue.file, issue.line, issue.path) == ("m.yaml", 9, "components[0].monitors[1].url")
    assert issue.message == "'ftp://nope' is not an http:// or https:// URL with a host"
    assert str(issue) == "m.yaml:9: components[0].monitors[1].url: " + issue.message


def test_every_field_problem_is_reported_with_its_line() -> None:
    text = component(
        "      - type: tcp\n"  # 5
        "        host: d b\n"  # 6
        "        port: 99999\n"  # 7
        "        colour: red\n"  # 8
        "      - type: http\n"  # 9
        "        url: http://x\n"  # 10
        "        degraded_if:\n"  # 11
        "          latency_ms_above: -1\n"  # 12
        "      - type: dns\n"  # 13
        "        name: x\n"  # 14
        "        interval: 30\n"  # 15
    )
    result = found(text)
    assert result.monitors == []
    by_path = {i.path: i for i in result.issues}
    assert places(result.issues) == [
        ("m.yaml", 6, "components[0].monitors[0].host"),
        ("m.yaml", 7, "components[0].monitors[0].port"),
        ("m.yaml", 8, "components[0].monitors[0].colour"),
        ("m.yaml", 12, "components[0].monitors[1].degraded_if.latency_ms_above"),
        ("m.yaml", 15, "components[0].monitors[2].interval"),
    ]
    assert by_path["components[0].monitors[0].host"].message.startswith("'d b' is not a host name")
    assert by_path["components[0].monitors[0].colour"].message == "unknown field"
    assert "needs a unit" in by_path["components[0].monitors[2].interval"].message


def test_missing_field_and_whole_entry_problems_point_at_the_entry() -> None:
    text = component(
        "      - type: tcp\n"  # 5
        "        host: db\n"  # 6
        "      - type: postgres\n"  # 7
        "        query: SELECT 1\n"  # 8
    )
    issues = found(text).issues
    assert [(i.line, i.path, i.message) for i in issues] == [
        (5, "components[0].monitors[0].port", "required field is missing"),
        (7, "components[0].monitors[1]", "give either dsn or host (with port, user, password, dbname)"),
    ]


def test_type_problems() -> None:
    text = component(
        "      - http://bare\n"  # 5
        "      - {url: 'http://x'}\n"  # 6
        "      - type: smtp\n"  # 7
        "        host: x\n"
    )
    issues = found(text).issues
    assert places(issues) == [
        ("m.yaml", 5, "components[0].monitors[0]"),
        ("m.yaml", 6, "components[0].monitors[1].type"),
        ("m.yaml", 7, "components[0].monitors[2].type"),
    ]
    assert "a monitor is a mapping with a 'type'" in issues[0].message
    assert issues[1].message.startswith("required field is missing: one of http, tcp")
    assert issues[2].message.startswith("'smtp' is not a monitor type: use http, tcp")


def test_bad_monitor_id_reads_like_a_bad_model_id() -> None:
    (issue,) = found(component("      - {id: has space, type: tcp, host: x, port: 1}\n")).issues
    assert issue.path == "components[0].monitors[0].id"
    assert issue.message == "'has space' is not a valid id: use letters, digits and . _ : / @ + - (no spaces)"


def test_duplicate_ids_in_one_component_keep_the_first() -> None:
    text = component(
        "      - {id: api, type: tcp, host: a, port: 1}\n"  # 5
        "      - {type: tcp, host: b, port: 2}\n"  # 6
        "      - id: api\n"  # 7
        "        type: http\n"
        "        url: http://b\n"
        "      - {type: tcp, host: b, port: 2}\n"  # 10: the same derived id as line 6
    )
    result = found(text)
    assert [m.key for m in result.monitors] == ["web/api", "web/tcp:b:2"]
    assert isinstance(result.monitors[0].spec, TcpMonitorSpec)  # the first one stays
    explicit, derived = result.issues
    assert (explicit.line, explicit.path) == (7, "components[0].monitors[2].id")
    assert "duplicate monitor id 'api' in component 'web' (first at m.yaml:5)" in explicit.message
    assert (derived.line, derived.path) == (10, "components[0].monitors[3]")
    assert "duplicate monitor id 'tcp:b:2'" in derived.message and "m.yaml:6" in derived.message


def test_same_monitor_id_in_two_components_is_fine() -> None:
    text = GOOD.replace("        port: 5432\n", "        port: 5432\n      - {id: nightly-backup, type: heartbeat}\n")
    result = found(text)
    assert result.issues == []
    assert {"db/nightly-backup", "web/nightly-backup"} <= {m.key for m in result.monitors}


def test_keys_that_collide_through_a_slash() -> None:
    # Component 'a/b' monitor 'c' and component 'a' monitor 'b/c' would share the key 'a/b/c'.
    text = (
        "components:\n"
        "  - id: a/b\n    kind: service\n    monitors: [{id: c, type: tcp, host: x, port: 1}]\n"  # 2-4
        "  - id: a\n    kind: service\n    monitors: [{id: b/c, type: tcp, host: y, port: 1}]\n"  # 5-7
    )
    result = found(text)
    assert [m.component_id for m in result.monitors] == ["a/b"]
    (issue,) = result.issues
    assert (issue.line, issue.path) == (7, "components[1].monitors[0].id")
    assert "monitor key 'a/b/c' is also that of component 'a/b'" in issue.message and "m.yaml:4" in issue.message


def test_a_key_too_long_for_the_monitors_table() -> None:
    url = "http://example.com/" + "x" * MAX_KEY_LENGTH
    (issue,) = found(component(f"      - {{type: http, url: '{url}'}}\n")).issues
    assert (issue.line, issue.path) == (5, "components[0].monitors[0]")
    assert f"more than {MAX_KEY_LENGTH}: give the monitor a shorter id" in issue.message


def test_heartbeat_tokens_are_unique_across_components() -> None:
    text = GOOD + "    monitors:\n      - type: heartbeat\n        token: backup-7f3a9c2e\n"  # token: line 24
    result = found(text, "infra.yaml")
    assert "cache/heartbeat:heartbeat" not in {m.key for m in result.monitors}
    (issue,) = result.issues
    assert (issue.file, issue.line, issue.path) == ("infra.yaml", 24, "components[2].monitors[0].token")
    assert issue.message == "the same token is used by the heartbeat at infra.yaml:15 (web/nightly-backup)"


def test_heartbeats_without_tokens_do_not_clash() -> None:
    text = GOOD + "    monitors:\n      - {type: heartbeat}\n      - {id: weekly, type: heartbeat, period: 1w}\n"
    result = found(text)
    assert result.issues == []
    tokens = {m.key: m.spec.token for m in result.monitors if isinstance(m.spec, HeartbeatMonitorSpec)}
    assert tokens == {
        "web/nightly-backup": "backup-7f3a9c2e",
        "cache/heartbeat:heartbeat": None,
        "cache/weekly": None,
    }


def test_bad_tokens_are_reported_without_showing_them() -> None:
    text = component(
        "      - {id: a, type: heartbeat, token: short}\n"  # 5
        "      - {id: b, type: heartbeat, token: 'has/slash-and space'}\n"  # 6
        f"      - {{id: c, type: heartbeat, token: {'t' * 65}}}\n"  # 7
    )
    result = found(text)
    assert result.monitors == []
    assert [(i.line, i.path) for i in result.issues] == [
        (5 + n, f"components[0].monitors[{n}].token") for n in range(3)
    ]
    short, chars, long = (i.message for i in result.issues)
    assert "at least 8 characters" in short
    assert chars == "a token uses only letters, digits, '_' and '-'"
    assert "at most 64 characters" in long


def test_monitors_in_several_files_name_their_own_file() -> None:
    other = component("      - {type: tcp, host: x, port: 1}\n      - {type: tcp, host: x}\n", cid="api")
    result = monitors_of(load_model_texts([("a.yaml", GOOD), ("b.yaml", other)]))
    api = next(m for m in result.monitors if m.component_id == "api")
    assert (api.file, api.line) == ("b.yaml", 5)
    assert places(result.issues) == [("b.yaml", 6, "components[0].monitors[1].port")]


def test_monitor_configs_are_immutable() -> None:
    # The scheduler shares these between tasks; a change in one place must not leak into another.
    config = found(GOOD).monitors[0]
    assert isinstance(config, MonitorConfig)
    with pytest.raises(FrozenInstanceError):
        config.key = "other"  # type: ignore[misc]


items = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10),
              st.sampled_from(["http", "tcp", "heartbeat", "postgres", "30s", "http://x", "a/b"])),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(["type", "id", "url", "host", "port", "token", "interval", "dsn", "x"]),
                        children, max_size=5),
    ),
    max_leaves=12,
)  # fmt: skip


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(items, max_size=4))
def test_any_monitor_entries_give_monitors_or_issues_never_an_exception(entries: list[object]) -> None:
    doc = {"components": [{"id": "web", "kind": "service", "monitors": entries}]}
    result = monitors_of(load_model_texts([("fuzz.yaml", yaml.safe_dump(doc))]))
    reported = {int(i.path.split("monitors[")[1].split("]")[0]) for i in result.issues}
    assert len(result.monitors) + len(reported) == len(entries)  # each entry: a monitor, or at least one issue
    for issue in result.issues:
        assert issue.file == "fuzz.yaml" and issue.line > 0 and issue.message


def test_every_example_in_the_docs_is_a_valid_monitor() -> None:
    # The YAML blocks of "Monitors in the model" are what people copy: each must validate as written.
    text = (Path(__file__).resolve().parents[2] / "docs" / "monitoring.md").read_text(encoding="utf-8")
    section = text.split("## Monitors in the model", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert len(blocks) >= 9  # the example and one per type
    checked = 0
    for block in blocks:
        data = yaml.safe_load(block)
        doc = data if isinstance(data, dict) else {"components": [{"id": "x", "kind": "service", "monitors": data}]}
        result = monitors_of(load_model_texts([("doc.yaml", yaml.safe_dump(doc))]))
        assert result.issues == [], block
        checked += len(result.monitors)
    assert checked >= 10
