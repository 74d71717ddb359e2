"""Sending one message over one channel: the signed webhook, SMTP e-mail, and Apprise for everything else.

Each ``send_*`` is a coroutine that returns when the message was accepted and raises :class:`TransportError`
otherwise (``permanent``: retrying cannot help, e.g. a 4xx answer). Blocking libraries (smtplib, Apprise) run
in a thread, so the event loop (and the checks on it) never waits on a mail server. The dispatcher bounds each
call with the channel's timeout.

:class:`Transports` is what the dispatcher sends with: one aiohttp session for every webhook (connections kept
alive and reused, instead of a client and a TCP/TLS handshake per message), SMTP connections kept open and
reused per server (a fan-out to thousands of addresses is not thousands of SMTP sessions), and a thread pool of
its own for the blocking libraries. The module-level :func:`send` and :func:`send_subscriber` are one-shot
equivalents (a ``Transports`` for one message).

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
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from typing import Any, TypeVar

import aiohttp

from vigil.notify.config import AppriseChannel, SmtpChannel, WebhookChannel

Channel = AppriseChannel | WebhookChannel | SmtpChannel

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Channel",
    "TransportError",
    "Transports",
    "render",
    "render_subscriber",
    "send",
    "send_subscriber",
    "sign",
]

SIGNATURE_HEADER = "X-Vigil-Signature"
TIMESTAMP_HEADER = "X-Vigil-Timestamp"
DELIVERY_HEADER = "X-Vigil-Delivery"  # the delivery id: the same on every retry, so receivers can drop repeats
RESPONSE_LIMIT = 64 * 1024  # bytes of a webhook's answer read at most (the rest closes the connection)
SMTP_IDLE = 30.0  # seconds an unused SMTP connection is kept open
SMTP_CHECK_AFTER = 5.0  # seconds idle after which a kept connection is checked (NOOP) before it is used
SMTP_MESSAGES_PER_CONNECTION = 100  # then a new session: servers limit messages per connection

T = TypeVar("T")


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
    # Changes people make (vigil/notify/announce.py): their message first, as they wrote it (Markdown reads as text).
    update = payload.get("update")
    if payload["change"] == "update":
        what = f"update ({incident['status']})"
    elif payload["change"] == "acknowledged":
        who = payload.get("acknowledged_by")
        what = f"acknowledged by {who}" if who else "acknowledged"
    subject = f"[Vigil] Incident #{incident['id']} {what}: {incident['title']}"
    lines = []
    if update and update.get("body"):
        by = f" ({update['author']})" if update.get("author") else ""
        lines.extend([f"{update['body'].strip()}{by}", ""])
    lines += [
        f"Incident #{incident['id']}: {incident['title']}",
        f"Status: {incident['status']}"
        + (f" (was {payload['previous_status']})" if payload.get("previous_status") else ""),
        f"Impact: {incident['impact']}",
    ]
    if incident.get("probable_cause"):
        lines.append(f"Probable cause: {incident['probable_cause']}")
    lines.append("Affected components:")
    lines.extend(f"- {c['id']}: {c['status']}" for c in incident["components"])
    more = int(incident.get("components_total") or 0) - len(incident["components"])
    if more > 0:  # long lists are cut (vigil.notify.service.LISTED_COMPONENTS): the API lists them all
        lines.append(f"- ... and {more:,} more")
    if not incident["components"]:
        lines.append("- none")
    lines.append(f"At: {payload['at']}")
    if payload.get("ack_url"):  # escalation (issue 4)
        lines.append(f"Acknowledge: {payload['ack_url']}")
    return subject, "\n".join(lines) + "\n"


def _webhook_request(secret: str, payload: dict[str, Any], delivery_id: int) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
        DELIVERY_HEADER: str(delivery_id),
        "User-Agent": "Vigil",
    }
    return body, headers


async def send_webhook(
    channel: WebhookChannel, payload: dict[str, Any], delivery_id: int, *, session: aiohttp.ClientSession | None = None
) -> None:
    """POST the signed payload; with ``session`` on its pooled connections, else on a session of its own."""
    if session is None:
        async with Transports() as transports:
            await send_webhook(channel, payload, delivery_id, session=transports.http())
            return
    body, headers = _webhook_request(channel.secret, payload, delivery_id)
    try:
        async with session.post(
            channel.url,
            data=body,
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=channel.timeout),
        ) as response:
            read = 0
            async for chunk in response.content.iter_chunked(16384):
                read += len(chunk)
                if read > RESPONSE_LIMIT:
                    break
            status = response.status
    except aiohttp.ClientError as exc:
        raise TransportError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from exc
    if 200 <= status < 300:
        return
    # A 4xx says the request itself is wrong (bad secret, gone): retrying the same bytes cannot help, except
    # for the two that mean "not now".
    permanent = 400 <= status < 500 and status not in (408, 429)
    raise TransportError(f"HTTP {status}", permanent=permanent)


def _smtp_connect(channel: SmtpChannel) -> smtplib.SMTP:
    # Certificates are verified against the system's trust store (SSL_CERT_FILE points elsewhere): smtplib's own
    # default for starttls() is a context that verifies nothing.
    context = ssl.create_default_context()
    if channel.tls:
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(channel.host, channel.port, timeout=channel.timeout, context=context)
    else:
        smtp = smtplib.SMTP(channel.host, channel.port, timeout=channel.timeout)
    try:
        if channel.starttls:
            smtp.starttls(context=context)
        if channel.username:
            smtp.login(channel.username, channel.password or "")
    except BaseException:
        _smtp_close(smtp)
        raise
    return smtp


def _smtp_close(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except Exception:
        smtp.close()


SmtpKey = tuple[str, int, bool, bool, str | None, str | None]


class _SmtpPool:
    """Open SMTP sessions per server and login, reused for the next message (thread-safe).

    A session is taken by one thread at a time; after a message it goes back, after an error it is closed. One
    idle more than :data:`SMTP_CHECK_AFTER` seconds is checked with NOOP first (servers drop idle clients);
    one idle more than :data:`SMTP_IDLE` seconds, or that has carried :data:`SMTP_MESSAGES_PER_CONNECTION`
    messages, is closed. No message is sent twice by this: a message whose session fails is an error (the
    dispatcher retries it later like any other failure).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: dict[SmtpKey, list[tuple[smtplib.SMTP, float, int]]] = {}

    @staticmethod
    def key(channel: SmtpChannel) -> SmtpKey:
        return (channel.host, channel.port, channel.starttls, channel.tls, channel.username, channel.password)

    def _take(self, key: SmtpKey) -> tuple[smtplib.SMTP, float, int] | None:
        with self._lock:
            idle = self._idle.get(key)
            return idle.pop() if idle else None

    def send(self, channel: SmtpChannel, message: EmailMessage) -> None:
        key = self.key(channel)
        taken = self._take(key)
        while taken is not None:
            smtp, since, count = taken
            idle = time.monotonic() - since
            if idle < SMTP_IDLE and (idle < SMTP_CHECK_AFTER or self._alive(smtp)):
                break
            _smtp_close(smtp)
            taken = self._take(key)
        smtp, count = (taken[0], taken[2]) if taken is not None else (_smtp_connect(channel), 0)
        try:
            smtp.send_message(message)
        except BaseException:
            _smtp_close(smtp)
            raise
        if count + 1 >= SMTP_MESSAGES_PER_CONNECTION:
            _smtp_close(smtp)
            return
        with self._lock:
            self._idle.setdefault(key, []).append((smtp, time.monotonic(), count + 1))

    @staticmethod
    def _alive(smtp: smtplib.SMTP) -> bool:
        try:
            return smtp.noop()[0] == 250
        except Exception:
            return False

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for sessions in idle.values():
            for smtp, _, _ in sessions:
                _smtp_close(smtp)


