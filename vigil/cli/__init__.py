"""The ``vigil`` command line (Typer + Rich)."""

from vigil.cli.app import app, main

__all__ = ["app", "main"]
