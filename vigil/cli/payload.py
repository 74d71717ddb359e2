"""The JSON documents of ``vigil analyze``, ``what-if`` and ``impact``: stable keys, documented in
docs/json.md. Plain dicts so that text and Markdown output are rendered from the very same data."""

from __future__ import annotations

from typing import Any

from vigil.analysis.impact import Effect, Impact
from vigil.analysis.report import ModelReport, ServiceReport

__all__ = ["impact_payload", "report_payload", "service_payload"]


def service_payload(s: ServiceReport, *, max_cut_sets: int | None = None) -> dict[str, Any]:
    cuts = s.ranked_cut_sets(max_cut_sets)
    return {
        "id": s.id,
        "name": s.name,
        "kind": s.kind,
        "tier": s.tier,
        "status": s.status,
        "availability": s.availability,
        "availability_exact": s.exact,
        "availability_bounds": [s.availability_lower, s.availability_upper],
        "method": s.method,
        "downtime_hours_per_year": s.downtime_hours_per_year,
        "slo": s.slo,
        "slo_gap": s.slo_gap,
        "meets_slo": None if s.slo_gap is None else s.slo_gap >= 0,
        "spofs": [p.id for p in s.spofs],
        "spof_details": [
            {"id": p.id, "kind": p.kind, "startup_only": p.startup, "defeats_redundancy": list(p.defeats)}
            for p in s.spofs
        ],
        "new_spofs": s.new_spofs,
        "cut_sets": [ids for ids, _ in cuts],
        "cut_set_probabilities": [p for _, p in cuts],
        "cut_set_count": s.cut_set_count,
        "order_distribution": {str(k): v for k, v in s.order_distribution.items()},
        "importance": [{"id": i, "birnbaum": b, "fussell_vesely": fv} for i, b, fv in s.importance],
    }


def report_payload(report: ModelReport, *, max_cut_sets: int | None = None) -> dict[str, Any]:
    services = [service_payload(s, max_cut_sets=max_cut_sets) for s in report.services]
    return {
        "model": report.name,
        "max_order": report.max_order,
        "states": report.states,
        "assumed_availability": report.assumed,
        "services": services,
        "exposed": [s["id"] for s in services if s["new_spofs"] or s["status"] == "down"],
    }


def _effect(impact: Impact, e: Effect) -> dict[str, Any]:
    return {"id": e.id, "status": e.status, "because": e.because, "cause": e.cause, "chain": impact.chain(e.id)}


def impact_payload(impact: Impact) -> dict[str, Any]:
    return {
        "failed": impact.failed,
        "down": [_effect(impact, e) for e in impact.down],
        "degraded": [_effect(impact, e) for e in impact.degraded],
        "exposed": [_effect(impact, e) for e in impact.exposed],
    }
