"""The label → component mapping file: first match wins, the label first, errors name the place."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil.alerts.mapping import AlertMapping, AlertMappingError, load_mapping


def test_label_first_then_the_first_matching_rule(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "rules:\n"
        "  - match: {job: node, instance: 'a:9100'}\n    component: a\n"
        "  - match: {job: node}\n    component: nodes\n",
        encoding="utf-8",
    )
    mapping = load_mapping(path)
    assert mapping.component_for({"job": "node", "instance": "a:9100"}) == ("a", "rules[0]")
    assert mapping.component_for({"job": "node", "instance": "b:9100"}) == ("nodes", "rules[1]")
    assert mapping.component_for({"job": "node", "vigil_component": "db"}) == ("db", "label vigil_component")
    assert mapping.component_for({"job": "other"}) == (None, "no mapping rule matches the labels")


def test_no_file_maps_by_the_label_only() -> None:
    assert load_mapping(None) == AlertMapping()
    assert load_mapping(None).component_for({"vigil_component": "web"})[0] == "web"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules:\n  - match: {a: b}\n", "rules[0].component: Field required"),
        ("rules:\n  - match: {}\n    component: x\n", "rules[0].match: Dictionary should have at least 1 item"),
        ("rules:\n  - match: {a: [1]}\n    component: x\n", "rules[0].match.a: Input should be a valid string"),
        ("rule: []\n", "rule: Extra inputs are not permitted"),
        ("rules: [\n", "cannot read"),
    ],
)
def test_errors_name_the_file_and_the_place(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(AlertMappingError, match=r"alert mapping .*m\.yaml: ") as caught:
        load_mapping(path)
    assert message in str(caught.value)


def test_a_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(AlertMappingError, match="cannot read"):
        load_mapping(tmp_path / "absent.yaml")
