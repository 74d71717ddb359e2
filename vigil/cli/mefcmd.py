"""The MEF side of the CLI: analyse an Open-PSA file, export a service's fault tree."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from vigil.analysis.build import build_fault_tree
from vigil.analysis.engine import Analyzer
from vigil.analysis.mef import MefError, export_mef, load_mef
from vigil.model.types import Model

__all__ = ["analyze_mef", "export_service_mef"]


def analyze_mef(
    path: Path, *, max_order: int | None, fail: Callable[[str], NoReturn], max_cut_sets: int | None = None
) -> dict[str, Any]:
    """Return the ``vigil analyze`` JSON for every top event of a MEF file (availability = 1 - P(top))."""
    try:
        model = load_mef(path)
    except MefError as exc:
        fail(str(exc))
    analyzer = Analyzer(model.tree)
    services = []
    for top in model.tops:
        cuts = analyzer.cut_sets(top, max_order=max_order)
        ranked = cuts.ranked(max_cut_sets)
        singles = [next(iter(s)) for s, _ in analyzer.cut_sets(top, max_order=1).ranked() if len(s) == 1]
        prob = analyzer.probability(top)
        services.append(
            {
                "id": top,
                "name": top,
                "kind": "top-event",
                "tier": "critical",
                "status": "up",
                "availability": 1.0 - prob.value,
                "availability_exact": prob.exact,
                "availability_bounds": [1.0 - prob.upper, 1.0 - prob.lower],
                "method": prob.method,
                "probability": prob.value,
                "downtime_hours_per_year": prob.value * 8766.0,
                "slo": None,
                "slo_gap": None,
                "meets_slo": None,
                "spofs": singles,
                "spof_details": [
                    {"id": e, "kind": "basic-event", "startup_only": False, "defeats_redundancy": []} for e in singles
                ],
                "new_spofs": [],
                "cut_sets": [sorted(s) for s, _ in ranked],
                "cut_set_probabilities": [p for _, p in ranked],
                "cut_set_count": cuts.count,
                "order_distribution": {str(k): v for k, v in sorted(cuts.order_distribution.items())},
                "importance": [],
            }
        )
    return {
        "model": model.name,
        "max_order": max_order,
        "states": {},
        "assumed_availability": [],
        "services": services,
        "exposed": [],
    }


def export_service_mef(model: Model, service: str) -> str:
    """Return the MEF XML of ``service``'s fault tree."""
    mtree = build_fault_tree(model)
    return export_mef(mtree.tree, mtree.gate(service), name=model.name)
