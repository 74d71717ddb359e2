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
    "render_subscriber",
    "send",
    "send_subscriber",
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
    # Escalation (issue 4): say why the message comes again; link to acknowledge.
    what = {"reminder": f"{what}, not acknowledged", "escalation": f"{what}, escalated"}.get(payload["change"], what)
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
    if payload.get("ack_url"):  # escalation (issue 4)
        lines.append(f"Acknowledge: {payload['ack_url']}")
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


# -- subscribers (0007, docs/subscribers.md) -----------------------------------------------------------------
def render_subscriber(payload: dict[str, Any], *, confirm_url: str, unsubscribe_url: str) -> tuple[str, str]:
    """Return the subject and text of a message to a subscriber: a confirmation request, an incident change or
    a maintenance announcement; each ends with the unsubscribe link."""
    change = payload["change"]
    if change == "confirm":
        subject = "[Vigil] Confirm your subscription"
        text = (
            "Someone (hopefully you) subscribed this address to status notifications.\n"
            f"To confirm, open this link and press the button:\n{confirm_url}\n\n"
            "If it was not you, ignore this message: nothing will be sent without confirmation.\n"
        )
    elif change == "maintenance":
        window = payload["maintenance"]
        what = {"scheduled": "scheduled", "in_progress": "started", "completed": "completed"}.get(
            window["status"], window["status"]
        )
        subject = f"[Vigil] Maintenance {what}: {window['title']}"
        lines = [
            f"Maintenance: {window['title']}",
            f"Status: {window['status']}",
            f"From {window['starts_at']} to {window['ends_at']}",
            "Components: " + ", ".join(window["components"]),
        ]
        if window.get("message"):
            lines.append(window["message"])
        text = "\n".join(lines) + "\n"
    else:
        subject, text = render(payload)
    return subject, f"{text}\nUnsubscribe: {unsubscribe_url}\n"


async def send_subscriber(
    target: dict[str, Any],
    payload: dict[str, Any],
    delivery_id: int,
    *,
    mail: SmtpChannel | None,
    public_url: str,
    timeout: float,
) -> None:
    """Send ``payload`` to a subscriber (``target``: see vigil.notify.service.Claimed); raises TransportError.

    E-mail goes through ``mail`` (the config's SMTP channel ``subscribers``; its ``to`` is not used); a webhook
    is signed with the subscriber's own secret and carries the unsubscribe URL in the JSON.
    """
    base = public_url.rstrip("/")
    confirm_url = f"{base}/subscribe/confirm/{target['confirm_token']}"
    unsubscribe_url = f"{base}/subscribe/unsubscribe/{target['unsubscribe_token']}"
    if target["kind"] == "webhook":
        channel = WebhookChannel.model_construct(
            id="subscriber", type="webhook", url=target["address"], secret=target["secret"] or "", timeout=timeout
        )
        await send_webhook(channel, {**payload, "unsubscribe_url": unsubscribe_url}, delivery_id)
        return
    if mail is None:
        raise TransportError("no SMTP channel with id 'subscribers' in the config")
    subject, text = render_subscriber(payload, confirm_url=confirm_url, unsubscribe_url=unsubscribe_url)
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = mail.sender
    message["To"] = target["address"]
    message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    message.set_content(text)
    try:
        await asyncio.to_thread(_smtp_send, mail, message)
    except smtplib.SMTPRecipientsRefused as exc:
        raise TransportError(f"recipient refused: {exc}", permanent=True) from exc
    except smtplib.SMTPAuthenticationError as exc:
        raise TransportError(f"SMTP authentication failed: {exc.smtp_code}", permanent=True) from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise TransportError(f"{type(exc).__name__}: {exc}") from exc
