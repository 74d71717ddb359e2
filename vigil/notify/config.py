"""The ``notifications:`` section of the config: channels and the routes that send incident changes to them.

The model carries the section raw (:class:`vigil.model.types.RawSection`, one per file), as it carries
monitors: :func:`notifications_of` validates it here and returns the valid channels and routes plus one
:class:`~vigil.model.errors.ModelIssue` (file, line, field) per problem. A bad channel (an Apprise URL that
Apprise refuses, say) is left out and the rest works; a route naming it keeps its other channels.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from vigil.incidents.models import Impact
from vigil.model.errors import ModelIssue, schema_issues
from vigil.model.schema import parse_duration
from vigil.model.types import Model, RawSection

__all__ = [
    "SECRET_FIELDS",
    "AppriseChannel",
    "ChannelSpec",
    "EscalationLevel",
    "NotifyConfig",
    "RouteSpec",
    "SmtpChannel",
    "WebhookChannel",
    "apprise_accepts",
    "notifications_of",
]

ChannelId = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
Seconds = Annotated[float, BeforeValidator(parse_duration), Field(json_schema_extra={"type": "string"})]
Timeout = Annotated[float, Field(default=10.0, gt=0, le=300, description="Seconds one delivery may take.")]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class AppriseChannel(_Spec):
    """Any service Apprise speaks (Slack, Matrix, Teams, ntfy, Telegram, mailto...), by its URL."""

    id: ChannelId
    type: Literal["apprise"]
    url: str = Field(min_length=1)
    timeout: Timeout = 10.0


class WebhookChannel(_Spec):
    """A signed JSON POST (see docs/notifications.md for the signature scheme)."""

    id: ChannelId
    type: Literal["webhook"]
    url: str = Field(pattern=r"^https?://", min_length=8)
    secret: str = Field(min_length=16, description="HMAC-SHA256 key shared with the receiver.")
    timeout: Timeout = 10.0


class SmtpChannel(_Spec):
    id: ChannelId
    type: Literal["smtp"]
    host: str = Field(min_length=1)
    port: int = Field(default=25, ge=1, le=65535)
    sender: str = Field(alias="from", min_length=3)
    to: list[str] = Field(min_length=1)
    starttls: bool = False
    tls: bool = Field(default=False, description="Implicit TLS (SMTPS), port 465 unless given.")
    username: str | None = None
    password: str | None = None
    timeout: Timeout = 10.0

    @model_validator(mode="after")
    def _one_tls(self) -> SmtpChannel:
        if self.tls and self.starttls:
            raise ValueError("tls (implicit, port 465) and starttls (upgrade, port 587) exclude each other")
        if self.tls and "port" not in self.model_fields_set:
            object.__setattr__(self, "port", 465)  # frozen model: its own validator may still settle a default
        return self


ChannelSpec = Annotated[AppriseChannel | WebhookChannel | SmtpChannel, Field(discriminator="type")]
CHANNEL_TYPES = ("apprise", "webhook", "smtp")  # in the order messages list them


class EscalationLevel(_Spec):
    """One level of escalation: who else is told when the incident is still unacknowledged ``after`` so long."""

    after: Seconds = Field(gt=0, description="Time since the incident was detected ('15m', '1h').")
    to: list[ChannelId] = Field(min_length=1, description="Channels told at this level.")


class RouteSpec(_Spec):
    """Which incident changes go to which channels. An empty ``owners`` or ``components`` matches any."""

    channels: list[ChannelId] = Field(min_length=1)
    owners: list[str] = Field(default_factory=list, description="Owner/team of an affected component.")
    components: list[str] = Field(default_factory=list, description="Ids of affected components.")
    min_impact: Impact = Field(default=Impact.NONE, description="Least incident impact that is sent.")
    # Escalation (issue 4, vigil/notify/escalation.py): seconds, written with units ('15m', '1h').
    remind_every: Seconds | None = Field(default=None, description="Remind the channels while unacknowledged.")
    escalate_after: Seconds | None = Field(default=None, description="Tell escalate_to when unacknowledged so long.")
    escalate_to: list[ChannelId] = Field(default_factory=list, description="Channels told on escalation.")
    # Several levels (the team lead after 15 minutes, the head of IT after an hour); escalate_after/escalate_to
    # is the one-level shorthand and may be combined with them.
    escalate: list[EscalationLevel] = Field(default_factory=list, description="Escalation levels, by time.")

    @model_validator(mode="after")
    def _escalation_pair(self) -> RouteSpec:
        if (self.escalate_after is None) != (not self.escalate_to):
            raise ValueError("escalate_after and escalate_to go together")
        afters = [level.after for level in self.levels]
        if len(set(afters)) != len(afters):
            raise ValueError("two escalation levels have the same time: give each level its own 'after'")
        return self

    @property
    def levels(self) -> list[EscalationLevel]:
        """Every escalation level, the shorthand's included, earliest first."""
        found = list(self.escalate)
        if self.escalate_after is not None and self.escalate_to:
            found.append(EscalationLevel.model_construct(after=self.escalate_after, to=self.escalate_to))
        return sorted(found, key=lambda level: level.after)


