"""A throwaway generator of infrastructure-like fault trees, to measure the engine at fleet scale.

Sites hold racks (on power feeds), racks hold hypervisors, hypervisors hold VMs, VMs run service replicas.
A replica fails when its own event, a failure domain, its host or a requirement fails; a requirement is one
logical service (its single replica, all replicas down, or too few up). Popular services are required by many.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from vigil.analysis.faulttree import FaultTree, GateKind

__all__ = ["Infrastructure", "infrastructure"]


@dataclass
class Infrastructure:
    tree: FaultTree
    services: list[str] = field(default_factory=list)  # one gate per service replica: the tops
    critical: list[str] = field(default_factory=list)
    components: int = 0
    sites: int = 0


def infrastructure(components: int, seed: int = 7) -> Infrastructure:
    """Return a random infrastructure of about ``components`` components (deterministic for a seed)."""
    rng = random.Random(seed)
    infra = Infrastructure(FaultTree())
    vms = _hosting(infra, rng, components)
    replicas = components - infra.components
    logical: list[list[str]] = []  # replica gates of each logical service, lowest layer first
    while replicas > 0:
        size = min(replicas, rng.choices([1, 2, 3, 5], weights=[50, 25, 20, 5])[0])
        logical.append([f"svc{len(logical)}.{i}" for i in range(size)])
        replicas -= size
    layers = 6
    for index, group in enumerate(logical):
        layer = index * layers // len(logical)
        below = layer * len(logical) // layers  # the services of the layers below
        requirements = _requirements(infra.tree, rng, logical[:below]) if below else []
        critical = rng.random() < 0.1
        for name in group:
            _component(infra, name, rng.choice(vms), requirements, rng)
            infra.services.append(name)
            if critical:
                infra.critical.append(name)
    return infra


def _event(tree: FaultTree, name: str, rng: random.Random) -> str:
    tree.add_event(f"{name}!", 10 ** rng.uniform(-4, -2))
    return f"{name}!"


def _hosting(infra: Infrastructure, rng: random.Random, components: int) -> list[str]:
    """Add sites, racks, hypervisors and VMs; return the VM gates."""
    tree = infra.tree
    sites = [f"site{i}" for i in range(max(2, components // 3000))]
    infra.sites = len(sites)
    for site in sites:
        tree.add_gate(site, GateKind.OR, [_event(tree, site, rng)])
        for feed in range(2):
            _event(tree, f"{site}.power{feed}", rng)
    racks, hypervisors, vms = [], [], []
    for i in range(max(4, components // 250)):
        site = sites[i % len(sites)]
        power = f"{site}.power{rng.randrange(2)}!"
        racks.append(tree.add_gate(f"rack{i}", GateKind.OR, [_event(tree, f"rack{i}", rng), site, power]).id)
    for i in range(max(8, components // 25)):
        hypervisors.append(
            tree.add_gate(f"hv{i}", GateKind.OR, [_event(tree, f"hv{i}", rng), racks[i % len(racks)]]).id
        )
    for i in range(max(16, components // 5)):
        vms.append(tree.add_gate(f"vm{i}", GateKind.OR, [_event(tree, f"vm{i}", rng), rng.choice(hypervisors)]).id)
    infra.components = len(sites) + len(racks) + len(hypervisors) + len(vms)
    return vms


def _requirements(tree: FaultTree, rng: random.Random, candidates: list[list[str]]) -> list[str]:
    """Pick 0-4 logical services below (popular = low index, Zipf-like) and return their requirement nodes."""
    chosen: list[str] = []
    for _ in range(rng.choice([0, 1, 2, 2, 3, 4])):
        index = min(int(len(candidates) * rng.random() ** 3), len(candidates) - 1)
        group = candidates[index]
        if len(group) == 1:
            chosen.append(group[0])
            continue
        up = rng.choice([1, 1, len(group) // 2 + 1])
        gate = f"req:{group[0]}:{up}"
        if gate not in tree.gates:
            if up == 1:
                tree.add_gate(gate, GateKind.AND, group)
            else:
                tree.add_gate(gate, GateKind.ATLEAST, group, len(group) - up + 1)
        chosen.append(gate)
    return list(dict.fromkeys(chosen))


def _component(infra: Infrastructure, name: str, vm: str, requirements: list[str], rng: random.Random) -> None:
    tree = infra.tree
    children = [_event(tree, name, rng), vm, *requirements]
    if rng.random() < 0.2:
        children.append(f"site{rng.randrange(infra.sites)}.power{rng.randrange(2)}!")
    tree.add_gate(name, GateKind.OR, children)
    infra.components += 1
