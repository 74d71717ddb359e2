"""Short human renderings of quantities for check reasons: '10 s', '250 ms', '1 MiB', '3 days'."""

from __future__ import annotations

__all__ = ["bytes_text", "days_text", "seconds_text"]


def seconds_text(seconds: float) -> str:
    """Return ``"250 ms"``, ``"2.5 s"``, ``"3 min"``, ``"5 h"`` or ``"3 d"``: the unit a person would say."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    for unit, scale, below in (("s", 1, 120), ("min", 60, 7200), ("h", 3600, 172800)):
        if seconds < below:
            return f"{round(seconds / scale, 1):g} {unit}"
    return f"{round(seconds / 86400, 1):g} d"


def bytes_text(size: int) -> str:
    """Return ``"1 MiB"``, ``"64 KiB"``, ``"1.5 MiB"`` or ``"300 bytes"``."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} bytes"


def days_text(seconds: float) -> str:
    """Return a remaining time in whole days (``"3 days"``, ``"1 day"``), or hours below a day."""
    days = int(seconds // 86400)
    if days >= 1:
        return f"{days} day" if days == 1 else f"{days} days"
    hours = int(seconds // 3600)
    return f"{hours} hour" if hours == 1 else f"{hours} hours"
