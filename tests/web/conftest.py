from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from tests.web.support import LocalBackend, seed, serving
from vigil.web.app import create_app


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def backend(engine: Engine) -> LocalBackend:
    """A backend on the test database (SQLite file or PostgreSQL schema), seeded by :func:`seed`."""
    seed(engine, heartbeats=20)
    return LocalBackend(engine)


@pytest.fixture
def base_url(backend: LocalBackend) -> Iterator[str]:
    """The URL of a real uvicorn server running the app on ``backend``."""
    with serving(create_app(backend)) as url:
        yield url
