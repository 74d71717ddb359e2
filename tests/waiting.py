"""Waiting for a condition in an async test: the one helper, instead of a copy per module."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(condition: Callable[[], object], timeout: float = 10.0, step: float = 0.05) -> None:
    """Return once ``condition()`` is true; fail the test after ``timeout`` seconds (a loaded CI machine's
    patience, not a product requirement)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"condition not reached within {timeout:g} s")
        await asyncio.sleep(step)
