"""Alembic migrations of Vigil's database, packaged so that ``vigil db upgrade`` works from an installed Vigil.

Run them with :func:`vigil.db.upgrade`; write a new one with Alembic's command API and
:func:`vigil.db.alembic_config` (see its docstring), then read it over: autogenerate misses renames and data.
"""

from __future__ import annotations

import importlib

from sqlalchemy import MetaData

__all__ = ["MODEL_MODULES", "target_metadata"]

# Every module that defines tables. Autogenerate compares the database with what these import, so a domain
# that adds tables adds its models module here.
MODEL_MODULES = (
    "vigil.monitors.models",
    "vigil.incidents.models",
    "vigil.maintenance.models",  # 0004: maintenance
    "vigil.notify.models",  # 0005: notification deliveries; 0007: subscribers
    "vigil.alerts.models",  # 0006: incoming alerts
)


def target_metadata() -> MetaData:
    """Return the metadata of every table Vigil's models define (importing the modules that define them)."""
    from vigil.db import Base

    for name in MODEL_MODULES:
        importlib.import_module(name)
    return Base.metadata
