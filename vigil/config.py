"""Vigil's one settings object, read from ``VIGIL_*`` environment variables.

Secrets can come from files instead (``VIGIL_SECRET_KEY_FILE=/run/secrets/key``), the way Docker and systemd
credentials hand them over, so they need not sit in the environment of every child process. Nothing is read at
import time: :func:`get_settings` reads once, on first use, and ``get_settings.cache_clear()`` forgets it.
"""

from __future__ import annotations

import logging
import os
import secrets
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

__all__ = ["ENV_PREFIX", "FILE_FIELDS", "Environment", "Settings", "get_settings"]

ENV_PREFIX = "VIGIL_"
# The settings that may hold a secret: a database URL carries its password.
FILE_FIELDS = ("secret_key", "database_url", "integration_token")  # integration_token: incoming alerts
# Values people paste from examples; refused like an empty key outside development.
_PLACEHOLDER_SECRETS = frozenset({"changethis", "change-me", "changeme", "secret", "vigil"})
_MIN_SECRET_LENGTH = 16

logger = logging.getLogger(__name__)


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """Every setting of a Vigil server; each is also ``VIGIL_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True)

    # Production by default, so that a deployment that forgets to say which it is cannot run on a known key.
    environment: Environment = Environment.PRODUCTION
    database_url: str = Field(default="sqlite:///./vigil.db", min_length=1, description="SQLAlchemy URL.")
    secret_key: SecretStr = Field(default=SecretStr(""), description="Signs sessions and tokens.")
    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=8080, ge=1, le=65535)
    result_retention_days: int = Field(default=30, ge=1, description="Raw check results older than this are purged.")
    write_batch_size: int = Field(default=500, ge=1, description="Results written in one insert.")
    write_flush_interval: float = Field(default=1.0, gt=0, description="Seconds between writes of buffered results.")
    check_concurrency: int = Field(default=500, ge=1, description="Checks running at once, at most.")
    startup_spread: float = Field(
        default=10.0, ge=0, description="Seconds over which the first round of checks after start is spread."
    )
    check_batch_window: float = Field(
        default=0.1, ge=0, le=1, description="Checks due within this many seconds start together (saves CPU)."
    )
    check_batch_target: int = Field(
        default=10,
        ge=0,
        le=1000,
        description="Checks a batch should hold: the window widens up to 0.2 s when fewer are due (0: fixed window).",
    )
    pid_file: str = Field(default="vigil.pid", min_length=1, description="Where `vigil serve` writes its process id.")
    rollup_interval: float = Field(default=600.0, gt=0, description="Seconds between rollups of results.")
    pending_results_limit: int = Field(
        default=100_000, ge=1, description="Results kept in memory while the database is down; beyond, oldest go."
    )
    incident_quiet_period: float = Field(
        default=600.0, gt=0, description="Seconds an automatic incident stays in monitoring before it resolves."
    )
    # Incoming alerts (issue 4, docs/alerts.md): the webhooks' bearer token, and the label → component mapping.
    integration_token: SecretStr = Field(default=SecretStr(""), description="Bearer token of the alert webhooks.")
    alert_mapping: Path | None = Field(default=None, description="YAML file mapping alert labels to components.")
    # Subscribers (issue 4, docs/subscribers.md): the links in messages (confirm, unsubscribe) start with this.
    public_url: str = "http://127.0.0.1:8080"
    # Notifications (issue 4, docs/notifications.md): how many deliveries the dispatcher sends at once.
    notify_concurrency: int = Field(
        default=16, ge=1, le=1000, description="Notifications (webhooks, e-mails) being sent at once, at most."
    )
    notify_smtp_concurrency: int = Field(
        default=4, ge=1, le=100, description="E-mails being sent at once per SMTP server (and per Apprise channel)."
    )
    subscribe_rate_limit: int = Field(
        default=10, ge=0, description="Subscription requests per hour from one client address (0: no limit)."
    )

    @model_validator(mode="after")
    def _real_secret_outside_development(self) -> Settings:
        key = self.secret_key.get_secret_value()
        if self.environment is Environment.DEVELOPMENT:
            if not key:
                # A fresh key per process: sessions do not survive a restart, which development can live with.
                self.secret_key = SecretStr(secrets.token_urlsafe(32))
                logger.warning("VIGIL_SECRET_KEY is unset; using a random key for this development process")
            return self
        if not key or key.lower() in _PLACEHOLDER_SECRETS or len(key) < _MIN_SECRET_LENGTH:
            raise ValueError(
                f"VIGIL_SECRET_KEY must be set to a random value of at least {_MIN_SECRET_LENGTH} characters "
                f"(or VIGIL_SECRET_KEY_FILE to a file holding one) when VIGIL_ENVIRONMENT is {self.environment}; "
                "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _FileVariables(settings_cls))


class _FileVariables(PydanticBaseSettingsSource):
    """``VIGIL_<NAME>_FILE`` for the fields in :data:`FILE_FIELDS`: the value is the file's text."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        environ = {name.upper(): value for name, value in os.environ.items()}
        variable = f"{ENV_PREFIX}{field_name}".upper()
        path = environ.get(f"{variable}_FILE")
        if field_name not in FILE_FIELDS or not path:
            return None, field_name, False
        if variable in environ:
            # Which one wins would be a guess; a stale variable left next to a rotated file is a classic outage.
            raise SettingsError(f"both {variable} and {variable}_FILE are set; keep one")
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise SettingsError(f"{variable}_FILE: cannot read {path}: {exc.strerror or exc}") from None
        # Files written by `echo` end with a newline that is not part of the secret.
        return text.rstrip("\r\n"), field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for field_name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, field_name)
            if value is not None:
                values[key] = value
        return values


@cache
def get_settings() -> Settings:
    """Return the settings, read from the environment on the first call; raises pydantic.ValidationError.

    Tests (and a server reloading its configuration) call ``get_settings.cache_clear()`` to read again.
    """
    return Settings()
