"""The model side of monitors: entries are carried through unvalidated, placed by file and line, and never fail a
load (only a ``monitors:`` that is not a list does)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import yaml

from vigil.model import yamlio
from vigil.model.errors import ModelError
from vigil.model.loader import load_model_texts
from vigil.model.schema import FileSpec, file_json_schema
from vigil.model.types import State

WITH_MONITORS = """\
components:
  - id: db
    kind: database
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
        token: backup-7f3a9c2e
"""


def test_monitor_entries_are_carried_raw_with_their_place() -> None:
    model = load_model_texts([("infra.yaml", WITH_MONITORS)])
    web = model.components["web"]
    assert model.components["db"].monitors == ()
    http, heartbeat = web.monitors
    assert http.data == {"type": "http", "url": "http://127.0.0.1:8080/healthz", "interval": "30s"}
    assert heartbeat.data["token"] == "backup-7f3a9c2e"
    assert http.path == ("components", 1, "monitors", 0)
    assert heartbeat.path == ("components", 1, "monitors", 1)
    assert (http.file, http.line(), http.line("url")) == ("infra.yaml", 8, 9)
    assert (heartbeat.line(), heartbeat.line("token")) == (11, 14)
    issue = heartbeat.issue(("period",), "too long")
    assert (issue.file, issue.line, issue.path) == ("infra.yaml", 13, "components[1].monitors[1].period")


def test_loading_monitors_does_not_work_out_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    # The line-aware parse costs ~15x the fast one: a valid model, monitors or not, must not pay for it.
    calls: list[str] = []
    original = yamlio.load_yaml

    def counting(text: str) -> tuple[Any, list[tuple[int, str]]]:
        calls.append(text)
        return original(text)

    monkeypatch.setattr(yamlio, "load_yaml", counting)
    model = load_model_texts([("infra.yaml", WITH_MONITORS)])
    assert calls == []
    assert model.components["web"].monitors[0].line("url") == 9
    assert model.components["web"].monitors[1].line() == 11
    assert len(calls) == 1  # worked out on first use, once per file


@pytest.mark.parametrize(
    "item",
    [
        "http://bare-url",
        42,
        None,
        [1, 2],
        {"type": "smtp", "colour": "red"},
        {"no": {"type": {"at": ["all"]}}},
        {"type": "http"},  # missing url
        {"type": "tcp", "host": "d b", "port": 99999},
    ],
)
def test_any_monitor_item_loads(item: object) -> None:
    # Next to a valid monitor: the model loads and keeps both as written; vigil.monitors judges them.
    valid = {"type": "tcp", "host": "x", "port": 1}
    doc = {"components": [{"id": "web", "kind": "service", "monitors": [valid, item]}]}
    model = load_model_texts([("m.yaml", yaml.safe_dump(doc))])
    assert [m.data for m in model.components["web"].monitors] == [valid, item]


@pytest.mark.parametrize("value", ["{type: http}", "http://x", "3", "null"])
def test_monitors_that_are_not_a_list_are_a_model_error(value: str) -> None:
    text = f"components:\n  - id: web\n    kind: service\n    monitors: {value}\n  - {{id: db, kind: database}}\n"
    with pytest.raises(ModelError) as info:
        load_model_texts([("m.yaml", text)])
    (issue,) = info.value.issues
    assert (issue.file, issue.line, issue.path) == ("m.yaml", 4, "components[0].monitors")
    assert "valid list" in issue.message


def test_a_failed_model_still_hands_over_the_monitors_of_its_valid_entries() -> None:
    text = WITH_MONITORS + "  - {id: broken, kind: vm, runs_on: nowhere}\n"
    with pytest.raises(ModelError) as info:
        load_model_texts([("m.yaml", text)])
    assert [i.path for i in info.value.issues] == ["components[2].runs_on"]
    partial = info.value.partial
    assert partial is not None
    assert [m.data["type"] for m in partial.components["web"].monitors] == ["http", "heartbeat"]


def test_states_keep_monitors_and_entries_are_per_file() -> None:
    other = "components:\n  - id: api\n    kind: service\n    monitors:\n      - {type: tcp, host: api, port: 443}\n"
    model = load_model_texts([("a.yaml", WITH_MONITORS), ("b.yaml", other)])
    api = model.components["api"].monitors[0]
    assert (api.file, api.line(), api.path) == ("b.yaml", 5, ("components", 0, "monitors", 0))
    changed = model.with_states({"web": State.DOWN})
    assert changed.components["web"].monitors == model.components["web"].monitors


def test_json_schema_leaves_monitor_items_open_without_the_monitor_schema() -> None:
    schema = file_json_schema()
    assert schema == FileSpec.model_json_schema()
    monitors = schema["$defs"]["ComponentSpec"]["properties"]["monitors"]
    assert monitors["type"] == "array" and monitors["items"] == {}


def test_json_schema_splices_in_a_monitor_schema() -> None:
    fake = {"oneOf": [{"$ref": "#/$defs/PingSpec"}], "$defs": {"PingSpec": {"type": "object"}}}
    schema = file_json_schema(fake)
    assert schema["$defs"]["ComponentSpec"]["properties"]["monitors"]["items"] == {"$ref": "#/$defs/MonitorSpec"}
    assert schema["$defs"]["MonitorSpec"] == {"oneOf": [{"$ref": "#/$defs/PingSpec"}]}
    assert schema["$defs"]["PingSpec"] == {"type": "object"}
    assert "$defs" in fake  # the caller's schema is not changed


def test_json_schema_refuses_a_monitor_schema_that_redefines_model_entries() -> None:
    with pytest.raises(ValueError, match="redefines ComponentSpec"):
        file_json_schema({"$defs": {"ComponentSpec": {"type": "object"}}})


def test_model_does_not_import_monitors() -> None:
    # Imports point monitors -> model; a fresh interpreter shows whether loading a model pulls vigil.monitors in.
    code = (
        "import sys, vigil.model.loader, vigil.model.schema, vigil.model.types;"
        "print([m for m in sys.modules if m.startswith('vigil.monitors')])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
