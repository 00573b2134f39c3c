"""REDIS_URL to client: plain URLs as redis-py reads them, Sentinel URLs in the `limits` form."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from redis.sentinel import SentinelConnectionPool

from store import logs
from store.connection import RedisUrlError, SentinelUrl, connect, parse_sentinel_url

ROOT = Path(__file__).resolve().parent.parent


def test_sentinel_url_names_every_sentinel_the_primary_and_the_database() -> None:
    parsed = parse_sentinel_url("redis+sentinel://:s%40cret@10.0.0.1:26379,sentinel-b:26380/main/3")
    assert parsed == SentinelUrl(
        sentinels=[("10.0.0.1", 26379), ("sentinel-b", 26380)],
        master_name="main",
        db=3,
        username=None,
        password="s@cret",
    )


def test_sentinel_url_defaults_database_zero_and_sentinel_port() -> None:
    parsed = parse_sentinel_url("redis+sentinel://user:pw@[::1],host/digits")
    assert parsed.sentinels == [("::1", 26379), ("host", 26379)]
    assert (parsed.master_name, parsed.db, parsed.username, parsed.password) == (
        "digits", 0, "user", "pw"
    )  # fmt: skip


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://host:26379",  # no primary name
        "redis+sentinel://host:26379/",
        "redis+sentinel://host:26379/main/zero",  # the database is a number
        "redis+sentinel://host:26379/main/0/extra",
        "redis+sentinel:///main",  # no sentinel
        "redis+sentinel://host:port/main",
    ],
)
def test_a_malformed_sentinel_url_says_what_the_form_is(url: str) -> None:
    with pytest.raises(RedisUrlError, match=r"redis\+sentinel://|port must be a number"):
        parse_sentinel_url(url)


def test_the_password_never_appears_in_the_error_or_the_logs() -> None:
    with pytest.raises(RedisUrlError) as raised:
        parse_sentinel_url("redis+sentinel://:hunter2@host:26379")
    assert "hunter2" not in str(raised.value)
    masked = logs.mask("worker on Redis redis+sentinel://:hunter2@a:26379,b:26379/digits/0")
    assert masked == "worker on Redis redis+sentinel://:***@a:26379,b:26379/digits/0"


def test_connect_gives_a_sentinel_managed_client_with_the_options() -> None:
    client = connect("redis+sentinel://:pw@127.0.0.1:1/main/2", socket_timeout=3)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "main"
    assert (pool.connection_kwargs["db"], pool.connection_kwargs["socket_timeout"]) == (2, 3)
    assert pool.connection_kwargs["password"] == "pw"
    [sentinel] = pool.sentinel_manager.sentinels
    sentinel_kwargs = sentinel.connection_pool.connection_kwargs
    assert (sentinel_kwargs["port"], sentinel_kwargs["password"]) == (1, "pw")
    assert sentinel_kwargs["socket_timeout"] == 3  # a silent sentinel must not hang the lookup


def test_connect_passes_plain_urls_to_redis_py() -> None:
    client = connect("redis://:pw@127.0.0.1:6390/4", socket_timeout=3)
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["port"], kwargs["db"], kwargs["password"], kwargs["socket_timeout"]) == (
        6390, 4, "pw", 3
    )  # fmt: skip


def test_every_service_client_is_made_by_store_connection() -> None:
    """One path from REDIS_URL to a client: a Sentinel URL works everywhere or nowhere."""
    offenders = [
        str(path.relative_to(ROOT))
        for package in ("api", "worker", "scripts", "store")
        for path in (ROOT / package).rglob("*.py")
        if path.name != "connection.py" and re.search(r"\bfrom_url\(", path.read_text())
    ]
    assert offenders == []


def test_replies_are_parsed_by_hiredis(redis_url: str) -> None:
    """redis-py's C parser (the hiredis package) cut ~30% of the client's CPU per call."""
    client = connect(redis_url)
    connection = client.connection_pool.get_connection()
    try:
        assert type(connection._parser).__name__ == "_HiredisParser"
        assert client.echo("ok") == b"ok"
    finally:
        client.connection_pool.release(connection)
