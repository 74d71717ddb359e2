"""TLS certificate checks: the chain and host name must verify; expiry soon is degraded, past is down."""

from __future__ import annotations

import asyncio
import ssl
from datetime import UTC, datetime
from functools import cache

from cryptography import x509
from cryptography.x509.oid import NameOID

from vigil.monitors.guard import Progress, Verdict, guarded
from vigil.monitors.result import CheckResult, Outcome
from vigil.monitors.schemas import TlsMonitorSpec
from vigil.monitors.texts import days_text

__all__ = ["CertificateInfo", "check", "read_certificate"]

# OpenSSL's X509_V_ERR_* codes that get a reason of their own.
_NOT_YET_VALID, _EXPIRED, _HOSTNAME_MISMATCH = 9, 10, 62


class CertificateInfo:
    """The facts about a leaf certificate that a person needs to find and renew it."""

    def __init__(self, der: bytes) -> None:
        cert = x509.load_der_x509_certificate(der)
        self.not_before: datetime = cert.not_valid_before_utc
        self.not_after: datetime = cert.not_valid_after_utc
        self.names: list[str] = _dns_names(cert)
        # Leaf certificates often have no CN any more: the first SAN names them better than the organisation.
        first_name = self.names[0] if self.names else ""
        subject = _name_text(cert.subject, NameOID.COMMON_NAME) or first_name or _name_text(cert.subject)
        self.subject: str = subject or "?"
        self.issuer: str = _name_text(cert.issuer, NameOID.COMMON_NAME) or _name_text(cert.issuer) or "?"

    def label(self) -> str:
        """Return ``"CN=example.com, issuer R3"``: what to look for in the certificate inventory."""
        return f"CN={self.subject}, issuer {self.issuer}"

    def details(self, now: datetime) -> dict[str, object]:
        """Return JSON-friendly facts for the check result."""
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "names": self.names,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "days_left": round((self.not_after - now).total_seconds() / 86400, 2),
        }


def read_certificate(der: bytes) -> CertificateInfo:
    """Return the parsed certificate; raises ValueError when it is not DER X.509."""
    return CertificateInfo(der)


async def check(
    spec: TlsMonitorSpec, *, context: ssl.SSLContext | None = None, now: datetime | None = None
) -> CheckResult:
    """Return the result of a TLS handshake with ``spec.host:spec.port``; never raises.

    ``context`` defaults to the system trust store with host name checking; ``now`` (for tests) to the clock.
    Down when the handshake fails or the certificate is invalid, expired or for another name; degraded within
    ``degraded_days`` of expiry. The reason names the certificate (subject, issuer) in every case it could be read.
    """
    return await guarded(spec, lambda progress: _probe(spec, context or _default_context(), now, progress))


async def _probe(spec: TlsMonitorSpec, context: ssl.SSLContext, now: datetime | None, progress: Progress) -> Verdict:
    progress.step = "during the TLS handshake"
    try:
        der = await _peer_certificate(spec, context)
    except ssl.SSLCertVerificationError as exc:
        return await _invalid(spec, exc, now or datetime.now(UTC))
    info = CertificateInfo(der)
    moment = now or datetime.now(UTC)
    left = (info.not_after - moment).total_seconds()
    details = info.details(moment)
    if left <= 0:
        return Verdict(Outcome.DOWN, f"certificate expired {days_text(-left)} ago ({info.label()})", details)
    if left < spec.degraded_days * 86400:
        return Verdict(Outcome.DEGRADED, f"certificate expires in {days_text(left)} ({info.label()})", details)
    return Verdict(Outcome.UP, f"certificate valid for {days_text(left)} ({info.label()})", details)


async def _invalid(spec: TlsMonitorSpec, error: ssl.SSLCertVerificationError, now: datetime) -> Verdict:
    # Verification failed, so fetch the certificate again without verifying it, only to name it in the reason.
    try:
        info: CertificateInfo | None = CertificateInfo(await _peer_certificate(spec, _unverified_context()))
    except (OSError, ValueError):
        info = None
    label = f" ({info.label()})" if info else ""
    details = info.details(now) if info else {}
    if error.verify_code == _EXPIRED and info is not None:
        left = (info.not_after - now).total_seconds()
        return Verdict(Outcome.DOWN, f"certificate expired {days_text(-left)} ago{label}", details)
    if error.verify_code == _HOSTNAME_MISMATCH:
        name = spec.server_name or spec.host
        return Verdict(Outcome.DOWN, f"hostname mismatch: certificate is not valid for {name!r}{label}", details)
    if error.verify_code == _NOT_YET_VALID and info is not None:
        start = f"{info.not_before:%Y-%m-%d %H:%M} UTC"
        return Verdict(Outcome.DOWN, f"certificate not valid before {start}{label}", details)
    return Verdict(Outcome.DOWN, f"invalid certificate: {error.verify_message}{label}", details)


async def _peer_certificate(spec: TlsMonitorSpec, context: ssl.SSLContext) -> bytes:
    """Return the server's leaf certificate (DER) after a handshake; raises OSError or ssl errors."""
    name = spec.server_name or spec.host
    _, writer = await asyncio.open_connection(spec.host, spec.port, ssl=context, server_hostname=name)
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    finally:
        writer.transport.abort()  # no TLS close_notify dance: a server that stalls on it would eat the timeout
    if not der:
        raise ssl.SSLError("the server sent no certificate")
    return bytes(der)


@cache
def _default_context() -> ssl.SSLContext:
    return ssl.create_default_context()


@cache
def _unverified_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _name_text(name: x509.Name, *oids: x509.ObjectIdentifier) -> str:
    """Return the first attribute of ``name`` among ``oids`` (default: organisation, then unit), or ""."""
    for oid in oids or (NameOID.ORGANIZATION_NAME, NameOID.ORGANIZATIONAL_UNIT_NAME):
        values = name.get_attributes_for_oid(oid)
        if values:
            return str(values[0].value)
    return ""


def _dns_names(cert: x509.Certificate) -> list[str]:
    try:
        extension = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    names = extension.value.get_values_for_type(x509.DNSName)
    addresses = [str(address) for address in extension.value.get_values_for_type(x509.IPAddress)]
    return [*names, *addresses]
