from __future__ import annotations

from datetime import UTC, datetime

from tests.conftest import EXAMPLES, model_from
from vigil.engine.states import ComponentVerdict, MonitorTracker, component_states, own_state
from vigil.model.loader import load_model
from vigil.monitors.models import ComponentState as S
from vigil.monitors.result import CheckResult, Outcome

CELS_VMS = {"login1", "login2", "buildbot", "pwca", "horde", "repo.anl-external.org"}


def result(outcome: Outcome, reason: str = "") -> CheckResult:
    return CheckResult("m", datetime.now(UTC), 0.01, outcome, reason or outcome.value)


def test_flap_damping() -> None:
    tracker = MonitorTracker(failures_before_down=2, successes_before_up=2)
    assert tracker.add(result(Outcome.UP)) is S.UP
    assert tracker.add(result(Outcome.DOWN)) is None  # one failure is not an outage
    assert tracker.add(result(Outcome.UP)) is None
    assert tracker.add(result(Outcome.DOWN)) is None
    assert tracker.add(result(Outcome.DOWN)) is S.DOWN
    assert tracker.add(result(Outcome.UP)) is None  # one success is not a recovery
    assert tracker.add(result(Outcome.UP)) is S.UP
    assert tracker.add(result(Outcome.DEGRADED)) is S.DEGRADED  # still answering: no damping
    assert tracker.add(result(Outcome.UP)) is S.UP


def test_restored_state_is_kept_until_results_say_otherwise() -> None:
    tracker = MonitorTracker(failures_before_down=1, successes_before_up=1, state=S.DOWN)
    assert tracker.add(result(Outcome.DOWN)) is None
    assert tracker.add(result(Outcome.UP)) is S.UP


def test_own_state_is_the_worst_known_monitor() -> None:
    up = MonitorTracker(failures_before_down=1, successes_before_up=1)
    up.add(result(Outcome.UP))
    down = MonitorTracker(failures_before_down=1, successes_before_up=1)
    down.add(result(Outcome.DOWN, "status 503"))
    unknown = MonitorTracker(failures_before_down=1, successes_before_up=1)
    assert own_state([up, down, unknown]) == ComponentVerdict(S.DOWN, None, "status 503")
    assert own_state([up, unknown]).state is S.UP
    assert own_state([unknown]).state is S.UNKNOWN
    assert own_state([]).state is S.UNKNOWN


def test_cels_vms_are_down_caused_by_vserver8() -> None:
    model = load_model([EXAMPLES / "cels-2022.yaml"])
    own = {"vserver8": ComponentVerdict(S.DOWN, None, "ping: timeout")}
    own |= {vm: ComponentVerdict(S.DOWN, None, "refused") for vm in ("login1", "horde")}  # two VMs watched
    own["vserver3"] = ComponentVerdict(S.UP)
    verdicts = component_states(model, own)
    assert verdicts["vserver8"] == ComponentVerdict(S.DOWN, None, "ping: timeout")
    for vm in CELS_VMS:
        assert verdicts[vm].state is S.DOWN, vm
        assert verdicts[vm].cause == "vserver8", vm
    assert verdicts["login1"].reason == "refused (caused by vserver8)"
    assert verdicts["vserver3"].state is S.UP
    down = {cid for cid, v in verdicts.items() if v.state is S.DOWN}
    assert down - {"vserver8"} >= CELS_VMS


def test_a_failure_the_model_does_not_explain_has_no_cause() -> None:
    model = load_model([EXAMPLES / "cels-2022.yaml"])
    verdicts = component_states(model, {"login1": ComponentVerdict(S.DOWN, None, "refused")})
    assert verdicts["login1"] == ComponentVerdict(S.DOWN, None, "refused")
    assert verdicts["vserver8"].state is S.UNKNOWN  # nobody watches it and nothing says it failed
    assert verdicts["login2"].state is S.UNKNOWN


def test_cause_is_followed_to_the_deepest_failure() -> None:
    model = model_from(
        """
components:
  - {id: hv, kind: hypervisor}
  - {id: vm, kind: vm, runs_on: hv}
  - {id: app, kind: service, runs_on: vm}
"""
    )
    own = {cid: ComponentVerdict(S.DOWN, None, "x") for cid in ("hv", "vm", "app")}
    verdicts = component_states(model, own)
    assert verdicts["vm"].cause == "hv"
    assert verdicts["app"].cause == "hv"
    assert verdicts["hv"].cause is None


def test_observation_beats_inference_and_redundancy_is_respected() -> None:
    model = model_from(
        """
components:
  - {id: db1, kind: database}
  - {id: db2, kind: database}
  - {id: cache, kind: service}
  - id: app
    kind: service
    depends_on:
      - any: [db1, db2]
      - {id: cache, optional: true}
  - {id: other, kind: service, depends_on: [db1]}
"""
    )
    verdicts = component_states(
        model,
        {"db1": ComponentVerdict(S.DOWN), "app": ComponentVerdict(S.UP), "other": ComponentVerdict(S.UP)},
    )
    assert verdicts["app"].state is S.UP  # db2 still serves
    assert verdicts["other"].state is S.UP  # its own monitor answers: trusted over the model
    verdicts = component_states(model, {"cache": ComponentVerdict(S.DOWN), "app": ComponentVerdict(S.UP)})
    assert verdicts["app"].state is S.DEGRADED  # optional dependency lost
    assert verdicts["app"].cause == "cache"
    verdicts = component_states(
        model, {"db1": ComponentVerdict(S.DOWN), "db2": ComponentVerdict(S.DOWN), "app": ComponentVerdict(S.DOWN)}
    )
    assert verdicts["app"].state is S.DOWN
    assert verdicts["app"].cause in {"db1", "db2"}


def test_maintenance_declared_in_config_wins() -> None:
    model = model_from(
        """
components:
  - {id: hv, kind: hypervisor, state: maintenance}
  - {id: vm, kind: vm, runs_on: hv}
"""
    )
    verdicts = component_states(model, {"hv": ComponentVerdict(S.DOWN, None, "timeout")})
    assert verdicts["hv"].state is S.MAINTENANCE
    assert verdicts["vm"].state is S.DOWN
    assert verdicts["vm"].cause == "hv"
