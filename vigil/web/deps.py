"""Request dependencies shared by the routers: the backend, and a read-only database session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from vigil.web.backend import Backend

__all__ = ["BackendDep", "SessionDep", "after_commit", "get_backend", "get_session"]


def get_backend(request: Request) -> Backend:
    """Return the backend the app was created with."""
    backend: Backend = request.app.state.backend
    return backend


def after_commit(request: Request, hook: str) -> None:
    """Call the backend's ``hook`` (``alerts_changed``, ``incidents_changed``) once a write is committed, so the
    engine acts now rather than at its next poll; a backend without an engine (tests, tools) has none."""
    function = getattr(get_backend(request), hook, None)
    if callable(function):
        function()


def get_session(request: Request) -> Iterator[Session]:
    """Yield a session on the backend's database, rolled back at the end: the JSON API only reads."""
    with Session(get_backend(request).database) as session:
        try:
            yield session
        finally:
            session.rollback()


BackendDep = Annotated[Backend, Depends(get_backend)]
SessionDep = Annotated[Session, Depends(get_session)]
