"""Lua scripts run by hash: EVALSHA, the body sent only when Redis does not know it yet.

Every script of the service is a module constant made by `script()`, its SHA-1 taken once;
`run()` executes it on any connection. A Redis that lost its script cache (a restart)
answers NOSCRIPT, and the script is loaded again and run (redis-py's `Script`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis import Redis
from redis.commands.core import Script


def script(text: str) -> Script:
    """Return the script `text`, runnable on any connection with `run()`."""
    # Bytes need no client to be hashed; `run` always names the connection to use.
    return Script(None, text.encode())  # type: ignore[arg-type]


def run(connection: Redis, script: Script, keys: Sequence[Any], args: Sequence[Any] = ()) -> Any:
    """Run `script` with `keys` and `args` on `connection`; return what it returns."""
    return script(keys=list(keys), args=list(args), client=connection)
