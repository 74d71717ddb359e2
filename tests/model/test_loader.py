"""Loading and validation: each error names file, line and field; all errors come at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil.model.errors import ModelError, ModelIssue
from vigil.model.loader import load_model, load_model_texts
from vigil.model.types import GroupMode, State, Tier

GOOD = """\
name: small
defaults:
  availability: 99.5%
domains:
  - id: site-a
    kind: site
    availability: 0.9999
  - id: rack1
    kind: rack
    domains: [site-a]
components:
  - id: hv1
    kind: hypervisor
    mtbf: 8760h
    mttr: 4h
    domains: [rack1]
  - id: vm1
    kind: vm
    runs_on: hv1
  - id: vm2
    kind: vm
  - id: web
    kind: service
    tier: critical
    slo: 99.9
    runs_on: vm1
    depends_on:
      - vm2
      - any: [vm1, vm2]
        name: pair
      - at_least: 1
        of: [vm1, vm2]
        startup_only: true
      - {id: vm2, optional: true}
"""


def issues_of(text: str, name: str = "m.yaml") -> list[ModelIssue]:
    with pytest.raises(ModelError) as info:
        load_model_texts([(name, text)])
    return info.value.issues


def only_issue(text: str) -> ModelIssue:
    issues = issues_of(text)
    assert len(issues) == 1, issues
    return issues[0]


def test_good_model_loads_with_every_field() -> None:
    model = load_model_texts([("m.yaml", GOOD)])
    assert model.name == "small"
    assert model.default_availability == pytest.approx(0.995)
    hv1 = model.components["hv1"]
    assert hv1.availability == pytest.approx(8760 / 8764)
    assert hv1.availability_source == "mtbf/mttr"
    assert model.components["vm2"].availability_source == "default"
    assert model.components["vm2"].availability == pytest.approx(0.995)
    web = model.components["web"]
    assert web.tier is Tier.CRITICAL
    assert web.slo == 0.999
    assert [r.mode for r in web.requirements] == [GroupMode.ALL, GroupMode.ANY, GroupMode.AT_LEAST, GroupMode.ALL]
    assert web.requirements[1].name == "pair"
    assert web.requirements[2].startup_only and web.requirements[2].k == 1
    assert web.requirements[3].optional
    assert model.domains["rack1"].domains == ("site-a",)
    assert web.file == "m.yaml"
    assert sorted(model.dependants["vm2"]) == ["web", "web", "web", "web"]


def test_files_and_directories_merge(tmp_path: Path) -> None:
    (tmp_path / "infra").mkdir()
    (tmp_path / "infra" / "hw.yaml").write_text("components:\n  - {id: hv1, kind: hypervisor}\n")
    (tmp_path / "apps.yml").write_text("components:\n  - {id: app, kind: service, runs_on: hv1}\n")
    model = load_model([tmp_path])
    assert set(model.components) == {"hv1", "app"}
    model2 = load_model([tmp_path / "infra" / "hw.yaml", tmp_path / "apps.yml"])
    assert set(model2.components) == {"hv1", "app"}


def test_duplicate_id_across_files_names_both_places() -> None:
    with pytest.raises(ModelError) as info:
        load_model_texts(
            [
                ("a.yaml", "components:\n  - {id: x, kind: host}\n"),
                ("b.yaml", "components:\n  - {id: y, kind: host}\n  - {id: x, kind: vm}\n"),
            ]
        )
    (issue,) = info.value.issues
    assert (issue.file, issue.line, issue.path) == ("b.yaml", 3, "components[1].id")
    assert "duplicate id 'x'" in issue.message and "a.yaml:2" in issue.message


def test_duplicate_id_between_domain_and_component() -> None:
    issue = only_issue("domains:\n  - {id: x, kind: site}\ncomponents:\n  - {id: x, kind: host}\n")
    assert issue.line == 4 and "duplicate id" in issue.message


def test_unknown_reference_suggests_close_match() -> None:
    issue = only_issue(
        "components:\n  - {id: vserver8, kind: hypervisor}\n  - {id: login1, kind: vm, runs_on: vsever8}\n"
    )
    assert (issue.line, issue.path) == (3, "components[1].runs_on")
    assert "unknown component 'vsever8'" in issue.message and "did you mean 'vserver8'" in issue.message


def test_unknown_group_member_and_unknown_domain() -> None:
    text = """\
