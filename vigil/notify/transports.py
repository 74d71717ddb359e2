"""Sending one message over one channel: the signed webhook, SMTP e-mail, and Apprise for everything else.

Each ``send_*`` is a coroutine that returns when the message was accepted and raises :class:`TransportError`
otherwise (``permanent``: retrying cannot help, e.g. a 4xx answer). Blocking libraries (smtplib, Apprise) run
in a thread, so the event loop (and the checks on it) never waits on a mail server. The dispatcher bounds each
call with the channel's timeout.

Webhook signature: the body is the JSON payload as bytes; with ``t`` the Unix time in whole seconds (sent as
``X-Vigil-Timestamp: t``), ``X-Vigil-Signature: sha256=<hex HMAC-SHA256(secret, f"{t}." + body)>``. The
timestamp is inside the signed content, so a receiver that refuses old timestamps refuses replays.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import smtplib
import time
from email.message import EmailMessage
from typing import Any

import httpx

from vigil.notify.config import AppriseChannel, SmtpChannel, WebhookChannel

Channel = AppriseChannel | WebhookChannel | SmtpChannel

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Channel",
    "TransportError",
    "render",
    "send",
    "sign",
]

SIGNATURE_HEADER = "X-Vigil-Signature"
TIMESTAMP_HEADER = "X-Vigil-Timestamp"
DELIVERY_HEADER = "X-Vigil-Delivery"  # the delivery id: the same on every retry, so receivers can drop repeats


class TransportError(Exception):
    """A message was not delivered; ``permanent`` when trying again cannot succeed."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Return the ``X-Vigil-Signature`` value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def render(payload: dict[str, Any]) -> tuple[str, str]:
    """Return the subject and plain-text body of a message about the change in ``payload``."""
    incident = payload["incident"]
    what = "opened" if payload["change"] == "opened" else incident["status"]
    subject = f"[Vigil] Incident #{incident['id']} {what}: {incident['title']}"
    lines = [
        f"Incident #{incident['id']}: {incident['title']}",
        f"Status: {incident['status']}"
        + (f" (was {payload['previous_status']})" if payload.get("previous_status") else ""),
        f"Impact: {incident['impact']}",
    ]
    if incident.get("probable_cause"):
        lines.append(f"Probable cause: {incident['probable_cause']}")
    lines.append("Affected components:")
    lines.extend(f"- {c['id']}: {c['status']}" for c in incident["components"])
    if not incident["components"]:
        lines.append("- none")
    lines.append(f"At: {payload['at']}")
    return subject, "\n".join(lines) + "\n"


async def send_webhook(channel: WebhookChannel, payload: dict[str, Any], delivery_id: int) -> None:
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(channel.secret, timestamp, body),
        DELIVERY_HEADER: str(delivery_id),
        "User-Agent": "Vigil",
    }
    try:
        async with httpx.AsyncClient(timeout=channel.timeout, follow_redirects=False) as client:
            response = await client.post(channel.url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise TransportError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from exc
    if response.is_success:
        return
    # A 4xx says the request itself is wrong (bad secret, gone): retrying the same bytes cannot help, except
    # for the two that mean "not now".
    permanent = 400 <= response.status_code < 500 and response.status_code not in (408, 429)
    raise TransportError(f"HTTP {response.status_code}", permanent=permanent)


def _smtp_send(channel: SmtpChannel, message: EmailMessage) -> None:
    with smtplib.SMTP(channel.host, channel.port, timeout=channel.timeout) as smtp:
        if channel.starttls:
            smtp.starttls()
        if channel.username:
            smtp.login(channel.username, channel.password or "")
        smtp.send_message(message)


async def send_smtp(channel: SmtpChannel, payload: dict[str, Any]) -> None:
    subject, text = render(payload)
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = channel.sender
    message["To"] = ", ".join(channel.to)
    message.set_content(text)
    try:
        await asyncio.to_thread(_smtp_send, channel, message)
    except smtplib.SMTPAuthenticationError as exc:
        raise TransportError(f"SMTP authentication failed: {exc.smtp_code}", permanent=True) from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise TransportError(f"{type(exc).__name__}: {exc}") from exc


def _apprise_send(url: str, subject: str, text: str) -> bool:
    import apprise  # loads every plugin: only when an Apprise channel is used

    notifier = apprise.Apprise()
    if not notifier.add(url):
        return False
    return bool(notifier.notify(body=text, title=subject))


async def send_apprise(channel: AppriseChannel, payload: dict[str, Any]) -> None:
    subject, text = render(payload)
    if not await asyncio.to_thread(_apprise_send, channel.url, subject, text):
        raise TransportError("Apprise reported a failure (see the server log for the service's answer)")


async def send(channel: Channel, payload: dict[str, Any], delivery_id: int) -> None:
    """Send ``payload`` over ``channel``; raises TransportError."""
    if isinstance(channel, WebhookChannel):
        await send_webhook(channel, payload, delivery_id)
    elif isinstance(channel, SmtpChannel):
        await send_smtp(channel, payload)
    else:
        await send_apprise(channel, payload)
