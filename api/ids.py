"""Job and batch ids: time-ordered, so that a missing one is told expired (410) or unknown (404).

An id is 32 hex digits like a UUID: the first 12 are the milliseconds since the Unix epoch
when it was made, the other 20 are random. Nothing is stored to remember an expired id:
an id older than the time its data is kept is answered 410, any other missing id 404.
"""

from __future__ import annotations

import re
import secrets
import time

from api.errors import ApiError

TIME_DIGITS = 12
PATTERN = re.compile(r"[0-9a-f]{32}")


def new() -> str:
    """Return a new id: creation time in milliseconds, then 80 random bits."""
    return f"{time.time_ns() // 1_000_000:0{TIME_DIGITS}x}{secrets.token_hex(10)}"


def age(identifier: str) -> float | None:
    """Return the seconds since the id was made, or None if it was not made by `new`."""
    if PATTERN.fullmatch(identifier) is None:
        return None
    seconds = time.time() - int(identifier[:TIME_DIGITS], 16) / 1000
    return seconds if 0 <= seconds < 10 * 365 * 86_400 else None


def missing(kind: str, identifier: str, kept: int) -> ApiError:
    """Say why a `kind` ("job", "batch") was not found: 410 when it has expired, else 404."""
    seconds = age(identifier)
    if seconds is not None and seconds > kept:
        return ApiError(
            410,
            "expired",
            f"{kind} {identifier} has expired: its data is kept for {kept} s after it is made "
            f"or ends, and it was made {seconds:.0f} s ago",
        )
    maybe = ", or it expired" if seconds is None else ""
    return ApiError(404, "not_found", f"no {kind} {identifier!r}: unknown{maybe}")
