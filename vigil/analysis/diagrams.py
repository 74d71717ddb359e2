"""What the decision-diagram managers (:mod:`~vigil.analysis.zbdd`, :mod:`~vigil.analysis.bdd`) share: work
budgets and room for their recursion.

Diagram operations recurse once per variable on a path; :func:`recursion_room` raises Python's recursion limit
for the duration of a call (Python 3.11+ does not use the C stack for Python-to-Python calls, so this is safe).
"""

from __future__ import annotations

import math
import sys
import threading
from dataclasses import dataclass

__all__ = ["BudgetExceededError", "recursion_room"]

_recursion_lock = threading.Lock()
_recursion_users = 0
_recursion_saved = 0
_recursion_granted = 0
# Frames an operation may use without raising the limit, and the slack kept above a raised one.
_SHALLOW = 200


class BudgetExceededError(RuntimeError):
    """A decision-diagram operation ran out of its budget; ``nodes`` is True for nodes, False for time.

    The manager is left consistent.
    """

    def __init__(self, message: str, *, nodes: bool) -> None:
        super().__init__(message)
        self.nodes = nodes


class recursion_room:  # noqa: N801 - a context manager used like a function
    """Make sure ``depth`` more Python frames fit under the recursion limit while the block runs.

    Nested and concurrent users share one raised limit, restored when the last one leaves. Entering is cheap
    when an enclosing block already made enough room, so operations can be wrapped individually.
    """

    __slots__ = ("_counted", "_depth")

    def __init__(self, depth: int) -> None:
        self._depth = depth
        self._counted = False

    def __enter__(self) -> None:
        global _recursion_users, _recursion_saved, _recursion_granted
        if self._depth <= _SHALLOW:
            return  # the default limit leaves this much room
        with _recursion_lock:
            if _recursion_users == 0:
                _recursion_saved = sys.getrecursionlimit()
                _recursion_granted = 0
            _recursion_users += 1
            self._counted = True
            if self._depth > _recursion_granted:
                wanted = _frame_depth() + self._depth + _SHALLOW
                if wanted > sys.getrecursionlimit():
                    sys.setrecursionlimit(wanted)
                _recursion_granted = self._depth

    def __exit__(self, *exc: object) -> None:
        global _recursion_users
        if self._counted:
            self._counted = False
            with _recursion_lock:
                _recursion_users -= 1
                if _recursion_users == 0:
                    sys.setrecursionlimit(_recursion_saved)


def _frame_depth() -> int:
    frame = sys._getframe()
    depth = 0
    while frame is not None:
        depth += 1
        frame = frame.f_back  # type: ignore[assignment]
    return depth


@dataclass(slots=True)
class _Budget:
    """Mutable limits shared with the node constructor: an absolute node-id cap and a monotonic deadline."""

    node_cap: int = 1 << 62
    deadline: float = math.inf
