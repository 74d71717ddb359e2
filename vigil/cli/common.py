"""What the server-side commands share: failing with an exit code, the settings, and a migrated session."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from vigil.config import Settings, get_settings
from vigil.db import make_engine, normalize_url, session_scope, upgrade

__all__ = ["err", "fail", "migrated_session", "safe_url", "settings_or_exit"]

err = Console(stderr=True, soft_wrap=True)  # error lines stay whole, for grep and editors


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code`` (2: bad input, 1: could not be done)."""
    err.print(f"[red]error:[/] {message}", markup=True, highlight=False)
    raise typer.Exit(code)


def settings_or_exit(**overrides: object) -> Settings:
    """Return the settings read afresh, with the overrides that are not None; exit 2 naming bad variables."""
    get_settings.cache_clear()
    try:
        settings = get_settings()
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            name = f"VIGIL_{field.upper()}" if field else "settings"
            err.print(f"{name}: {error['msg']}", markup=False, highlight=False)
        fail("the settings are invalid; nothing was started")
    except Exception as exc:  # a _FILE variable pointing at a missing file, both VAR and VAR_FILE set
        fail(str(exc))
    return settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})


def safe_url(url: str) -> str:
    """Return the database URL without its password, to show in messages."""
    return normalize_url(url).render_as_string(hide_password=True)


@contextmanager
def migrated_session() -> Iterator[Session]:
    """Yield a session on ``VIGIL_DATABASE_URL``, migrated first, committed at the end (one command, one
    transaction); exit 1 naming the database when it cannot be used. Other errors pass through."""
    settings = settings_or_exit()
    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
        with session_scope(engine) as session:
            yield session
    except SQLAlchemyError as exc:
        fail(f"cannot use {safe_url(settings.database_url)}: {str(exc).splitlines()[0]}", 1)
    finally:
        engine.dispose()
