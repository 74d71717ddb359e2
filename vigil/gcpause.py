"""``gc_paused()``: run a block with Python's cyclic garbage collector off.

Loading a model and analysing it create millions of small objects (entries, ZBDD nodes) and no reference
cycles worth collecting; the cyclic collector would walk them over and over for nothing. Measured on a
100,000-component model: loading 4.2 s → 1.9 s; analysis of a 10,000-component model about 15 % faster.
Reference counting still frees everything as usual.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["gc_paused"]


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic GC for the block, restoring its previous state afterwards (nests safely)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
