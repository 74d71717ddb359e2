"""Monitor configuration as Pydantic models, one per check type, chosen by the ``type`` key.

Every model refuses unknown keys and is immutable. Durations are strings with units ('30s', '1m', '1d'), read by
the model's :func:`~vigil.model.schema.parse_duration`, and held as seconds. Secrets (DSNs, Redis URLs, passwords)
are ``SecretStr``, so a config printed in a log or an error does not show them, and derived ids leave them out.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ByteSize,
    ConfigDict,
    Discriminator,
    Field,
    SecretStr,
    Tag,
    TypeAdapter,
    ValidationInfo,
    field_validator,
    model_validator,
)

from vigil.model.schema import ID_PATTERN, parse_duration
from vigil.model.schema import PATTERN_MESSAGES as MODEL_PATTERN_MESSAGES
from vigil.monitors.jsonpath import parse_json_condition

__all__ = [
    "HOST_PATTERN",
    "MONITOR_TYPES",
    "PATTERN_MESSAGES",
    "TOKEN_PATTERN",
    "CommandMonitorSpec",
    "DegradedIf",
    "DnsMonitorSpec",
    "HeartbeatMonitorSpec",
    "HttpMonitorSpec",
    "MonitorSpec",
    "PostgresMonitorSpec",
    "RedisMonitorSpec",
    "TcpMonitorSpec",
    "TlsMonitorSpec",
    "format_status_ranges",
    "monitor_json_schema",
    "parse_monitor",
    "split_nameserver",
    "without_userinfo",
]

HOST_PATTERN = r"^[^\s/]+$"
_DNS_NAME_PATTERN = r"^[^\s]+$"
TOKEN_PATTERN = r"^[A-Za-z0-9_-]+$"  # URL-safe as it is, since it goes into the ping URL
# Messages for values that miss a pattern (vigil.model.errors.schema_issues); ids read as in the model, and the
# token is not echoed, since it is a secret.
PATTERN_MESSAGES = {
    **MODEL_PATTERN_MESSAGES,
    HOST_PATTERN: "{input!r} is not a host name or IP address (no spaces, no slashes, no scheme)",
    _DNS_NAME_PATTERN: "{input!r} is not a DNS name (no spaces)",
    TOKEN_PATTERN: "a token uses only letters, digits, '_' and '-'",
}


def _at_least_a_second(seconds: float) -> float:
    if seconds < 1:
        raise ValueError("must be at least 1s")
    return seconds


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    Field(description="A duration with units: '30s', '1m', '1h30m'.", json_schema_extra={"type": "string"}),
]
Port = Annotated[int, Field(ge=1, le=65535)]
Host = Annotated[str, Field(min_length=1, max_length=253, pattern=HOST_PATTERN, description="Host name or IP.")]


def _status_ranges(value: object) -> list[tuple[int, int]]:
    # 200, "204", "200-299", "2xx", or a list of those; kept as inclusive (low, high) pairs.
    items = value if isinstance(value, list | tuple) else [value]
    ranges = [_status_range(item) for item in items]
    if not ranges:
        raise ValueError("give at least one status code or range")
    return ranges


def _status_range(item: object) -> tuple[int, int]:
    if isinstance(item, int) and not isinstance(item, bool):
        low = high = item
    elif isinstance(item, str) and re.fullmatch(r"\s*[1-5]xx\s*", item, re.IGNORECASE):
        low = int(item.strip()[0]) * 100
        high = low + 99
    elif isinstance(item, str) and (match := re.fullmatch(r"\s*(\d{3})\s*(?:-\s*(\d{3})\s*)?", item)):
        low = int(match.group(1))
        high = int(match.group(2) or low)
    else:
        raise ValueError(f"{item!r} is not a status code, a range '200-299' or a class '2xx'")
    if not 100 <= low <= high <= 599:
        raise ValueError(f"{item!r}: status codes go from 100 to 599, low to high")
    return (low, high)


def format_status_ranges(ranges: tuple[tuple[int, int], ...]) -> str:
    """Return ranges as people write them: ``"200-399"``, ``"200, 204, 300-302"``."""
    return ", ".join(str(low) if low == high else f"{low}-{high}" for low, high in ranges)


def _compile_regex(value: object) -> object:
    if not isinstance(value, str):
        return value
    try:
        return re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None


def _check_json_condition(value: str) -> str:
    parse_json_condition(value)  # raises ValueError with the position of the problem
    return value


def _argv(value: object) -> object:
    # A string is split like a shell would split it, but never run through one: no globbing, pipes or $VARS.
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"cannot split the command: {exc}") from None
    return value


def without_userinfo(url: str) -> str:
    """Return the URL without ``user:password@``, for ids, reasons and details."""
    if "@" not in url:  # every check's result passes here: most URLs need no parsing
        return url
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def split_nameserver(text: str) -> tuple[str, int]:
    """Return (ip, port) for ``"10.0.0.53"``, ``"127.0.0.1:5353"``, ``"[::1]:53"`` or ``"::1"``; raises ValueError."""
    host, port = text, 53
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"{text!r} is not 'ip', 'ip:port' or '[ipv6]:port'")
        port_text = rest[1:] if rest else "53"
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        port_text = "53"
    try:
        ipaddress.ip_address(host)
        port = int(port_text)
    except ValueError:
        raise ValueError(f"nameserver {text!r} must be an IP address, optionally with a port: '10.0.0.53:53'") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"nameserver port {port} is out of range 1-65535")
    return host, port


def _check_nameserver(value: str) -> str:
    split_nameserver(value)
    return value


StatusRanges = Annotated[
    tuple[tuple[int, int], ...],
    BeforeValidator(_status_ranges),
    Field(
        description="Accepted status codes: 200, '200-299', '2xx', or a list of those.",
        json_schema_extra={"type": ["array", "integer", "string"]},
    ),
]
Regex = Annotated[re.Pattern[str], BeforeValidator(_compile_regex)]
JsonCondition = Annotated[str, AfterValidator(_check_json_condition)]
Argv = Annotated[
    list[Annotated[str, Field(min_length=1)]],
    BeforeValidator(_argv),
    Field(min_length=1, description="argv list, or a string split like a shell would (never run by one)."),
]
Nameserver = Annotated[str, AfterValidator(_check_nameserver)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DegradedIf(_Spec):
    """Thresholds that turn an otherwise good result into ``degraded``."""

    latency_ms_above: float | None = Field(default=None, gt=0, description="Degraded when slower than this (ms).")


class _MonitorSpec(_Spec):
    id: str | None = Field(
        default=None, max_length=200, pattern=ID_PATTERN, description="Unique per component; default <type>:<target>."
    )
    # Defaults are written as in YAML (and validated) so that the JSON Schema shows '60s', not 60.0; validating
    # the timeout's default also checks a short interval against it.
    interval: Annotated[Duration, AfterValidator(_at_least_a_second)] = Field(
        default="60s", validate_default=True, description="Time between runs, e.g. '30s'."
    )
    timeout: Duration = Field(default="10s", validate_default=True, description="Hard limit for one run, e.g. '5s'.")
    failures_before_down: int = Field(default=2, ge=1, le=100, description="Consecutive failures before down.")
    successes_before_up: int = Field(default=1, ge=1, le=100, description="Consecutive successes before up again.")
    degraded_if: DegradedIf | None = None

    @field_validator("timeout")
    @classmethod
    def _timeout_below_interval(cls, timeout: float, info: ValidationInfo) -> float:
        interval = info.data.get("interval")  # absent when the interval itself was invalid
        if interval is not None and timeout >= interval:
            raise ValueError(f"timeout ({timeout:g}s) must be shorter than the interval ({interval:g}s)")
        return timeout

    @property
    def target(self) -> str:
        """Return what the monitor looks at, without secrets: a URL, 'host:port', a DNS name."""
        raise NotImplementedError

    @property
    def monitor_id(self) -> str:
        """Return the id given, or ``<type>:<target>`` (e.g. ``tcp:db1:5432``)."""
        return self.id or f"{getattr(self, 'type', 'monitor')}:{self.target}"

    def latency_limit(self) -> float | None:
        """Return the latency in seconds above which a good result is degraded, or None."""
        if self.degraded_if is None or self.degraded_if.latency_ms_above is None:
            return None
        return self.degraded_if.latency_ms_above / 1000


class HttpMonitorSpec(_MonitorSpec):
    type: Literal["http"]
    url: str = Field(description="http:// or https:// URL.")
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = Field(default=None, description="Request body, sent as UTF-8.")
    expected_status: StatusRanges = Field(default="200-399", validate_default=True)
    contains: str | None = Field(default=None, description="Text the response body must contain.")
    regex: Regex | None = Field(default=None, description="Regular expression the body must match (re.search).")
    json_path: JsonCondition | None = Field(default=None, description="e.g. '$.status == \"ok\"' or '$.db.ok'.")
    max_latency: Duration | None = Field(default=None, description="Degraded when slower than this, e.g. '2s'.")
    verify_tls: bool = True
    follow_redirects: bool = True
    max_body: ByteSize = Field(default="1MiB", validate_default=True, gt=0, description="Read at most this much body.")

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http:// or https:// URL with a host")
        return url

    @model_validator(mode="after")
    def _one_latency_limit(self) -> HttpMonitorSpec:
        if self.max_latency is not None and self.degraded_if is not None and self.degraded_if.latency_ms_above:
            raise ValueError("give either max_latency or degraded_if.latency_ms_above, not both")
        return self

    @property
    def target(self) -> str:
        prefix = "" if self.method == "GET" else f"{self.method}:"
        return prefix + without_userinfo(self.url)

    def latency_limit(self) -> float | None:
        """Return ``max_latency`` or ``degraded_if.latency_ms_above`` in seconds, or None."""
        return self.max_latency if self.max_latency is not None else super().latency_limit()


class TcpMonitorSpec(_MonitorSpec):
    type: Literal["tcp"]
    host: Host
    port: Port
    send: str | None = Field(default=None, min_length=1, description="Text sent once connected (UTF-8).")
    expect: str | None = Field(default=None, min_length=1, description="Text the answer must contain.")

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"


class TlsMonitorSpec(_MonitorSpec):
    type: Literal["tls"]
    host: Host
    port: Port = 443
    server_name: Host | None = Field(default=None, description="Name to verify and send as SNI (default: host).")
    degraded_days: int = Field(default=14, ge=0, le=3650, description="Degraded when expiring within this many days.")

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"


class DnsMonitorSpec(_MonitorSpec):
    type: Literal["dns"]
    name: str = Field(min_length=1, max_length=253, pattern=_DNS_NAME_PATTERN, description="The name to resolve.")
    record_type: Literal["A", "AAAA", "CNAME", "MX", "TXT"] = "A"
    expected: list[str] = Field(default_factory=list, description="Values that must all be in the answer.")
    nameserver: Nameserver | None = Field(default=None, description="'ip' or 'ip:port'; default: the system's.")

    @field_validator("record_type", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @property
    def target(self) -> str:
        return f"{self.name}/{self.record_type}"


class CommandMonitorSpec(_MonitorSpec):
    type: Literal["command"]
    command: Argv
    expected_exit_code: int = Field(default=0, ge=0, le=255)
    contains: str | None = Field(default=None, description="Text the output (stdout and stderr) must contain.")
    max_output: ByteSize = Field(default="64KiB", validate_default=True, gt=0, description="Keep this much output.")

    @property
    def target(self) -> str:
        return shlex.join(self.command)


class HeartbeatMonitorSpec(_MonitorSpec):
    type: Literal["heartbeat"]
    period: Duration = Field(default="1d", validate_default=True, description="Expected time between pings, e.g. '5m'.")
    grace: Duration = Field(default="1h", validate_default=True, description="Lateness tolerated before down.")
    # The grace period already absorbs jitter, so one late evaluation is enough to call it down.
    failures_before_down: int = Field(default=1, ge=1, le=100)
    # Whoever knows the token can report the job as done, so it stays out of reprs (logs); it is a plain str
    # because it is also the public part of a URL written into crontabs.
    token: str | None = Field(
        default=None,
        min_length=8,
        max_length=64,
        pattern=TOKEN_PATTERN,
        repr=False,
        description="Fixes the ping URL /ping/<token> (letters, digits, _ and -; 8 to 64). Default: generated.",
    )

    @property
    def target(self) -> str:
        return "heartbeat"


class PostgresMonitorSpec(_MonitorSpec):
    type: Literal["postgres"]
    dsn: SecretStr | None = Field(default=None, description="libpq DSN or postgresql:// URL.")
    host: Host | None = None
    port: Port = 5432
    user: str | None = None
    password: SecretStr | None = None
    dbname: str | None = None
    query: str = Field(default="SELECT 1", min_length=1)

    @field_validator("dsn")
    @classmethod
    def _parse_dsn(cls, dsn: SecretStr | None) -> SecretStr | None:
        if dsn is not None:
            _conninfo(dsn.get_secret_value())
        return dsn

    @model_validator(mode="after")
    def _dsn_or_host(self) -> PostgresMonitorSpec:
        if (self.dsn is None) == (self.host is None):
            raise ValueError("give either dsn or host (with port, user, password, dbname)")
        return self

    def conninfo(self) -> str:
        """Return the libpq connection string, password included."""
        if self.dsn is not None:
            return self.dsn.get_secret_value()
        from psycopg.conninfo import make_conninfo

        password = self.password.get_secret_value() if self.password else None
        fields: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": password,
            "dbname": self.dbname,
        }
        return make_conninfo("", **{key: value for key, value in fields.items() if value is not None})

    @property
    def target(self) -> str:
        if self.dsn is None:
            return f"{self.host}:{self.port}/{self.dbname or self.user or ''}".rstrip("/")
        info = _conninfo(self.dsn.get_secret_value())
        host, port, db = info.get("host", "localhost"), info.get("port", 5432), info.get("dbname", "")
        return f"{host}:{port}/{db}".rstrip("/")


def _conninfo(dsn: str) -> dict[str, Any]:
    # Imported here so that reading configs does not load libpq until a Postgres monitor exists.
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        return conninfo_to_dict(dsn)
    except ProgrammingError as exc:
        raise ValueError(f"invalid dsn: {str(exc).splitlines()[0]}") from None


class RedisMonitorSpec(_MonitorSpec):
    type: Literal["redis"]
    url: SecretStr = Field(description="redis://[:password@]host[:port][/db], rediss:// or unix://")

    @field_validator("url")
    @classmethod
    def _redis_url(cls, url: SecretStr) -> SecretStr:
        parts = urlsplit(url.get_secret_value())
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError("the URL must start with redis://, rediss:// or unix://")
        return url

    @property
    def target(self) -> str:
        parts = urlsplit(self.url.get_secret_value())
        where = parts.path if parts.scheme == "unix" else f"{parts.hostname or 'localhost'}:{parts.port or 6379}"
        return f"{parts.scheme}://{where}"


MONITOR_TYPES = ("http", "tcp", "tls", "dns", "command", "heartbeat", "postgres", "redis")


def _monitor_tag(value: Any) -> str | None:
    # Tags in angle brackets, as in the model's requirement union: error paths drop them ("monitors.0.url",
    # not "monitors.0.http.url"), the way vigil.model.loader already drops "<...>" parts.
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return f"<{kind}>" if kind in MONITOR_TYPES else None


MonitorSpec = Annotated[
    Annotated[HttpMonitorSpec, Tag("<http>")]
    | Annotated[TcpMonitorSpec, Tag("<tcp>")]
    | Annotated[TlsMonitorSpec, Tag("<tls>")]
    | Annotated[DnsMonitorSpec, Tag("<dns>")]
    | Annotated[CommandMonitorSpec, Tag("<command>")]
    | Annotated[HeartbeatMonitorSpec, Tag("<heartbeat>")]
    | Annotated[PostgresMonitorSpec, Tag("<postgres>")]
    | Annotated[RedisMonitorSpec, Tag("<redis>")],
    Discriminator(
        _monitor_tag,
        custom_error_type="monitor_type",
        custom_error_message=f"type must be one of {', '.join(MONITOR_TYPES)}",
    ),
]
_ADAPTER: TypeAdapter[MonitorSpec] = TypeAdapter(MonitorSpec)


def monitor_json_schema() -> dict[str, Any]:
    """Return the JSON Schema of one monitor (the union of every type), for ``vigil schema``."""
    return _ADAPTER.json_schema()


def parse_monitor(data: object) -> MonitorSpec:
    """Return the monitor config for a mapping with a ``type`` key; raises pydantic.ValidationError.

    Error locations name the field (``("timeout",)``) after the union tag (``"<http>"``); drop the parts in
    angle brackets to show them, as the model loader does.
    """
    return _ADAPTER.validate_python(data)