# One adapter per type, picked by the entry's type: a discriminated union would put the tag in error paths.
_CHANNELS: dict[str, TypeAdapter[Any]] = {
    "apprise": TypeAdapter(AppriseChannel),
    "webhook": TypeAdapter(WebhookChannel),
    "smtp": TypeAdapter(SmtpChannel),
}
_ROUTE = TypeAdapter(RouteSpec)


@dataclass(slots=True)
class NotifyConfig:
    """The valid channels (by id) and routes, and the problems of what was left out."""

    channels: dict[str, AppriseChannel | WebhookChannel | SmtpChannel] = field(default_factory=dict)
    routes: list[RouteSpec] = field(default_factory=list)
    issues: list[ModelIssue] = field(default_factory=list)


def apprise_accepts(url: str) -> bool:
    """Return whether Apprise knows the URL's service and can parse it (no network is used)."""
    import apprise  # imported here: it loads every plugin, which only configs with Apprise channels need

    return bool(apprise.Apprise().add(url))


def notifications_of(model: Model) -> NotifyConfig:
    """Validate every file's ``notifications:`` section; return the valid channels and routes and the issues.

    Left out, each with an issue: an entry that fails the schema, a channel whose id an earlier one has, an
    Apprise URL Apprise refuses. A route's unknown channel ids are issues too; the route keeps the others.
    """
    config = NotifyConfig()
    pending_routes: list[tuple[RawSection, int, RouteSpec]] = []
    for section in model.notifications:
        data = section.data
        if not isinstance(data, Mapping):
            config.issues.append(section.issue((), "must be a mapping with 'channels:' and 'routes:'"))
            continue
        for key in data:
            if key not in ("channels", "routes"):
                config.issues.append(section.issue((str(key),), "unknown key (expected channels, routes)"))
        for index, item in enumerate(_list(section, data, "channels", config.issues)):
            _add_channel(section, index, item, config)
        for index, item in enumerate(_list(section, data, "routes", config.issues)):
            try:
                pending_routes.append((section, index, _ROUTE.validate_python(item)))
            except ValidationError as exc:
                config.issues.extend(schema_issues(section.lines, (*section.path, "routes", index), exc))
    # Routes are checked once every file's channels are known: a route may name a channel of another file.
    for section, index, route in pending_routes:
        for position, channel_id in enumerate(route.channels):
            if channel_id not in config.channels:
                where = ("routes", index, "channels", position)
                config.issues.append(section.issue(where, f"unknown or invalid channel {channel_id!r}"))
        for position, channel_id in enumerate(route.escalate_to):  # escalation (issue 4)
            if channel_id not in config.channels:
                where = ("routes", index, "escalate_to", position)
                config.issues.append(section.issue(where, f"unknown or invalid channel {channel_id!r}"))
        for level_index, level in enumerate(route.escalate):
            for position, channel_id in enumerate(level.to):
                if channel_id not in config.channels:
                    at = ("routes", index, "escalate", level_index, "to", position)
                    config.issues.append(section.issue(at, f"unknown or invalid channel {channel_id!r}"))
        known = [c for c in route.channels if c in config.channels]
        escalate_to = [c for c in route.escalate_to if c in config.channels]
        levels = [
            level.model_copy(update={"to": [c for c in level.to if c in config.channels]}) for level in route.escalate
        ]
        if known:
            update = {
                "channels": known,
                "escalate_to": escalate_to,
                "escalate_after": route.escalate_after if escalate_to else None,
                "escalate": [level for level in levels if level.to],
            }
            config.routes.append(route.model_copy(update=update))
    return config