components:
  - id: a
    kind: service
    domains: [nowhere]
    depends_on:
      - any:
          - b
          - ghost
  - {id: b, kind: host}
"""
    issues = issues_of(text)
    assert [(i.line, i.path) for i in issues] == [
        (4, "components[0].domains[0]"),
        (8, "components[0].depends_on[0].any[1]"),
    ]
    assert "unknown failure domain 'nowhere'" in issues[0].message
    assert "unknown component 'ghost'" in issues[1].message


def test_wrong_kind_of_reference() -> None:
    text = """\
domains:
  - {id: site, kind: site}
components:
  - {id: h, kind: host, domains: [h2]}
  - {id: h2, kind: host, runs_on: site}
"""
    issues = issues_of(text)
    assert "'h2' is a component, not a failure domain" in issues[0].message
    assert "'site' is a failure domain" in issues[1].message


def test_k_larger_than_group() -> None:
    text = (
        "components:\n  - {id: a, kind: host}\n  - id: s\n    kind: service\n"
        "    depends_on:\n      - at_least: 3\n        of: [a]\n"
    )
    issue = only_issue(text)
    assert (issue.line, issue.path) == (6, "components[1].depends_on[0].at_least")
    assert "at_least 3 but the group has 1 members" in issue.message


def test_zero_k_and_empty_group_are_schema_errors() -> None:
    text = (
        "components:\n  - id: s\n    kind: service\n    depends_on:\n"
        "      - {at_least: 0, of: [s]}\n      - {any: []}\n"
    )
    issues = issues_of(text)
    assert [i.path for i in issues] == ["components[0].depends_on[0].at_least", "components[0].depends_on[1].any"]


def test_member_listed_twice_and_self_dependency() -> None:
    text = "components:\n  - {id: a, kind: host}\n  - {id: s, kind: service, depends_on: [{any: [a, a]}, s]}\n"
    messages = [i.message for i in issues_of(text)]
    assert any("listed twice" in m for m in messages)
    assert any("cannot depend on itself" in m for m in messages)


def test_cycle_is_reported_with_its_path() -> None:
    text = """\
components:
  - {id: a, kind: service, depends_on: [b]}
  - {id: b, kind: vm, runs_on: c}
  - {id: c, kind: host, depends_on: [{any: [a, d]}]}
  - {id: d, kind: host}
"""
    issue = only_issue(text)
    assert issue.message == "dependency cycle: a → b → c → a"
    assert (issue.line, issue.path) == (2, "components[0].depends_on[0]")


def test_optional_cycle_is_allowed() -> None:
    text = """\
components:
  - {id: dns, kind: service, depends_on: [{id: monitoring, optional: true}]}
  - {id: monitoring, kind: service, depends_on: [dns]}
