"""Stock RQ as the reference for one image per job: a no-op job, enqueue to result.

What RQ as shipped can do here bounds any service that puts each image in a job of its
own: one stock `SimpleWorker` (or the forking `Worker`) on a private redis-server, one
client that enqueues a job doing nothing, waits for its result with RQ's own blocking
read (`Job.latest_result(timeout=...)`), and enqueues the next. No HTTP, no model, no
pixels: every millisecond measured is RQ's.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from rq import Queue
from rq.serializers import JSONSerializer

from scripts.bench.service import ROOT, _wait_for, private_redis
from store.connection import connect

QUEUE = "stock"
WORKER_CLASSES = {"SimpleWorker": "rq.worker.SimpleWorker", "Worker": "rq.worker.Worker"}
WARM_UP_JOBS = 20


def noop() -> None:
    """The job: nothing, so what is timed is RQ's queue protocol alone."""


@dataclass(frozen=True)
class Sequential:
    """One client's jobs, one after another: enqueue-to-result latencies in ms."""

    latencies: list[float]
    seconds: float

    @property
    def rate(self) -> float:
        """Jobs per second."""
        return len(self.latencies) / self.seconds

    @property
    def p50(self) -> float:
        return float(np.percentile(self.latencies, 50))

    @property
    def p99(self) -> float:
        return float(np.percentile(self.latencies, 99))


@contextmanager
def stock_rq(worker_class: str = "SimpleWorker") -> Iterator[Queue]:
    """Run one stock RQ worker of `worker_class` on a private Redis; yield its queue."""
    with private_redis() as redis_url:
        command = [sys.executable, "-m", "rq.cli", "worker", QUEUE, "--url", redis_url]
        command += ["-w", WORKER_CLASSES[worker_class], "-S", "json", "--quiet"]
        worker = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            connection = connect(redis_url)
            _wait_for(
                lambda: connection.scard("rq:workers") > 0, "the stock RQ worker did not start"
            )
            queue = Queue(QUEUE, connection=connection, serializer=JSONSerializer)
            run_jobs(queue, WARM_UP_JOBS)
            yield queue
        finally:
            worker.terminate()
            worker.wait(timeout=30)


def run_jobs(queue: Queue, count: int) -> Sequential:
    """Enqueue `count` no-op jobs one after another, each after the last one's result."""
    latencies = []
    began = time.perf_counter()
    for _ in range(count):
        start = time.perf_counter()
        job = queue.enqueue(noop, result_ttl=60)
        if job.latest_result(timeout=10) is None:
            raise SystemExit(f"stock RQ: no result for job {job.id} within 10 s")
        latencies.append((time.perf_counter() - start) * 1e3)
    return Sequential(latencies, time.perf_counter() - began)
