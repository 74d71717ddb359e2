from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsError

from vigil.config import Environment, Settings, get_settings

KEY = "k" * 32


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No VIGIL_* variable from the machine or CI leaks in, and no settings stay cached between tests."""
    for name in list(os.environ):
        if name.upper().startswith("VIGIL_"):
            monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_SECRET_KEY", KEY)
    settings = Settings()
    assert settings.environment is Environment.PRODUCTION
    assert settings.database_url == "sqlite:///./vigil.db"
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.result_retention_days == 30
    assert (settings.write_batch_size, settings.write_flush_interval, settings.pending_results_limit) == (
        500,
        1.0,
        100_000,
    )


def test_environment_variables_with_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "VIGIL_ENVIRONMENT": "development",
        "VIGIL_DATABASE_URL": "postgresql://vigil@db/vigil",
        "VIGIL_PORT": "9000",
        "VIGIL_HOST": "0.0.0.0",
        "VIGIL_RESULT_RETENTION_DAYS": "7",
        "vigil_write_batch_size": "50",  # names are not case-sensitive
        "VIGIL_WRITE_FLUSH_INTERVAL": "0.25",
        "VIGIL_PENDING_RESULTS_LIMIT": "10",
    }.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.environment is Environment.DEVELOPMENT
    assert settings.database_url == "postgresql://vigil@db/vigil"
    assert (settings.host, settings.port, settings.result_retention_days) == ("0.0.0.0", 9000, 7)
    assert (settings.write_batch_size, settings.write_flush_interval, settings.pending_results_limit) == (50, 0.25, 10)


@pytest.mark.parametrize("key", ["", "changethis", "secret", "short-key"])
def test_production_refuses_a_missing_default_or_short_secret(monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    monkeypatch.setenv("VIGIL_SECRET_KEY", key)
    with pytest.raises(ValidationError, match="VIGIL_SECRET_KEY must be set"):
        Settings()


def test_development_makes_up_a_key_when_none_is_given() -> None:
    first = Settings(environment=Environment.DEVELOPMENT)
    second = Settings(environment=Environment.DEVELOPMENT)
    assert len(first.secret_key.get_secret_value()) >= 32
    assert first.secret_key != second.secret_key


def test_the_secret_does_not_show_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_SECRET_KEY", KEY)
    assert KEY not in repr(Settings())


def test_secrets_from_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "key").write_text(KEY + "\n")
    (tmp_path / "url").write_text("postgresql://vigil:pw@db/vigil")
    monkeypatch.setenv("VIGIL_SECRET_KEY_FILE", str(tmp_path / "key"))
    monkeypatch.setenv("VIGIL_DATABASE_URL_FILE", str(tmp_path / "url"))
    settings = Settings()
    assert settings.secret_key.get_secret_value() == KEY
    assert settings.database_url == "postgresql://vigil:pw@db/vigil"


def test_a_variable_and_its_file_together_are_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "key").write_text(KEY)
    monkeypatch.setenv("VIGIL_SECRET_KEY_FILE", str(tmp_path / "key"))
    monkeypatch.setenv("VIGIL_SECRET_KEY", KEY)
    with pytest.raises(SettingsError, match="both VIGIL_SECRET_KEY and VIGIL_SECRET_KEY_FILE"):
        Settings()


def test_a_missing_secret_file_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VIGIL_SECRET_KEY_FILE", str(tmp_path / "absent"))
    with pytest.raises(SettingsError, match=r"VIGIL_SECRET_KEY_FILE: cannot read .*absent"):
        Settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VIGIL_PORT", "0"),
        ("VIGIL_PORT", "http"),
        ("VIGIL_ENVIRONMENT", "staging"),
        ("VIGIL_PENDING_RESULTS_LIMIT", "0"),
        ("VIGIL_WRITE_FLUSH_INTERVAL", "-1"),
        ("VIGIL_RESULT_RETENTION_DAYS", "0"),
    ],
)
def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv("VIGIL_SECRET_KEY", KEY)
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name.removeprefix("VIGIL_").lower()):
        Settings()


def test_get_settings_reads_once_until_cleared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_SECRET_KEY", KEY)
    monkeypatch.setenv("VIGIL_PORT", "9000")
    assert get_settings() is get_settings()
    monkeypatch.setenv("VIGIL_PORT", "9001")
    assert get_settings().port == 9000
    get_settings.cache_clear()
    assert get_settings().port == 9001


def test_unknown_settings_are_refused() -> None:
    with pytest.raises(ValidationError, match="extra"):
        Settings(environment=Environment.DEVELOPMENT, database_uri="typo")  # type: ignore[call-arg]
