"""Count the commands Redis receives: what a lookup or a job costs, as the server sees it."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from redis import ConnectionPool, Redis


@contextmanager
def commands_sent(redis_conn: Redis, naming: str = "") -> Iterator[list[str]]:
    """Collect the names of the commands clients send to `redis_conn`'s database (MONITOR),
    only those whose text holds `naming` (a key, say) when it is given.

    The commands a script runs inside Redis are not sent: a script is its one EVALSHA. The
    observer has its own client, so every client of the code under test counts.
    """
    pool = redis_conn.connection_pool
    settings = pool.connection_kwargs
    observer = Redis(connection_pool=ConnectionPool(pool.connection_class, **settings))
    marker = uuid.uuid4().hex  # sent last, by the observer: its client's commands do not count
    seen: list[tuple[str, str]] = []  # (client port, command name)
    sent: list[str] = []
    with observer.monitor() as monitor:

        def listen() -> None:
            for command in monitor.listen():
                if marker in command["command"]:
                    ours = command["client_port"]
                    sent.extend(name for port, name in seen if port != ours)
                    return
                ours_db = command["db"] == settings.get("db", 0)
                if ours_db and command["client_type"] != "lua" and naming in command["command"]:
                    seen.append((command["client_port"], command["command"].split(" ", 1)[0]))

        listener = threading.Thread(target=listen)
        listener.start()
        yield sent
        observer.echo(marker)
        listener.join(timeout=10)
    observer.close()
