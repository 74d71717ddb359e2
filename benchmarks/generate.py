"""Generate realistic synthetic Vigil infrastructures for benchmarks, deterministic per seed.

The shape follows what real fleets look like, in three layers whose dependencies only point downwards (so
the hard-dependency graph is a DAG):

* infrastructure: providers with sites (failure domains), A/B power feeds and racks within each site, provider
  maintenance groups covering some racks' hypervisors; a redundant core network per site, a top-of-rack
  switch per rack, hypervisors and bare-metal hosts in the racks;
* platform services: DNS resolvers behind an ``any`` group, an authentication cluster, database clusters
  (primary + replica on hosts in two racks, ``any``), message-queue clusters (``at_least``), NFS servers
  (some replicated in pairs), load balancers, caches and monitoring;
* application services, grouped in product areas and in three layers (backend, mid, frontend), each a
  cluster of replicas (containers on VMs on hypervisors) behind an ``at_least``/``any`` group. Replicas are
  spread over distinct hypervisors, except for a few services where two replicas ended up on the same
  hypervisor: the realistic single point of failure that the analysis should find.

About 20 % of the logical services (components of kind ``service``) are critical; most components and
domains carry an availability or an MTBF/MTTR, some rely on the model default. Popular services (``dns``,
``auth``, ``db-main``) have thousands of dependants in large models. ``--components`` is the approximate
total component count (domains come on top, about 1 % more).

Usage::

    python benchmarks/generate.py --components 10000 --seed 1 -o /tmp/m10k.yaml
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

__all__ = ["generate", "write"]

# Probability that a service's replicas are badly placed (two on one hypervisor).
SPOF_RATE = 0.04
CRITICAL_RATE = 0.2  # of application services; the platform services are critical too
BEST_EFFORT_RATE = 0.15

_AREAS = (
    "billing",
    "search",
    "catalog",
    "checkout",
    "identity",
    "payments",
    "shipping",
    "inventory",
    "reviews",
    "ads",
    "media",
    "messaging",
    "reporting",
    "analytics",
    "support",
    "notifications",
    "pricing",
    "recommend",
    "loyalty",
    "partners",
    "fraud",
    "ledger",
    "onboarding",
    "maps",
    "video",
    "chat",
    "calendar",
    "docs",
    "storage",
    "mobile",
)
_ROLES = {
    "backend": ("store", "indexer", "worker", "sync", "ingest", "cron", "scheduler", "archiver"),
    "mid": ("api", "graphql", "rpc", "core", "gateway", "engine", "aggregator"),
    "frontend": ("web", "frontend", "portal", "admin", "edge", "bff"),
}
_REPLICA_AVAILABILITY = (0.999, 0.9995, 0.998, 0.995, "99.9%", "99.95%")
_SERVICE_AVAILABILITY = (0.9999, 0.99995, 0.99999, "99.99%")
_OWNERS = ("team-sre", "team-platform", "team-data", "team-web", "team-core", "team-infra", "team-growth")


@dataclass(slots=True)
class _Site:
    id: str
    provider: str
    racks: list[str] = field(default_factory=list)
    hypervisors: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    lbs: str = ""


@dataclass(slots=True)
class _Builder:
    rng: random.Random
    target: int
    domains: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    sites: list[_Site] = field(default_factory=list)
    host_rack: dict[str, str] = field(default_factory=dict)  # host/hypervisor id -> rack id

    # -- helpers -------------------------------------------------------------------------------------------

    def domain(self, id: str, kind: str, *, within: list[str] | None = None, **extra: Any) -> str:
        entry: dict[str, Any] = {"id": id, "kind": kind}
        entry.update(extra)
        if within:
            entry["domains"] = within
        self.domains.append(entry)
        return id

    def component(self, id: str, kind: str, **fields: Any) -> str:
        if id in self.ids:  # every id is made unique by construction; this guards refactoring mistakes
            raise AssertionError(f"duplicate id {id}")
        entry: dict[str, Any] = {"id": id, "kind": kind}
        entry.update({k: _copy(v) for k, v in fields.items() if v not in (None, [], "")})
        self.components.append(entry)
        self.ids.add(id)
        return id

    def failure_data(
        self, *, mtbf: tuple[str, ...] = (), mttr: tuple[str, ...] = (), avail: tuple[Any, ...] = ()
    ) -> dict[str, Any]:
        """Return an availability or an MTBF/MTTR pair; about 8 % of components rely on the model default."""
        roll = self.rng.random()
        if roll < 0.08:
            return {}
        if mtbf and (not avail or roll < 0.5):
            return {"mtbf": self.rng.choice(mtbf), "mttr": self.rng.choice(mttr)}
        return {"availability": self.rng.choice(avail)}

    def owner(self) -> str:
        return self.rng.choice(_OWNERS)

    def spread(self, count: int, *, sites: list[_Site], bad_placement: bool) -> list[str]:
        """Pick ``count`` hypervisors spread over ``sites`` (distinct unless ``bad_placement``)."""
        pools = [s.hypervisors for s in sites]
        chosen: list[str] = []
        for index in range(count):
            pool = pools[index % len(pools)]
            free = [h for h in self.rng.sample(pool, min(len(pool), count + 2)) if h not in chosen]
            chosen.append(free[0] if free else self.rng.choice(pool))
        if bad_placement and count >= 2:
            chosen[1] = chosen[0]
        return chosen

    def cluster(
        self,
        name: str,
        replicas: int,
        *,
        sites: list[_Site],
        instance_kind: str = "container",
        group: str = "at_least",
        bad_placement: bool = False,
        instance_avail: tuple[Any, ...] = _REPLICA_AVAILABILITY,
    ) -> dict[str, Any]:
        """Create ``replicas`` VMs (on hypervisors) each running one instance; return the redundancy group."""
        instances = []
        for index, hypervisor in enumerate(self.spread(replicas, sites=sites, bad_placement=bad_placement), 1):
            vm = self.component(
                f"{name}-vm{index}",
                "vm",
                runs_on=hypervisor,
                **self.failure_data(mtbf=("2160h", "4380h"), mttr=("30m", "1h"), avail=(0.9995, 0.9999)),
            )
            instances.append(
                self.component(f"{name}-{index}", instance_kind, runs_on=vm, **self.failure_data(avail=instance_avail))
            )
        return _group(instances, group, self.rng)

    # -- layers --------------------------------------------------------------------------------------------

    def infrastructure(self) -> None:
        rng, n = self.rng, self.target
        providers = [f"prov-{c}" for c in "abc"[: 2 if n < 20_000 else 3]]
        for prov in providers:
            self.domain(
                prov, "provider", availability=rng.choice((0.99999, 0.999995)), name=f"Provider {prov[-1].upper()}"
            )
        site_count = max(2, min(16, round(n / 6000)))
        hypervisor_count = max(8, round(n * 0.035))
        host_count = max(6, round(n * 0.008))
        for index in range(site_count):
            prov = providers[index % len(providers)]
            site = _Site(f"site{index + 1:02d}", prov)
            self.sites.append(site)
            self.domain(site.id, "site", within=[prov], mtbf="43800h", mttr=rng.choice(("6h", "12h", "24h")))
            for feed in "ab":
                self.domain(
                    f"{site.id}-power-{feed}", "power", within=[site.id], availability=rng.choice((0.9998, 0.9999))
                )
            cores = [
                self.component(
                    f"{site.id}-core{i}", "network", domains=[site.id], availability=0.99995, owner="team-net"
                )
                for i in (1, 2)
            ]
            rack_count = max(2, round((hypervisor_count + host_count) / site_count / 16))
            for r in range(rack_count):
                rack = self.domain(
                    f"{site.id}-rack{r + 1:02d}",
                    "rack",
                    within=[site.id, f"{site.id}-power-{'ab'[r % 2]}"],
                    **self.failure_data(mtbf=("26280h", "43800h"), mttr=("4h", "8h"), avail=(0.9995, 0.9999)),
                )
                site.racks.append(rack)
                self.component(
                    f"{rack}-tor",
                    "network",
                    domains=[rack],
                    depends_on=[{"any": cores, "name": "core network"}],
                    owner="team-net",
                    **self.failure_data(mtbf=("43800h",), mttr=("2h", "4h"), avail=(0.9999,)),
                )
        # Maintenance groups: the provider patches a quarter of its racks' hypervisors at once.
        groups: dict[str, list[str]] = {}
        for prov in providers:
            for g in range(1 if prov.endswith("c") else 2):
                gid = self.domain(f"{prov}-maint{g + 1}", "maintenance_group", within=[prov], availability=0.9995)
                racks = [r for s in self.sites if s.provider == prov for r in s.racks]
                for rack in rng.sample(racks, max(1, len(racks) // 4)):
                    groups.setdefault(rack, []).append(gid)
        for index in range(hypervisor_count):
            site = self.sites[index % site_count]
            rack = site.racks[(index // site_count) % len(site.racks)]
            hv = self.component(
                f"{rack}-hv{len(site.hypervisors) + 1:03d}",
                "hypervisor",
                domains=[rack, *groups.get(rack, [])],
                depends_on=[f"{rack}-tor"],
                owner="team-infra",
                **self.failure_data(mtbf=("8760h", "17520h"), mttr=("4h", "8h", "24h"), avail=(0.9995,)),
            )
            site.hypervisors.append(hv)
            self.host_rack[hv] = rack
        for index in range(host_count):
            site = self.sites[index % site_count]
            rack = site.racks[-1 - (index // site_count) % len(site.racks)]
            host = self.component(
                f"{rack}-host{len(site.hosts) + 1:03d}",
                "host",
                domains=[rack],
                depends_on=[f"{rack}-tor"],
                owner="team-infra",
                **self.failure_data(mtbf=("17520h", "26280h"), mttr=("8h", "12h"), avail=(0.9995,)),
            )
            site.hosts.append(host)
            self.host_rack[host] = rack

    def platform(self) -> dict[str, list[str]]:
        """Create the shared services; return their ids by role, popular ones first."""
        rng, n = self.rng, self.target
        sites = self.sites
        two = sites[:2]
        crit = {"tier": "critical"}
        # DNS: two resolvers per site, the service needs any of them.
        resolvers = []
        for site in sites[: min(len(sites), 4)]:
            for i in (1, 2):
                vm = self.component(
                    f"{site.id}-dns-vm{i}",
                    "vm",
                    runs_on=self.spread(1, sites=[site], bad_placement=False)[0],
                    availability=0.9995,
                )
                resolvers.append(self.component(f"{site.id}-dns{i}", "dns", runs_on=vm, availability=0.999))
        dns = self.component(
            "dns",
            "service",
            name="Internal DNS",
            owner="team-net",
            **crit,
            slo=99.99,
            availability=0.99999,
            depends_on=[{"any": resolvers, "name": "resolvers"}],
        )
        # Databases: primary + replica on bare-metal hosts in different racks (usually different sites).
        db_count = max(2, round(n / 2500))
        databases = []
        for index in range(db_count):
            name = "db-main" if index == 0 else f"db-{index:03d}"
            site_a = sites[index % len(sites)]
            site_b = sites[(index + 1) % len(sites)] if rng.random() < 0.7 else site_a
            members = []
            for role, site in (("primary", site_a), ("replica", site_b)):
                others = [h for h in site.hosts if h not in members]
                host = rng.choice(others)
                members.append(
                    self.component(
                        f"{name}-{role}",
                        "database",
                        runs_on=host,
                        depends_on=[dns] if rng.random() < 0.3 else [],
                        **self.failure_data(mtbf=("4380h", "8760h"), mttr=("1h", "2h"), avail=(0.999, 0.9995)),
                    )
                )
            databases.append(
                self.component(
                    name,
                    "database",
                    owner="team-data",
                    **(crit if index < 2 else {}),
                    depends_on=[{"any": members, "name": "primary or replica"}],
                    availability=0.99995,
                )
            )
        # Authentication: a 2-of-3 (or 3-of-5) cluster that needs DNS and the main database.
        auth_group = self.cluster("auth", 5 if n >= 20_000 else 3, sites=two)
        auth = self.component(
            "auth",
            "service",
            name="Authentication",
            owner="team-identity",
            **crit,
            slo=99.95,
            depends_on=[auth_group, dns, databases[0]],
            availability=0.99995,
        )
        # Message queues: 2 of 3 brokers.
        queues = []
        for index in range(max(1, round(n / 5000))):
            name = f"queue-{index + 1:02d}"
            group = self.cluster(name, 3, sites=[sites[index % len(sites)]], instance_kind="queue", group="at_least")
            queues.append(
                self.component(name, "queue", owner="team-platform", depends_on=[group, dns], availability=0.9999)
            )
        # NFS servers on bare-metal hosts; some services use a replicated pair (any of two), others just one.
        nfs = []
        for index in range(max(2, round(n / 3000))):
            site = sites[index % len(sites)]
            host = rng.choice(site.hosts)
            nfs.append(
                self.component(
                    f"nfs-{index + 1:02d}",
                    "storage",
                    runs_on=host,
                    owner="team-storage",
                    **self.failure_data(mtbf=("8760h",), mttr=("4h", "6h"), avail=(0.999,)),
                )
            )
        # Load balancers: a pair per site.
        for site in sites:
            pair = [
                self.component(f"{site.id}-lb{i}", "load_balancer", runs_on=rng.choice(site.hosts), availability=0.9999)
                for i in (1, 2)
            ]
            site.lbs = self.component(
                f"{site.id}-lb", "service", depends_on=[{"any": pair}], owner="team-net", availability=0.99999
            )
        monitoring = self.component(
            "monitoring",
            "service",
            owner="team-sre",
            tier="best-effort",
            depends_on=[self.cluster("monitoring", 2, sites=two, group="any"), dns],
            availability=0.999,
        )
        return {"dns": [dns], "auth": [auth], "db": databases, "queue": queues, "nfs": nfs, "monitoring": [monitoring]}

    def applications(self, platform: dict[str, list[str]]) -> int:
        """Add application services by product area until the component target is reached; return their count."""
        rng = self.rng
        layers: dict[str, dict[str, list[str]]] = {"backend": {}, "mid": {}, "frontend": {}}
        caches: dict[str, dict[str, Any]] = {}
        count = 0
        area_count = max(3, min(len(_AREAS) * 20, round(self.target / 300)))
        while len(self.components) < self.target:
            area_index = count % area_count
            area = _AREAS[area_index % len(_AREAS)] + (
                "" if area_index < len(_AREAS) else f"{area_index // len(_AREAS)}"
            )
            per_area = count // area_count
            layer = ("backend", "mid", "backend", "frontend", "mid")[per_area % 5]
            role = rng.choice(_ROLES[layer])
            name = f"{area}-{role}-{per_area + 1}"
            count += 1
            tier = rng.random()
            critical = tier < CRITICAL_RATE
            home = rng.sample(self.sites, 2 if critical or rng.random() < 0.3 else 1)
            replicas = rng.choice((2, 3, 3, 3, 4, 5, 6)) if layer != "frontend" else rng.choice((2, 3, 4))
            mode = "any" if replicas == 2 or rng.random() < 0.15 else "at_least"
            requirements: list[Any] = [
                self.cluster(name, replicas, sites=home, group=mode, bad_placement=rng.random() < SPOF_RATE)
            ]
            if rng.random() < 0.85:
                requirements.append(platform["dns"][0])
            if (layer != "backend" and rng.random() < 0.6) or rng.random() < 0.2:
                requirements.append(platform["auth"][0])
            if layer == "backend" and rng.random() < 0.7:
                db = platform["db"][0] if rng.random() < 0.3 else rng.choice(platform["db"])
                requirements.append(db)
            if rng.random() < 0.25:
                requirements.append(rng.choice(platform["queue"]))
            if rng.random() < 0.15:
                pick = rng.randrange(len(platform["nfs"]) - 1)
                if rng.random() < 0.4:
                    requirements.append({"any": platform["nfs"][pick : pick + 2], "name": "file storage"})
                else:
                    requirements.append(
                        {"id": platform["nfs"][pick], "startup_only": rng.random() < 0.5, "name": "file storage"}
                    )
            if rng.random() < 0.6:
                requirements.append({"id": platform["monitoring"][0], "optional": True})
            # Lower layers of the same product area (rarely another area): the DAG goes frontend → mid → backend.
            lower = {"backend": None, "mid": "backend", "frontend": "mid"}[layer]
            if lower is not None:
                pool = layers[lower].get(area) or [s for ids in layers[lower].values() for s in ids]
                if pool:
                    for dep in rng.sample(pool, min(len(pool), rng.choice((1, 1, 2, 3)))):
                        if rng.random() < 0.1:
                            requirements.append({"id": dep, "optional": True})
                        else:
                            requirements.append(dep)
            if layer == "frontend":
                requirements.append(home[0].lbs)
            if layer == "mid" and rng.random() < 0.4:
                if area not in caches:
                    cache = f"{area}-cache"
                    group = self.cluster(cache, 3, sites=home, instance_kind="cache", group="any")
                    self.component(cache, "service", owner=self.owner(), depends_on=[group], availability=0.9999)
                    caches[area] = {"id": cache, "optional": True, "name": "cache"}
                requirements.append(caches[area])
            fields: dict[str, Any] = {
                "owner": f"team-{area}",
                "depends_on": requirements,
                **self.failure_data(avail=_SERVICE_AVAILABILITY),
            }
            if critical:
                fields["tier"] = "critical"
                fields["slo"] = rng.choice((99.9, 99.95, 99.99))
            elif tier > 1 - BEST_EFFORT_RATE:
                fields["tier"] = "best-effort"
            self.component(name, "service", **fields)
            layers[layer].setdefault(area, []).append(name)
        return count


def _copy(value: Any) -> Any:
    """Return a copy of lists and dicts so that no two entries share an object (YAML would write anchors)."""
    if isinstance(value, list):
        return [_copy(v) for v in value]
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value


def _group(members: list[str], mode: str, rng: random.Random) -> dict[str, Any]:
    n = len(members)
    if mode == "any" or n == 1:
        return {"any": members, "name": "replicas"}
    if mode == "all":
        return {"all": members}
    k = n - 1 if n <= 3 or rng.random() < 0.5 else (n + 1) // 2
    return {"at_least": k, "of": members, "name": "replicas"}


def generate(components: int, seed: int) -> dict[str, Any]:
    """Return a model (the YAML file's data) of about ``components`` components, the same for the same seed."""
    if components < 50:
        raise ValueError("components must be at least 50")
    builder = _Builder(random.Random(seed), components)
    builder.infrastructure()
    platform = builder.platform()
    builder.applications(platform)
    return {
        "version": 1,
        "name": f"synthetic-{components}-seed{seed}",
        "defaults": {"availability": 0.999},
        "domains": builder.domains,
        "components": builder.components,
    }


def write(data: dict[str, Any], path: str | Path) -> Path:
    """Write a generated model as YAML (libyaml's emitter when available); return the path."""
    out = Path(path)
    with out.open("w", encoding="utf-8") as handle:
        _dump(data, handle)
    return out


def _dump(data: dict[str, Any], stream: TextIO) -> None:
    dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    yaml.dump(data, stream, Dumper=dumper, sort_keys=False, default_flow_style=None, width=200)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--components", type=int, default=1000, help="approximate number of components")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("-o", "--output", default="-", help="YAML file to write ('-' for stdout)")
    args = parser.parse_args(argv)
    data = generate(args.components, args.seed)
    if args.output == "-":
        _dump(data, sys.stdout)
    else:
        write(data, args.output)
        print(f"{args.output}: {len(data['components'])} components, {len(data['domains'])} domains", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
