"""Prometheus metrics of the engine, read from its live state at scrape time.

A custom collector rather than a Gauge child per monitor: with 10,000 monitors, children cost memory all the
time and must be kept in step with reloads, while reading the trackers on scrape costs nothing in between
and cannot go stale.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from vigil.engine.states import ComponentVerdict, MonitorTracker
from vigil.monitors.models import ComponentState
from vigil.monitors.result import Outcome

__all__ = ["CheckCounts", "EngineCollector", "EngineView"]


@dataclass(slots=True)
class CheckCounts:
    """Checks finished, by monitor type and outcome."""

    counts: dict[tuple[str, Outcome], int] = field(default_factory=dict)

    def add(self, monitor_type: str, outcome: Outcome) -> None:
        key = (monitor_type, outcome)
        self.counts[key] = self.counts.get(key, 0) + 1


@dataclass(slots=True)
class EngineView:
    """What the collector reads; the runtime fills it and keeps it current."""

    trackers: Mapping[str, MonitorTracker]
    monitor_info: Mapping[str, tuple[str, str]]  # key → (component id, type)
    components: Mapping[str, ComponentVerdict]
    counts: CheckCounts
    gauges: Callable[[], dict[str, float]]  # engine-wide figures: lag, lateness quantiles, queue sizes
    counters: Callable[[], dict[str, float]]  # engine-wide totals: results written, dropped


_GAUGE_HELP = {
    "vigil_scheduler_lag_seconds": "How late the most overdue check not yet started is (0 when on time).",
    "vigil_scheduler_lateness_p50_seconds": "Median of actual minus planned start over recent checks.",
    "vigil_scheduler_lateness_p99_seconds": "99th percentile of actual minus planned start over recent checks.",
    "vigil_checks_in_flight": "Checks running now.",
    "vigil_monitors": "Monitors scheduled.",
    "vigil_results_pending": "Check results waiting to be written to the database.",
    "vigil_state_changes_pending": "State changes waiting to be written to the database.",
    "vigil_database_up": "1 when the last write reached the database, else 0.",
}
_COUNTER_HELP = {
    "vigil_results_written": "Check results written to the database.",
    "vigil_results_dropped": "Check results dropped because the database was unavailable too long.",
    "vigil_checks_crashed": "Checks that raised, hung or returned garbage (each recorded as down).",
    "vigil_checks_skipped": "Runs skipped because the previous run of the same monitor was still going.",
    "vigil_pings_committed": "Heartbeat pings committed (each before its response).",
    "vigil_ping_transactions": "Transactions that committed heartbeat pings (many pings share one).",
}


class EngineCollector(Collector):
    def __init__(self, view: EngineView) -> None:
        self._view = view

    def collect(self) -> Iterator[Metric]:
        view = self._view
        labels = ["monitor", "component", "type"]
        up = GaugeMetricFamily("vigil_monitor_up", "1 when the monitor is up or degraded, 0 when down.", labels=labels)
        latency = GaugeMetricFamily(
            "vigil_monitor_latency_seconds", "Latency of the monitor's last check.", labels=labels
        )
        for key, tracker in list(view.trackers.items()):
            component, kind = view.monitor_info.get(key, ("", ""))
            if tracker.state is not ComponentState.UNKNOWN:
                up.add_metric([key, component, kind], 0.0 if tracker.state is ComponentState.DOWN else 1.0)
            if tracker.last_reason is not None:
                latency.add_metric([key, component, kind], tracker.last_latency)
        yield up
        yield latency
        state = GaugeMetricFamily(
            "vigil_component_state", "1 for the component's current state.", labels=["component", "state", "cause"]
        )
        for cid, verdict in list(view.components.items()):
            state.add_metric([cid, verdict.state.value, verdict.cause or ""], 1.0)
        yield state
        checks = CounterMetricFamily(
            "vigil_checks", "Checks finished, by type and outcome.", labels=["type", "outcome"]
        )
        for (kind, outcome), count in sorted(view.counts.counts.items()):
            checks.add_metric([kind, outcome.value], count)
        yield checks
        for name, value in view.gauges().items():
            yield GaugeMetricFamily(name, _GAUGE_HELP.get(name, name), value=value)
        for name, value in view.counters().items():
            yield CounterMetricFamily(name, _COUNTER_HELP.get(name, name), value=value)