def _list(section: RawSection, data: Mapping[str, Any], key: str, issues: list[ModelIssue]) -> list[Any]:
    items = data.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        issues.append(section.issue((key,), "must be a list"))
        return []
    return items


# The fields that hold a secret, by channel type: each may instead be given as ``<field>_env: VARIABLE`` or
# ``<field>_file: path`` (relative to the config file), so that the config can live in git without them.
SECRET_FIELDS: dict[str, tuple[str, ...]] = {"apprise": ("url",), "webhook": ("secret",), "smtp": ("password",)}
_SECRET_FILE_LIMIT = 64 * 1024


def _read_secret(section: RawSection, path: tuple[str | int, ...], key: str, source: Any) -> str | ModelIssue:
    if not isinstance(source, str) or not source.strip():
        return section.issue((*path, key), "must be a non-empty string")
    if key.endswith("_env"):
        value = os.environ.get(source)
        if not value:
            return section.issue((*path, key), f"environment variable {source} is not set (or empty)")
        return value
    file = Path(source).expanduser()
    if not file.is_absolute():
        file = Path(section.file).parent / file
    try:
        with file.open("rb") as handle:
            raw = handle.read(_SECRET_FILE_LIMIT + 1)
    except OSError as exc:
        return section.issue((*path, key), f"cannot read {file}: {exc.strerror or exc}")
    if len(raw) > _SECRET_FILE_LIMIT:
        return section.issue((*path, key), f"{file} is larger than 64 KiB: not a secret")
    try:
        text = raw.decode("utf-8").strip()  # a file written by `echo` ends with a newline that is not the secret's
    except UnicodeDecodeError:
        return section.issue((*path, key), f"{file} is not UTF-8 text")
    if not text:
        return section.issue((*path, key), f"{file} is empty")
    return text


def _with_secrets(
    section: RawSection, path: tuple[str | int, ...], item: Mapping[str, Any], issues: list[ModelIssue]
) -> dict[str, Any] | None:
    """Return the channel's entry with ``<field>_env``/``<field>_file`` replaced by the secret they point at;
    None, with the issue added, when one cannot be read or the field is given twice."""
    found: dict[str, Any] = dict(item)
    problems: list[ModelIssue] = []
    for name in SECRET_FIELDS.get(str(item.get("type")), ()):
        given = [k for k in (name, f"{name}_env", f"{name}_file") if k in item]
        if len(given) > 1:
            problems.append(section.issue((*path, given[1]), f"give one of {', '.join(given)}, not several"))
            continue
        if not given or given[0] == name:
            continue
        value = _read_secret(section, path, given[0], found.pop(given[0]))
        if isinstance(value, ModelIssue):
            problems.append(value)
        else:
            found[name] = value
    issues.extend(problems)
    return None if problems else found


def _add_channel(section: RawSection, index: int, item: Any, config: NotifyConfig) -> None:
    path = ("channels", index)
    if not isinstance(item, Mapping) or item.get("type") not in CHANNEL_TYPES:
        sub = ("type",) if isinstance(item, Mapping) else ()
        config.issues.append(section.issue((*path, *sub), f"a channel needs a type: one of {', '.join(CHANNEL_TYPES)}"))
        return
    resolved = _with_secrets(section, path, item, config.issues)
    if resolved is None:
        return
    item = resolved
    try:
        channel: AppriseChannel | WebhookChannel | SmtpChannel = _CHANNELS[item["type"]].validate_python(item)
    except ValidationError as exc:
        config.issues.extend(schema_issues(section.lines, (*section.path, *path), exc))
        return
    if channel.id in config.channels:
        config.issues.append(section.issue((*path, "id"), f"duplicate channel id {channel.id!r}"))
        return
    if isinstance(channel, AppriseChannel) and not apprise_accepts(channel.url):
        # The URL itself may hold a token: name the scheme only.
        scheme = channel.url.split("://", 1)[0]
        config.issues.append(section.issue((*path, "url"), f"Apprise does not accept this URL (scheme {scheme!r})"))
        return
    config.channels[channel.id] = channel
