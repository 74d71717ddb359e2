"""DNS checks: resolve a name through dnspython's asynchronous resolver and compare the answer."""

from __future__ import annotations

import dns.asyncresolver
import dns.exception
import dns.rdata
import dns.rdatatype
import dns.resolver

from vigil.monitors.errors import first_line
from vigil.monitors.guard import Progress, Verdict, guarded
from vigil.monitors.result import CheckResult, Outcome
from vigil.monitors.schemas import DnsMonitorSpec, split_nameserver

__all__ = ["check", "record_text"]


async def check(spec: DnsMonitorSpec, *, resolver: dns.asyncresolver.Resolver | None = None) -> CheckResult:
    """Return the result of resolving ``spec.name``; never raises.

    Uses ``spec.nameserver`` when set, else ``resolver``, else the system's resolvers (/etc/resolv.conf). Down on
    NXDOMAIN, no record of the type, no nameserver answering, a timeout, or an expected value missing from the
    answer; the reason names the DNS error and the name ("DNS error: NXDOMAIN for db.example.com").
    """
    return await guarded(spec, lambda progress: _probe(spec, resolver, progress))


async def _probe(spec: DnsMonitorSpec, resolver: dns.asyncresolver.Resolver | None, progress: Progress) -> Verdict:
    resolver = _resolver_for(spec, resolver)
    progress.step = f"waiting for {', '.join(str(server) for server in resolver.nameservers)}"
    try:
        answer = await resolver.resolve(spec.name, spec.record_type, lifetime=spec.timeout, search=False)
    except dns.resolver.LifetimeTimeout as exc:
        raise TimeoutError from exc  # the guard names the limit and the nameservers it waited for
    except dns.resolver.NXDOMAIN:
        return Verdict(Outcome.DOWN, f"DNS error: NXDOMAIN for {spec.name}")
    except dns.resolver.NoAnswer:
        return Verdict(Outcome.DOWN, f"DNS error: no {spec.record_type} record for {spec.name}")
    except dns.resolver.NoNameservers as exc:
        return Verdict(Outcome.DOWN, f"DNS error: no nameserver answered for {spec.name}: {_server_errors(exc)}")
    except dns.exception.DNSException as exc:
        return Verdict(Outcome.DOWN, f"DNS error for {spec.name}: {first_line(exc) or type(exc).__name__}")
    values = sorted((record_text(rdata) for rdata in answer), key=_order)
    details: dict[str, object] = {"values": values, "ttl": answer.rrset.ttl if answer.rrset is not None else None}
    missing = [value for value in spec.expected if not _present(value, values, spec.record_type)]
    shown = ", ".join(values[:10]) + (", …" if len(values) > 10 else "")
    if missing:
        expected = ", ".join(missing)
        return Verdict(Outcome.DOWN, f"{spec.name} {spec.record_type} is {shown}, expected {expected}", details)
    return Verdict(Outcome.UP, f"{spec.name} {spec.record_type} is {shown}", details)


def _resolver_for(spec: DnsMonitorSpec, given: dns.asyncresolver.Resolver | None) -> dns.asyncresolver.Resolver:
    if spec.nameserver is None:
        return given or dns.asyncresolver.Resolver()
    address, port = split_nameserver(spec.nameserver)
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [address]
    resolver.port = port
    return resolver


def record_text(rdata: dns.rdata.Rdata) -> str:
    """Return a record's value as people compare it: '192.0.2.1', 'alias.example.com', '10 mx.example.com'."""
    if rdata.rdtype == dns.rdatatype.TXT:
        return "".join(part.decode(errors="replace") for part in getattr(rdata, "strings", ()))
    return rdata.to_text().rstrip(".").lower()


def _order(value: str) -> tuple[int, str]:
    # Answers come in any order; sorted, the reason stays the same from one check to the next. MX by preference.
    preference, _, rest = value.partition(" ")
    return (int(preference), rest) if preference.isdigit() and rest else (0, value)


def _present(expected: str, values: list[str], record_type: str) -> bool:
    if record_type == "TXT":
        return expected in values
    wanted = expected.strip().rstrip(".").lower()
    # An MX may be expected with or without its preference: 'mx.example.com' or '10 mx.example.com'.
    return any(wanted in (value, value.split(" ", 1)[-1]) for value in values)


def _server_errors(exc: dns.resolver.NoNameservers) -> str:
    # dnspython keeps one (server, tcp, port, error, answer) entry per server it tried.
    errors = exc.kwargs.get("errors") or []
    parts = [f"{entry[0]}: {first_line(entry[3])}" for entry in errors[:3] if len(entry) >= 4]
    return "; ".join(parts) or first_line(exc)
