"""The four outage reports of our users, modelled in examples/: what the analysis must find in each."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil.analysis.impact import blast_radius
from vigil.analysis.report import analyze_model, what_if
from vigil.model.loader import load_model, load_model_texts
from vigil.model.types import State

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def spofs_of(report: object, service: str) -> set[str]:
    svc = next(s for s in report.services if s.id == service)  # type: ignore[attr-defined]
    return {p.id for p in svc.spofs}


# --- UseGalaxy.eu 2018 (seed 000) -------------------------------------------------------------------------


def test_galaxy_head_node_and_each_nfs_server_are_spofs_because_of_startup() -> None:
    model = load_model([EXAMPLES / "galaxy-2018.yaml"])
    report = analyze_model(model, services=["usegalaxy.eu"])
    (galaxy,) = report.services
    by_id = {p.id: p for p in galaxy.spofs}
    assert {"head-node", "nfs1", "nfs2", "nfs3"} <= set(by_id)
    assert all(by_id[n].startup for n in ("nfs1", "nfs2", "nfs3"))
    assert not by_id["head-node"].startup


def test_galaxy_optional_storage_removes_the_storage_spofs() -> None:
    text = (EXAMPLES / "galaxy-2018.yaml").read_text()
    assert "        startup_only: true\n" in text
    fixed = text.replace("        startup_only: true\n", "        optional: true\n")
    model = load_model_texts([("galaxy-fixed.yaml", fixed)])
    spofs = spofs_of(analyze_model(model, services=["usegalaxy.eu"]), "usegalaxy.eu")
    assert "head-node" in spofs
    assert not spofs & {"nfs1", "nfs2", "nfs3"}


# --- PythonAnywhere 2014 (seed 001) -----------------------------------------------------------------------

PA_SERVICES = ("web", "console", "scheduled-tasks")


def test_pythonanywhere_file_server_is_no_spof_with_a_healthy_backup() -> None:
    model = load_model([EXAMPLES / "pythonanywhere-2014.yaml"])
    report = analyze_model(model, services=list(PA_SERVICES))
    for service in PA_SERVICES:
        assert "file-server" not in spofs_of(report, service)
        assert "backup-server" not in spofs_of(report, service)


def test_pythonanywhere_resyncing_backup_makes_the_file_server_a_spof() -> None:
    model = load_model([EXAMPLES / "pythonanywhere-2014.yaml"])
    report = what_if(model, states={"backup-server": State.DEGRADED})
    for service in PA_SERVICES:
        svc = next(s for s in report.services if s.id == service)
        assert svc.status == "up"
        assert "file-server" in svc.new_spofs
        assert "file-server" in {p.id for p in svc.spofs}
    # The night itself: file server down while the backup re-syncs takes all three down.
    night = blast_radius(model, failed=["file-server"], states={"backup-server": State.DEGRADED})
    assert {e.id for e in night.down} == set(PA_SERVICES)


# --- CELS 2022 (seed 002) ---------------------------------------------------------------------------------


def test_cels_vserver8_takes_down_exactly_the_six_vms() -> None:
    model = load_model([EXAMPLES / "cels-2022.yaml"])
    impact = blast_radius(model, failed=["vserver8"])
    assert {e.id for e in impact.down} == {"login1", "login2", "buildbot", "pwca", "horde", "repo.anl-external.org"}
    assert all(e.because == "runs on vserver8 (failed)" for e in impact.down)
    assert not impact.degraded
    assert {e.id for e in impact.exposed} == {"logins"}  # login3 took over


def test_cels_repo_is_critical_with_vserver8_as_spof() -> None:
    model = load_model([EXAMPLES / "cels-2022.yaml"])
    assert model.components["repo.anl-external.org"].tier == "critical"
    report = analyze_model(model)
    assert "vserver8" in spofs_of(report, "repo.anl-external.org")
    assert "vserver-ha1" not in spofs_of(report, "svn.mcs.anl.gov")


# --- Queue cluster 2019 (seed 003) ------------------------------------------------------------------------


def test_queue_servers_are_no_spof_but_their_shared_maintenance_domain_is() -> None:
    model = load_model([EXAMPLES / "queue-cluster-2019.yaml"])
    report = analyze_model(model, services=["data-collection"])
    (svc,) = report.services
    by_id = {p.id: p for p in svc.spofs}
    assert "queue1" not in by_id and "queue2" not in by_id
    assert "hoster-node-restarts" in by_id
    shared = by_id["hoster-node-restarts"]
    assert shared.kind == "domain:maintenance_group"
    assert any("any of [queue1, queue2]" in d for d in shared.defeats)
    # The pair of queues is still an order-2 cut set.
    assert ["queue1", "queue2"] in [ids for ids, _ in svc.ranked_cut_sets()]


@pytest.mark.parametrize("name", ["cels-2022", "galaxy-2018", "pythonanywhere-2014", "queue-cluster-2019"])
def test_every_example_analyses_with_exact_availability(name: str) -> None:
    report = analyze_model(load_model([EXAMPLES / f"{name}.yaml"]))
    assert report.services
    for svc in report.services:
        assert svc.exact and 0.9 < svc.availability < 1.0
        assert svc.cut_set_count == len(svc.ranked_cut_sets()) >= 1
