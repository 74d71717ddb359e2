"""``vigil serve``, ``vigil reload``, ``vigil db upgrade`` and ``vigil heartbeats``: the server's commands.

``serve`` runs the check engine and the web app in one process and one event loop (uvicorn), writes its pid to
``VIGIL_PID_FILE`` so that ``vigil reload`` can send it SIGHUP, and reloads the config on SIGHUP without losing
state; a config that does not load keeps the running one (the error is logged and shown in /healthz).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Coroutine
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from vigil.cli.common import err, fail, safe_url, settings_or_exit
from vigil.config import Settings
from vigil.db import current_revision, make_engine, session_scope, upgrade
from vigil.model.errors import ModelError
from vigil.monitors.models import Monitor

__all__ = ["db_app", "heartbeats", "reload", "serve"]

db_app = typer.Typer(help="The database: migrations.", no_args_is_help=True)


ConfigArg = Annotated[list[Path], typer.Argument(help="Config files or directories (merged).", show_default=False)]


def serve(
    config: ConfigArg,
    host: Annotated[str | None, typer.Option(help="Address to listen on [default: VIGIL_HOST or 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: VIGIL_PORT or 8080].")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run the monitoring engine and the web server (heartbeats, /healthz, /metrics, JSON API)."""
    from vigil.engine.runtime import load_config  # the engine loads only for the commands that need it

    settings = settings_or_exit(host=host, port=port)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        model, monitor_set = load_config(config)
    except ModelError as exc:
        for issue in exc.issues:
            err.print(str(issue), markup=False, highlight=False)
        fail(f"the config has {len(exc.issues)} problem(s); nothing was started")
    for issue in monitor_set.issues:
        err.print(f"[yellow]monitor left out:[/] {issue}", highlight=False)
    err.print(
        f"vigil: {len(model.components)} components, {len(monitor_set.monitors)} monitors; "
        f"listening on http://{settings.host}:{settings.port}",
        highlight=False,
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its per-plugin INFO lines say nothing to operators
    try:
        _run(_serve(settings, config, log_level))
    except OSError as exc:  # the port is taken, the pid file cannot be written
        fail(str(exc), code=1)


def _run(main: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop  # installed with uvicorn[standard]; its loop costs less CPU per check and per ping
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def _exit_quietly(signum: int, frame: FrameType | None) -> None:
    # uvicorn restores the handlers it found and raises the signal again after a graceful shutdown; exiting
    # through SystemExit (not the default handler's instant death) lets the pid file be removed.
    raise SystemExit(0)


async def _serve(settings: Settings, config: list[Path], log_level: str) -> None:
    import uvicorn

    from vigil.engine.runtime import Runtime
    from vigil.web.app import create_app  # only the server needs the web app

    runtime = Runtime(settings=settings, paths=config)
    app = create_app(runtime)
    server = uvicorn.Server(
        uvicorn.Config(app, host=settings.host, port=settings.port, log_level=log_level.lower(), access_log=False)
    )
    loop = asyncio.get_running_loop()
    reloads: set[asyncio.Task[bool]] = set()

    def on_hangup() -> None:
        task = loop.create_task(runtime.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hangup)
    signal.signal(signal.SIGTERM, _exit_quietly)
    signal.signal(signal.SIGINT, _exit_quietly)
    pid_file = Path(settings.pid_file)
    pid_file.write_text(f"{os.getpid()}\n", encoding="utf-8")
    try:
        await server.serve()
    except SystemExit as exc:
        if exc.code not in (0, None):  # uvicorn exits with 3 when it cannot bind or the app does not start
            raise OSError(f"the server did not start on {settings.host}:{settings.port} (see the log above)") from None
        raise
    finally:
        with contextlib.suppress(OSError):
            if pid_file.read_text(encoding="utf-8").strip() == str(os.getpid()):
                pid_file.unlink()
    if not server.started:
        raise OSError(f"the server did not start on {settings.host}:{settings.port} (see the log above)")


def reload() -> None:
    """Tell the running `vigil serve` to read its config again (SIGHUP to the pid in VIGIL_PID_FILE)."""
    settings = settings_or_exit()
    pid_file = Path(settings.pid_file)
    try:
        pid = int(pid_file.read_text(encoding="utf-8").strip())
    except FileNotFoundError:
        fail(f"no pid file at {pid_file}: is `vigil serve` running here (or is VIGIL_PID_FILE set elsewhere)?", 1)
    except (OSError, ValueError) as exc:
        fail(f"cannot read a process id from {pid_file}: {exc}", 1)
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        fail(f"process {pid} from {pid_file} is not running (a stale pid file)", 1)
    except PermissionError:
        fail(f"not allowed to signal process {pid} (run as the user that runs `vigil serve`)", 1)
    err.print(f"asked vigil (pid {pid}) to reload its config; see its log or /healthz for the outcome")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations (VIGIL_DATABASE_URL); `vigil serve` does this on start too."""
    settings = settings_or_exit()
    try:
        upgrade(settings.database_url)
        revision = current_revision(settings.database_url)
    except SQLAlchemyError as exc:
        fail(f"cannot migrate {safe_url(settings.database_url)}: {str(exc).splitlines()[0]}", 1)
    err.print(f"database {safe_url(settings.database_url)} is at revision {revision}", highlight=False)


def heartbeats(
    base_url: Annotated[str | None, typer.Option(help="Public URL of the server [default: http://HOST:PORT].")] = None,
) -> None:
    """List the heartbeat monitors with their ping URLs (they hold secret tokens: share them with care)."""
    settings = settings_or_exit()
    base = (base_url or f"http://{settings.host}:{settings.port}").rstrip("/")
    engine = make_engine(settings.database_url)
    try:
        with session_scope(engine) as session:
            query = select(Monitor.id, Monitor.heartbeat_token).where(
                Monitor.heartbeat_token.is_not(None), Monitor.enabled.is_(True)
            )
            rows = session.execute(query.order_by(Monitor.id)).all()
    except SQLAlchemyError as exc:
        fail(f"cannot read {safe_url(settings.database_url)}: {str(exc).splitlines()[0]}", 1)
    finally:
        engine.dispose()
    table = Table("monitor", "ping URL (add /start or /fail)")
    for key, token in rows:
        table.add_row(key, f"{base}/ping/{token}")
    Console().print(table)
