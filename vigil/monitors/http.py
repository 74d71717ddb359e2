"""HTTP(S) checks: status, body conditions and latency, through a shared ``httpx.AsyncClient``."""

from __future__ import annotations

import json
import ssl
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx

from vigil import __version__
from vigil.monitors.errors import describe_exception, first_line
from vigil.monitors.guard import Progress, Verdict, guarded
from vigil.monitors.jsonpath import parse_json_condition
from vigil.monitors.result import CheckResult, Outcome
from vigil.monitors.schemas import HttpMonitorSpec, format_status_ranges, without_userinfo
from vigil.monitors.texts import bytes_text

__all__ = ["check", "new_http_client"]


def new_http_client(*, verify: bool | ssl.SSLContext = True) -> httpx.AsyncClient:
    """Return a client for HTTP checks: one per ``verify_tls`` setting, shared by every monitor using it.

    The client keeps no cookies: every check must see what a fresh visitor sees, whatever other monitors
    sharing the client were sent. No connection is reused either, so each check measures a full connection.
    Per-request timeouts come from each monitor. Close it with ``await client.aclose()``.
    """
    return httpx.AsyncClient(
        verify=verify,
        headers={"User-Agent": f"Vigil/{__version__} (uptime monitor)"},
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=0),
        cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
    )


async def check(spec: HttpMonitorSpec, *, client: httpx.AsyncClient) -> CheckResult:
    """Return the result of one request to ``spec.url``; never raises.

    Down on a network error, a timeout, a status outside ``expected_status``, or a failed body condition;
    degraded when slower than ``max_latency``. The body is streamed and read up to ``max_body`` only.
    """
    return await guarded(spec, lambda progress: _probe(spec, client, progress))


async def _probe(spec: HttpMonitorSpec, client: httpx.AsyncClient, progress: Progress) -> Verdict:
    progress.step = "while waiting for the response"
    content = spec.body.encode() if spec.body is not None else None
    try:
        async with client.stream(
            spec.method,
            spec.url,
            headers=spec.headers,
            content=content,
            follow_redirects=spec.follow_redirects,
            timeout=spec.timeout,
        ) as response:
            progress.step = f"while reading the body (status {response.status_code})"
            body, truncated = await _read_capped(response, int(spec.max_body))
    except httpx.TimeoutException as exc:
        raise TimeoutError from exc  # the guard names the timeout and the step it interrupted
    except httpx.HTTPError as exc:
        return Verdict(Outcome.DOWN, _describe_http_error(exc, spec.timeout))
    details: dict[str, object] = {
        "status_code": response.status_code,
        "url": without_userinfo(str(response.url)),
        "redirects": len(response.history),
        "bytes_read": len(body),
        "truncated": truncated,
    }
    failure = _failure(spec, response, body)
    note = f"response larger than {bytes_text(spec.max_body)}: read first {bytes_text(spec.max_body)}"
    if failure is not None:
        return Verdict(Outcome.DOWN, f"{failure} ({note})" if truncated else failure, details)
    reason = f"status {response.status_code}"
    return Verdict(Outcome.UP, f"{reason}; {note}" if truncated else reason, details)


async def _read_capped(response: httpx.Response, cap: int) -> tuple[bytes, bool]:
    # Reading stops one chunk past the cap, so a 5 GB download costs one chunk more than the cap, not 5 GB.
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > cap:
            return b"".join(chunks)[:cap], True
    return b"".join(chunks), False


def _failure(spec: HttpMonitorSpec, response: httpx.Response, body: bytes) -> str | None:
    """Return why the response fails the monitor's conditions, or None when it passes them all."""
    code = response.status_code
    if not any(low <= code <= high for low, high in spec.expected_status):
        return f"status {code} (expected {format_status_ranges(spec.expected_status)})"
    if spec.contains is None and spec.regex is None and spec.json_path is None:
        return None
    text = body.decode(response.charset_encoding or "utf-8", errors="replace")
    if spec.contains is not None and spec.contains not in text:
        return f"keyword {spec.contains!r} missing"
    if spec.regex is not None and spec.regex.search(text) is None:
        return f"no match for regex {spec.regex.pattern!r}"
    if spec.json_path is not None:
        try:
            document = json.loads(text)
        except ValueError:
            return f"body is not JSON (needed for {spec.json_path})"
        return parse_json_condition(spec.json_path).evaluate(document)
    return None


def _describe_http_error(exc: httpx.HTTPError, timeout: float) -> str:
    if isinstance(exc, httpx.TooManyRedirects):
        return "too many redirects"
    known = describe_exception(exc, timeout=timeout)
    if known is not None:
        return known
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"protocol error: {first_line(exc)}"
    return f"HTTP error: {first_line(exc) or type(exc).__name__}"
