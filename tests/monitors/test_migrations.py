from __future__ import annotations

import subprocess
import sys

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from vigil.db import alembic_config, current_revision, head_revision, make_engine, upgrade
from vigil.migrations import target_metadata

pytest_plugins = ["tests.dbfixtures"]


def _differences(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, target_metadata()))


def _columns(engine: Engine) -> dict[str, set[str]]:
    inspector = inspect(engine)
    return {table: {column["name"] for column in inspector.get_columns(table)} for table in inspector.get_table_names()}


def test_upgrade_from_empty_creates_exactly_the_models_tables(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) is None
        upgrade(db_url)  # from a URL, as `vigil db upgrade` does
        assert current_revision(engine) == head_revision() is not None
        assert _differences(engine) == []
        expected = {name: {column.name for column in table.columns} for name, table in target_metadata().tables.items()}
        found = _columns(engine)
        assert found.pop("alembic_version") == {"version_num"}
        assert found == expected
    finally:
        engine.dispose()


def test_upgrade_is_idempotent_and_keeps_the_data(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine)
        with engine.begin() as connection:
            row = "('web', 'Web', 'service', 'critical', 'up')"
            connection.execute(text(f"INSERT INTO components (id, name, kind, tier, state) VALUES {row}"))
        upgrade(engine)
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM components")).scalar_one() == 1
        assert _differences(engine) == []
    finally:
        engine.dispose()


def test_the_comparison_sees_a_schema_that_drifted(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine)
        with engine.begin() as connection:
            connection.execute(text("ALTER TABLE rollups ADD COLUMN extra INTEGER"))
        differences = _differences(engine)
        assert [(kind, column.name) for kind, _, table, column in differences if table == "rollups"] == [
            ("remove_column", "extra")
        ]
    finally:
        engine.dispose()


def test_downgrade_to_base_leaves_only_the_version_table(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade(engine)
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection), "base")
        assert current_revision(engine) is None
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    finally:
        engine.dispose()


def test_servers_starting_together_on_postgresql_migrate_once(db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time anyway")
    # Processes, as two servers would be: each fails if it tries to create tables the other made.
    code = "import sys; from vigil.db import upgrade; upgrade(sys.argv[1])"
    runs = [subprocess.Popen([sys.executable, "-c", code, db_url], stderr=subprocess.PIPE) for _ in range(2)]
    for run in runs:
        _, errors = run.communicate(timeout=120)
        assert run.returncode == 0, errors.decode()
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) == head_revision()
        assert _differences(engine) == []
    finally:
        engine.dispose()