class Transports:
    """The dispatcher's means of sending: a pooled HTTP session, kept SMTP sessions, a thread pool of its own.

    ``threads`` bounds the blocking sends (SMTP, Apprise) running at once. Make it anywhere; the HTTP session
    is made on first use, in the running event loop. :meth:`aclose` closes everything (it can be used again).
    """

    def __init__(self, *, connections: int = 100, threads: int = 16) -> None:
        self.connections = connections
        self.threads = threads
        self._http: aiohttp.ClientSession | None = None
        self._smtp = _SmtpPool()
        self._executor: ThreadPoolExecutor | None = None

    def http(self) -> aiohttp.ClientSession:
        """The shared HTTP session (made on first use; call it inside the running event loop)."""
        if self._http is None or self._http.closed:
            connector = aiohttp.TCPConnector(limit=self.connections, ttl_dns_cache=300)
            # trust_env: HTTP(S)_PROXY and NO_PROXY are honoured, as they were with httpx.
            self._http = aiohttp.ClientSession(connector=connector, trust_env=True)
        return self._http

    async def _thread(self, function: Callable[[], T]) -> T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="vigil-notify")
        return await asyncio.get_running_loop().run_in_executor(self._executor, function)

    async def send(self, channel: Channel, payload: dict[str, Any], delivery_id: int) -> None:
        """Send ``payload`` over ``channel``; raises TransportError."""
        if isinstance(channel, WebhookChannel):
            await send_webhook(channel, payload, delivery_id, session=self.http())
        elif isinstance(channel, SmtpChannel):
            await self.send_mail(channel, _incident_mail(channel, payload))
        else:
            subject, text = render(payload)
            if not await self._thread(lambda: _apprise_send(channel.url, subject, text)):
                raise TransportError("Apprise reported a failure (see the server log for the service's answer)")

    async def send_mail(self, channel: SmtpChannel, message: EmailMessage, *, subscriber: bool = False) -> None:
        """Send ``message`` through ``channel``'s server on a kept session; raises TransportError."""
        try:
            await self._thread(lambda: self._smtp.send(channel, message))
        except smtplib.SMTPRecipientsRefused as exc:
            # A subscriber's address refused is final; a channel's list of several may be partly right.
            raise TransportError(f"recipient refused: {exc}", permanent=subscriber) from exc
        except smtplib.SMTPAuthenticationError as exc:
            raise TransportError(f"SMTP authentication failed: {exc.smtp_code}", permanent=True) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}") from exc

    async def send_subscriber(
        self,
        target: dict[str, Any],
        payload: dict[str, Any],
        delivery_id: int,
        *,
        mail: SmtpChannel | None,
        public_url: str,
        timeout: float,
    ) -> None:
        """Send ``payload`` to a subscriber (``target``: see vigil.notify.service.Claimed); raises TransportError.

        E-mail goes through ``mail`` (the config's SMTP channel ``subscribers``; its ``to`` is not used); a
        webhook is signed with the subscriber's own secret and carries the unsubscribe URL in the JSON.
        """
        base = public_url.rstrip("/")
        confirm_url = f"{base}/subscribe/confirm/{target['confirm_token']}"
        unsubscribe_url = f"{base}/subscribe/unsubscribe/{target['unsubscribe_token']}"
        if target["kind"] == "webhook":
            channel = WebhookChannel.model_construct(
                id="subscriber", type="webhook", url=target["address"], secret=target["secret"] or "", timeout=timeout
            )
            document = {**payload, "unsubscribe_url": unsubscribe_url}
            await send_webhook(channel, document, delivery_id, session=self.http())
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
        await self.send_mail(mail, message, subscriber=True)

    async def aclose(self) -> None:
        """Close the HTTP session and the kept SMTP sessions; stop the threads (after their current call)."""
        http, self._http = self._http, None
        if http is not None:
            await http.close()
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._smtp.close)
            executor.shutdown(wait=False)
        else:
            self._smtp.close()

    async def __aenter__(self) -> Transports:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _incident_mail(channel: SmtpChannel, payload: dict[str, Any]) -> EmailMessage:
    subject, text = render(payload)
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = channel.sender
    message["To"] = ", ".join(channel.to)
    message.set_content(text)
    return message


async def send_smtp(channel: SmtpChannel, payload: dict[str, Any]) -> None:
    async with Transports() as transports:
        await transports.send(channel, payload, 0)


def _apprise_send(url: str, subject: str, text: str) -> bool:
    import apprise  # loads every plugin: only when an Apprise channel is used

    notifier = apprise.Apprise()
    if not notifier.add(url):
        return False
    return bool(notifier.notify(body=text, title=subject))


async def send_apprise(channel: AppriseChannel, payload: dict[str, Any]) -> None:
    async with Transports() as transports:
        await transports.send(channel, payload, 0)


async def send(channel: Channel, payload: dict[str, Any], delivery_id: int) -> None:
    """Send ``payload`` over ``channel`` (one-shot: connections are not kept); raises TransportError."""
    async with Transports() as transports:
        await transports.send(channel, payload, delivery_id)


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
    """One-shot :meth:`Transports.send_subscriber` (connections are not kept); raises TransportError."""
    async with Transports() as transports:
        await transports.send_subscriber(
            target, payload, delivery_id, mail=mail, public_url=public_url, timeout=timeout
        )
