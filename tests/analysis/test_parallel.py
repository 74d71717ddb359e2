"""The second process of ``analyze_model`` (vigil/analysis/parallel.py): same report as one process, bit for bit,
and a clean fall back when the child cannot start, raises, crashes or sends something unreadable."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from tests.analysis.test_model_properties import _load, models
from vigil.analysis import parallel, report
from vigil.analysis.report import analyze_model, what_if
from vigil.cli.payload import report_payload
from vigil.model.loader import load_model_texts
from vigil.model.types import Model, State

pytestmark = pytest.mark.skipif(not parallel._can_fork(), reason="needs the fork start method")

_GENERATE = Path(__file__).resolve().parents[2] / "benchmarks" / "generate.py"


def _generator() -> ModuleType:
    name = "vigil_benchmarks_generate"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, _GENERATE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _generated(components: int, seed: int, tmp_path: Path) -> Model:
    gen = _generator()
    path = tmp_path / f"m{components}-{seed}.yaml"
    gen.write(gen.generate(components, seed), path)
    return load_model_texts([(path.name, path.read_text())])


def _document(model: Model, *, states: dict[str, State] | None = None, order: int | None = 3) -> str:
    """The whole JSON report, every cut set and every float in full (repr)."""
    if states is None:
        result = analyze_model(model, max_order=order, importance=True)
    else:
        result = what_if(model, states=states, max_order=order)
    doc = report_payload(result)
    doc["all_cut_sets"] = [sorted(sorted(c) for c in s.cuts) for s in result.services]
    return json.dumps(doc, sort_keys=True)


def _both(monkeypatch: pytest.MonkeyPatch, make: Any) -> tuple[str, str, int]:
    """Return the document made in one process and with the child, and how many children were started."""
    started = []
    real_start = parallel.start

    def counting(func: Any, items: Any) -> Any:
        started.append(1)
        return real_start(func, items)

    monkeypatch.setattr(parallel, "start", counting)
    monkeypatch.setenv(parallel.ENV, "off")
    single = make()
    assert not started
    monkeypatch.setenv(parallel.ENV, "on")
    forked = make()
    return single, forked, len(started)


@pytest.mark.parametrize(("components", "seed"), [(400, 1), (1200, 7)])
def test_child_process_gives_the_same_report_bit_for_bit(
    components: int, seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _generated(components, seed, tmp_path)
    single, forked, children = _both(monkeypatch, lambda: _document(model))
    assert children == 1
    assert single == forked
    hosts = sorted(c for c in model.components if "-hv" in c)[:2]
    states = {hosts[0]: State.MAINTENANCE, hosts[1]: State.DEGRADED}
    single, forked, children = _both(monkeypatch, lambda: _document(model, states=states, order=2))
    assert children == 2  # the baseline and the changed model
    assert single == forked


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(spec=models())
def test_child_process_equals_one_process_on_random_models(
    spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _load(spec)
    single, forked, _ = _both(monkeypatch, lambda: _document(model, order=None))
    assert single == forked


def _failing_in_child(monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    parent = os.getpid()
    real_call = report._Rest.__call__

    def call(self: Any, sid: str) -> Any:
        if os.getpid() != parent:
            if how == "raise":
                raise RuntimeError("boom")
            if how == "crash":
                os._exit(3)
            if how == "unpicklable":
                return lambda: None
        return real_call(self, sid)

    monkeypatch.setattr(report._Rest, "__call__", call)


@pytest.mark.parametrize("how", ["raise", "crash", "unpicklable"])
def test_a_failing_child_falls_back_to_the_same_report(
    how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _generated(400, 3, tmp_path)
    monkeypatch.setenv(parallel.ENV, "off")
    expected = _document(model)
    monkeypatch.setenv(parallel.ENV, "on")
    _failing_in_child(monkeypatch, how)
    assert _document(model) == expected


def test_a_child_that_cannot_start_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _generated(400, 4, tmp_path)
    monkeypatch.setenv(parallel.ENV, "off")
    expected = _document(model)
    monkeypatch.setenv(parallel.ENV, "on")

    def refuse(self: Any) -> None:
        raise OSError("no more processes")

    monkeypatch.setattr("multiprocessing.process.BaseProcess.start", refuse)
    assert parallel.start(len, ["ab"]) is None
    assert _document(model) == expected


def test_progress_raising_stops_the_child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _generated(400, 5, tmp_path)
    monkeypatch.setenv(parallel.ENV, "on")
    children: list[Any] = []
    real_start = parallel.start

    def keep(func: Any, items: Any) -> Any:
        background = real_start(func, items)
        children.append(background)
        return background

    monkeypatch.setattr(parallel, "start", keep)

    def stop(done: int, total: int) -> None:
        if done == 3:
            raise TimeoutError(done)

    with pytest.raises(TimeoutError):
        analyze_model(model, progress=stop)
    assert children and not children[0]._process.is_alive()


def test_start_returns_results_in_order_or_none() -> None:
    background = parallel.start(lambda x: x * x, list(range(100)))
    assert background is not None
    assert background.results() == [x * x for x in range(100)]
    unreadable = parallel.start(lambda x: lambda: x, [1])
    assert unreadable is not None and unreadable.results() is None


def test_when_a_second_process_is_wanted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(parallel.ENV, "off")
    assert not parallel.wanted(10_000, 100_000)
    monkeypatch.setenv(parallel.ENV, "on")
    assert parallel.wanted(1, 1)
    monkeypatch.setenv(parallel.ENV, "auto")
    assert not parallel.wanted(5, 100)  # too small to pay for a fork
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    assert parallel.wanted(1000, 10_000)
    monkeypatch.setattr(threading, "active_count", lambda: 2)  # another thread: never fork
    assert not parallel.wanted(1000, 10_000)
