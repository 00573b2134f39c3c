"""1,000 stream followers connecting and dropping: nothing leaks in `digits api` (gevent).

A follower that goes is noticed when a write to it fails: the first heartbeat after the hang-up
still reaches the kernel (which answers the peer's reset), the second fails, so within two
heartbeats (stream_output.HEARTBEAT, 15 s) its greenlet, its client socket and its Redis read
must all be gone. Counted: the API process's threads, its TCP connections
from clients, and the XREADs Redis still has blocked for it.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
import requests
from processes import digits_api, up_redis_url, wait_for
from redis import Redis

from api import stream_output

FOLLOWERS = 1_000
AT_ONCE = 100


@pytest.fixture
def api(up_redis: Redis) -> Iterator[tuple[str, psutil.Process]]:
    """`digits api` as shipped (gevent), one process, on a free port; its URL and worker."""
    with digits_api(up_redis_url(), "--processes", "1") as (base, process):
        (worker,) = psutil.Process(process.pid).children()
        yield base, worker


def _answers(base: str) -> bool:
    try:
        return requests.get(f"{base}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def follow_and_drop(base: str) -> bytes:
    """Open a follower, read its response head, and hang up without reading further."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(f"GET /v1/streams/idle/out?wait=600 HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        return sock.recv(4096).split(b"\r\n", 1)[0]


def client_connections(worker: psutil.Process, port: int) -> int:
    found = worker.net_connections("tcp")
    return sum(1 for c in found if c.laddr and c.laddr.port == port and c.status != "LISTEN")


def blocked_reads(redis: Redis) -> int:
    return sum(
        1 for client in redis.client_list() if client["cmd"] == "xread" and "b" in client["flags"]
    )


@pytest.mark.slow
def test_followers_that_drop_leave_nothing_behind(
    api: tuple[str, psutil.Process], up_redis: Redis
) -> None:
    base, worker = api
    port = int(base.rsplit(":", 1)[1])
    assert requests.post(f"{base}/v1/streams/idle", timeout=10).status_code == 201
    threads_before = worker.num_threads()
    with ThreadPoolExecutor(AT_ONCE) as pool:
        heads = list(pool.map(lambda _: follow_and_drop(base), range(FOLLOWERS)))
    assert heads == [b"HTTP/1.1 200 OK"] * FOLLOWERS
    assert blocked_reads(up_redis) > 0  # the API has not noticed yet: the test can fail
    wait_for(
        lambda: blocked_reads(up_redis) == 0 and client_connections(worker, port) == 0,
        2 * stream_output.HEARTBEAT + 15,
        "every dropped follower's read and socket to go",
    )
    assert worker.num_threads() <= threads_before + 2  # gevent: greenlets, not threads
    assert _answers(base)
