"""A private copy of the service for one benchmark: its own redis-server and `digits up`.

Every stack publishes the shipped CNN into an empty Redis, so stacks measured side by side
share nothing but the machine. Settings go in through the environment, as in production;
the service's log lines go to a file instead of the benchmark's output.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from rq import Worker

from scripts.bench.service import ROOT, free_port, private_redis
from scripts.registry import publish_file
from scripts.up import WEIGHTS_DIR
from store.connection import connect

if TYPE_CHECKING:
    import psutil  # the `bench` extra; `digits` itself starts without it

SERVED_WEIGHTS = WEIGHTS_DIR / "cnn.npz"  # the model every service benchmark serves
ROLES = ("api", "worker", "redis")


@dataclass(frozen=True)
class Stack:
    """A running service: its URL, its Redis, the `digits up` process that owns it, its log."""

    url: str
    redis_url: str
    up: subprocess.Popen[str]
    log: IO[str]

    def log_lines(self) -> list[str]:
        """Return what the service has logged so far."""
        # pread: the service's processes write through the same file offset, leave it be.
        descriptor = self.log.fileno()
        size = os.fstat(descriptor).st_size
        return os.pread(descriptor, size, 0).decode(errors="replace").splitlines()

    def processes(self) -> dict[str, list[psutil.Process]]:
        """Return the live processes of each role: api (gunicorn), worker, redis."""
        import psutil

        found: dict[str, list[psutil.Process]] = {role: [] for role in ROLES}
        for process in psutil.Process(self.up.pid).children(recursive=True):
            role = _role(process)
            if role is not None:
                found[role].append(process)
        port = self.redis_url.rsplit(":", 1)[1].split("/")[0]
        for process in psutil.process_iter(["name", "cmdline"]):
            if process.info["name"] == "redis-server" and port in " ".join(
                process.info["cmdline"] or []
            ):
                found["redis"].append(process)
        return found

    def jobs_run(self) -> int:
        """Count the jobs the service's workers have run so far (RQ's own counters)."""
        workers = Worker.all(connection=connect(self.redis_url))
        return sum(worker.successful_job_count + worker.failed_job_count for worker in workers)

    def cpu_seconds(self) -> dict[str, float]:
        """Return the CPU time (user + system) used so far by each role's live processes."""
        import psutil

        totals = dict.fromkeys(ROLES, 0.0)
        for role, processes in self.processes().items():
            for process in processes:
                try:
                    times = process.cpu_times()
                except psutil.Error:
                    continue
                totals[role] += times.user + times.system
        return totals


def _role(process: psutil.Process) -> str | None:
    import psutil

    try:
        command = " ".join(process.cmdline())
    except psutil.Error:
        return None
    if "gunicorn" in command:
        return "api"
    if "scripts.cli worker" in command:
        return "worker"
    return None


@contextmanager
def stack(
    workers: int, settings: Mapping[str, str] | None = None, weights: Path = SERVED_WEIGHTS
) -> Iterator[Stack]:
    """Run a private redis-server and `digits up --workers N` with `settings` in the environment."""
    with private_redis() as redis_url, tempfile.TemporaryFile("w+") as log:
        publish_file(connect(redis_url), weights, activate=True)
        port = free_port()
        up = subprocess.Popen(
            [sys.executable, "-m", "scripts.cli", "up", "--workers", str(workers)]
            + ["--port", str(port)],
            cwd=ROOT,
            env=os.environ | {"REDIS_URL": redis_url} | dict(settings or {}),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        try:
            assert up.stdout is not None
            line = up.stdout.readline()
            if "serving on" not in line:
                log.seek(0)
                raise SystemExit(f"digits up did not start: {line!r}\n{log.read()[-2000:]}")
            yield Stack(url=f"http://127.0.0.1:{port}", redis_url=redis_url, up=up, log=log)
        finally:
            up.send_signal(signal.SIGTERM)
            up.wait(timeout=60)
