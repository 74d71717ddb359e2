"""The synthetic infrastructure generator used by the benchmarks: deterministic, loadable, realistic."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from vigil.model.loader import load_model
from vigil.model.types import GroupMode, Model, Tier

_GENERATE = Path(__file__).resolve().parents[2] / "benchmarks" / "generate.py"


def _load_generator() -> ModuleType:
    name = "vigil_benchmarks_generate"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, _GENERATE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


gen = _load_generator()


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    result: dict[str, Any] = gen.generate(1000, 1)
    return result


@pytest.fixture(scope="module")
def model(data: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Model:
    path = gen.write(data, tmp_path_factory.mktemp("gen") / "m1k.yaml")
    return load_model([path])


def _references(entry: dict[str, Any]) -> list[str]:
    refs = list(entry.get("domains", []))
    if "runs_on" in entry:
        refs.append(entry["runs_on"])
    for req in entry.get("depends_on", []):
        if isinstance(req, str):
            refs.append(req)
        elif "id" in req:
            refs.append(req["id"])
        else:
            refs.extend(req.get("all") or req.get("any") or req.get("of") or [])
    return refs


def test_same_seed_gives_the_same_model(data: dict[str, Any]) -> None:
    assert gen.generate(1000, 1) == data
    assert gen.generate(1000, 2) != data


def test_written_yaml_is_identical_for_the_same_seed(tmp_path: Path) -> None:
    first = gen.write(gen.generate(300, 7), tmp_path / "a.yaml").read_text()
    second = gen.write(gen.generate(300, 7), tmp_path / "b.yaml").read_text()
    assert first == second
    assert "&id" not in first  # no YAML anchors: every entry is written out in full


def test_loads_without_errors_at_about_the_requested_size(model: Model) -> None:
    assert 950 <= len(model.components) <= 1100
    kinds = {d.kind.value for d in model.domains.values()}
    assert {"provider", "site", "rack", "power", "maintenance_group"} <= kinds


@pytest.mark.parametrize("size", [200, 3000])
def test_other_sizes_are_close_to_the_target(size: int) -> None:
    count = len(gen.generate(size, 3)["components"])
    assert size * 0.95 <= count <= size * 1.1


def test_every_reference_points_to_an_earlier_entry_so_the_graph_is_a_dag(data: dict[str, Any]) -> None:
    # Domains first, then components in creation order: a topological order of every edge, optional ones too.
    seen: set[str] = set()
    for entry in [*data["domains"], *data["components"]]:
        for ref in _references(entry):
            assert ref in seen, f"{entry['id']} refers to {ref} defined later (or never)"
        seen.add(entry["id"])


def test_about_a_fifth_of_the_services_are_critical(model: Model) -> None:
    services = [c for c in model.components.values() if c.kind == "service"]
    tiers = Counter(c.tier for c in services)
    assert 0.12 <= tiers[Tier.CRITICAL] / len(services) <= 0.3
    assert tiers[Tier.BEST_EFFORT] > 0 and tiers[Tier.STANDARD] > 0
    assert {"dns", "auth", "db-main"} <= {c.id for c in model.components.values() if c.tier is Tier.CRITICAL}


def test_has_redundancy_groups_and_requirement_flags(model: Model) -> None:
    requirements = [r for c in model.components.values() for r in c.requirements]
    modes = Counter(r.mode for r in requirements if r.is_group)
    assert modes[GroupMode.ANY] > 0 and modes[GroupMode.AT_LEAST] > 0
    assert any(r.optional for r in requirements)
    assert any(r.startup_only for r in requirements)
    db = model.components["db-main"]
    assert db.requirements[0].mode is GroupMode.ANY and len(db.requirements[0].members) == 2


def test_most_entries_have_failure_data(model: Model) -> None:
    sources = Counter(c.availability_source for c in model.components.values())
    assert sources["default"] < 0.2 * len(model.components)
    assert sources["mtbf/mttr"] > 0 and sources["availability"] > 0
    assert sum(d.availability_source != "default" for d in model.domains.values()) >= 0.8 * len(model.domains)


def test_popular_services_have_many_dependants(model: Model) -> None:
    services = sum(c.kind == "service" for c in model.components.values())
    assert len(model.dependants["dns"]) > services / 2
    assert len(model.dependants["auth"]) > services / 5


def test_replicas_are_spread_except_for_a_few_bad_placements() -> None:
    data = gen.generate(3000, 1)
    by_id = {c["id"]: c for c in data["components"]}
    spread = bad = 0
    for comp in data["components"]:
        if comp["kind"] != "service":
            continue
        for req in comp.get("depends_on", []):
            members = req.get("of") or req.get("any") if isinstance(req, dict) else None
            if not members or by_id[members[0]]["kind"] != "container":
                continue
            hypervisors = [by_id[by_id[m]["runs_on"]]["runs_on"] for m in members]
            if len(set(hypervisors)) < len(hypervisors):
                bad += 1
            else:
                spread += 1
    assert bad > 0  # the realistic single point of failure is there
    assert bad < 0.1 * (spread + bad)


def test_vms_run_on_hypervisors_in_racks(model: Model) -> None:
    vms = [c for c in model.components.values() if c.kind == "vm"]
    assert vms
    for vm in vms:
        assert vm.runs_on is not None
        hypervisor = model.components[vm.runs_on]
        assert hypervisor.kind == "hypervisor"
        assert any(model.domains[d].kind.value == "rack" for d in hypervisor.domains)


def test_rejects_tiny_sizes() -> None:
    with pytest.raises(ValueError):
        gen.generate(10, 1)