"""
    model = load_model_texts([("m.yaml", text)])
    assert set(model.components) == {"dns", "monitoring"}


def test_domain_cycle() -> None:
    text = "domains:\n  - {id: a, kind: site, domains: [b]}\n  - {id: b, kind: rack, domains: [a]}\n"
    assert "dependency cycle: a → b → a" in only_issue(text).message


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("mtbf", "4", "needs a unit"),
        ("mtbf", "'4 parsecs'", "is not a duration"),
        ("mtbf", "0h", "greater than zero"),
        ("mtbf", "[1]", "a duration is a string"),
    ],
)
def test_bad_durations(field: str, value: str, needle: str) -> None:
    issues = issues_of(f"components:\n  - id: a\n    kind: host\n    {field}: {value}\n    mttr: 1h\n")
    assert any(needle in i.message and i.path == f"components[0].{field}" and i.line == 4 for i in issues), issues


def test_mtbf_without_mttr_and_both_sources() -> None:
    issues = issues_of(
        "components:\n  - {id: a, kind: host, mtbf: 1h}\n"
        "  - {id: b, kind: host, availability: 0.9, mtbf: 1h, mttr: 1h}\n"
    )
    assert "mtbf and mttr go together" in issues[0].message and issues[0].line == 2
    assert "either availability or mtbf + mttr" in issues[1].message and issues[1].line == 3


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("availability: 1.5", "between 0 and 1"),
        ("availability: 99.9", "between 0 and 1"),
        ("availability: 'high'", "percentage"),
        ("slo: 120", "at most 100"),
        ("slo: true", "percentage"),
        ("tier: gold", "critical"),
        ("state: broken", "down"),
        ("kind: Service", "not a kind"),
        ("colour: red", "unknown field"),
    ],
)
def test_bad_fields(text: str, needle: str) -> None:
    body = f"components:\n  - id: a\n    kind: host\n    {text}\n"
    if text.startswith("kind:"):
        body = f"components:\n  - id: a\n    {text}\n"
    issues = issues_of(body)
    assert any(needle in i.message for i in issues), issues
    assert all(i.line >= 3 for i in issues)


def test_all_errors_at_once_and_valid_entries_still_checked() -> None:
    text = """\
components:
  - {id: a, kind: host, mtbf: soon, mttr: 1h}
  - {id: b, kind: vm, runs_on: a}
  - {id: c, kind: vm, runs_on: zzz}
  - {kind: vm}
"""
    issues = issues_of(text)
    assert [(i.line, i.path) for i in issues] == [
        (2, "components[0].mtbf"),
        (4, "components[2].runs_on"),
        (5, "components[3].id"),
    ]
    # 'b' runs on 'a', which is invalid but exists: no second, misleading "unknown" error.
    assert issues[2].message == "required field is missing"


def test_bad_yaml_and_bad_shapes() -> None:
    assert "not valid YAML" in only_issue("components:\n  - {id: a\n").message
    assert only_issue("").message.startswith("the file is empty")
    assert "must be a mapping" in only_issue("- a\n- b\n").message
    assert "must be a list" in only_issue("components: {a: 1}\n").message
    issue = only_issue("components: []\nbogus: 1\n")
    assert (issue.line, issue.path) == (2, "bogus") and "unknown key" in issue.message
    assert "unsupported version" in only_issue("version: 2\n").message


def test_duplicate_yaml_key_is_an_error() -> None:
    issue = only_issue("components:\n  - id: a\n    kind: host\n    kind: vm\n")
    assert (issue.line, issue.path) == (4, "kind") and "given twice" in issue.message


def test_conflicting_defaults_across_files() -> None:
    with pytest.raises(ModelError, match=r"different defaults\.availability"):
        load_model_texts(
            [("a.yaml", "defaults: {availability: 0.99}\n"), ("b.yaml", "defaults: {availability: 0.9}\n")]
        )


def test_missing_files_and_unreadable(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"name: caf\xe9\n")
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    with pytest.raises(ModelError) as info:
        load_model([tmp_path / "nope.yaml", bad, empty_dir])
    messages = sorted(i.message for i in info.value.issues)
    assert any("no such file" in m for m in messages)
    assert any("not UTF-8" in m for m in messages)
    assert any("holds no .yaml" in m for m in messages)


def test_error_text_format() -> None:
    issue = only_issue("components:\n  - {id: a, kind: vm, runs_on: b}\n")
    assert str(issue) == "m.yaml:2: components[0].runs_on: unknown component 'b'"


def test_with_states_copies() -> None:
    model = load_model_texts([("m.yaml", GOOD)])
    changed = model.with_states({"vm2": State.DEGRADED, "rack1": State.DOWN})
    assert changed.components["vm2"].state is State.DEGRADED
    assert changed.domains["rack1"].state is State.DOWN
    assert model.components["vm2"].state is State.UP
    with pytest.raises(KeyError):
        model.with_states({"nope": State.DOWN})
