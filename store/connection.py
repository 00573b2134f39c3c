"""Turn the one REDIS_URL setting into a client: a plain Redis server or one found by Sentinel.

`redis://`, `rediss://` and `unix://` go to redis-py's `Redis.from_url`. For failover,
`redis+sentinel://[[user]:password@]host:port[,host:port...]/MASTER_NAME[/DB]` (the form of
the `limits` library) names the sentinels and the primary's name: the client asks the
sentinels where the primary is (redis-py's `Sentinel.master_for`), and asks again whenever
its connection breaks or the server it reaches has become a replica. As in `limits`, the
user and password go to the sentinels and to the primary alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from redis import Redis
from redis.sentinel import Sentinel

from store import logs

SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_PORT = 26379  # Sentinel's own default port, for a host given without one


class RedisUrlError(ValueError):
    """A REDIS_URL that cannot name a server: says what is wrong and what the form is."""


@dataclass(frozen=True)
class SentinelUrl:
    """The parts of a `redis+sentinel://` URL."""

    sentinels: list[tuple[str, int]]
    master_name: str
    db: int
    username: str | None
    password: str | None


def connect(url: str, **options: Any) -> Redis:
    """Return a client for `url`; `options` (timeouts, retries) go to every connection.

    Lazy as `Redis.from_url` is: nothing is sent until first used. Raises RedisUrlError for a
    malformed `redis+sentinel://` URL.
    """
    if urlsplit(url).scheme != SENTINEL_SCHEME:
        return Redis.from_url(url, **options)
    parsed = parse_sentinel_url(url)
    auth = {"username": parsed.username, "password": parsed.password}
    sentinel = Sentinel(parsed.sentinels, sentinel_kwargs=auth | _sentinel_options(options))
    primary: Redis = sentinel.master_for(parsed.master_name, db=parsed.db, **auth, **options)
    return primary


def _sentinel_options(options: dict[str, Any]) -> dict[str, Any]:
    """Keep the timeouts for the sentinels too: a dead sentinel must not hang the lookup."""
    names = ("socket_connect_timeout", "socket_timeout")
    return {name: options[name] for name in names if name in options}


def parse_sentinel_url(url: str) -> SentinelUrl:
    """Split a `redis+sentinel://` URL into sentinels, primary name, database and credentials."""
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    path = [segment for segment in parts.path.split("/") if segment]
    if not hosts or not 1 <= len(path) <= 2 or (len(path) == 2 and not path[1].isdigit()):
        raise RedisUrlError(
            f"REDIS_URL {logs.mask(url)!r} is not a Sentinel URL: write "
            "redis+sentinel://[:password@]host:port[,host:port...]/MASTER_NAME[/DB]"
        )
    return SentinelUrl(
        sentinels=[_address(host) for host in hosts.split(",")],
        master_name=unquote(path[0]),
        db=int(path[1]) if len(path) == 2 else 0,
        username=unquote(username) or None,
        password=unquote(password) or None,
    )


def _address(host: str) -> tuple[str, int]:
    """Split `host:port`, `[v6]:port` or a bare host (Sentinel's default port)."""
    name, colon, port = host.rpartition(":")
    if not colon or name.endswith(":") or (host.startswith("[") and not name.endswith("]")):
        name, port = host, ""  # no port given (a bare IPv6 address has colons of its own)
    if port and not port.isdigit():
        raise RedisUrlError(f"sentinel address {host!r}: the port must be a number")
    return name.strip("[]"), int(port) if port else SENTINEL_PORT
