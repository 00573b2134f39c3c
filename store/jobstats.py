"""Per-job measurements: a JSON log line after each job, and counters in Redis for /metrics.

Workers may run on any number of machines; adding their numbers to one Redis hash lets any
API process serve the service-wide totals without a metrics agent beside each worker. A
worker adds its jobs up in memory (`Tally`) and writes them in one round trip at most once
per FLUSH_INTERVAL, and when it stops: a round trip and eight commands per job were a tenth
of a single-image job's Redis traffic, for totals nobody reads more often than a scrape.
Histograms are kept as one counter per bucket, not cumulative, and summed up when read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq.job import Job

from store import codec, keys, logs

log = logging.getLogger(__name__)

INF = float("inf")
SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
ROWS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000)
HISTOGRAMS = {"queue_wait": SECONDS, "compute": SECONDS, "rows": ROWS}
# What else a job function may return that belongs in its log line.
CONTEXT = ("batch_id", "chunk", "members", "counted")
SEPARATOR = "|"
FLUSH_INTERVAL = 1.0  # seconds a worker's counters may wait in memory before Redis has them


@dataclass(frozen=True)
class JobStats:
    """What one job did and how long it waited and ran."""

    job_id: str
    queue: str
    outcome: str  # RQ's final status: finished | failed (or scheduled when retried)
    rows: int | None  # None when the job did not finish
    model_version: str | None
    queue_wait: float  # seconds from enqueue to start
    compute: float  # seconds running the job function
    context: dict[str, Any] = field(default_factory=dict)  # CONTEXT fields the job returned


@dataclass
class Histogram:
    """Cumulative bucket counts, as Prometheus exposes them."""

    buckets: list[tuple[float, float]]  # (upper bound, observations <= bound), +Inf last
    total: float  # sum of the observed values


@dataclass
class Totals:
    """The service-wide job counters, per queue."""

    jobs: dict[tuple[str, str], int] = field(default_factory=dict)  # (queue, outcome) -> jobs
    rows: dict[str, int] = field(default_factory=dict)  # queue -> rows of finished jobs
    histograms: dict[tuple[str, str], Histogram] = field(default_factory=dict)  # (name, queue)


def measure(job: Job, finished: bool) -> JobStats:
    """Read a job's timings (RQ's timestamps) and the rows and version it returned."""
    # RQ keeps the return value there; `job.return_value()` would read it back from Redis.
    returned: dict[str, Any] = job._result if finished and isinstance(job._result, dict) else {}
    status = job.get_status(refresh=False)
    return JobStats(
        job_id=job.id,
        queue=job.origin,
        outcome=status.value if status is not None else ("finished" if finished else "failed"),
        rows=int(returned.get("rows", returned.get("images", 0))) if finished else None,
        model_version=returned.get("model_version"),
        queue_wait=_seconds(job.enqueued_at, job.started_at),
        compute=_seconds(job.started_at, job.ended_at),
        context={name: returned[name] for name in CONTEXT if name in returned},
    )


def _seconds(start: datetime | None, end: datetime | None) -> float:
    # Enqueue and start stamps come from different machines' clocks: never below zero.
    return max(0.0, (end - start).total_seconds()) if start and end else 0.0


def report(stats: JobStats, tally: Tally) -> None:
    """Log the job's line and add the job to the worker's `tally`."""
    logs.event(
        log,
        "job",
        job_id=stats.job_id,
        queue=stats.queue,
        outcome=stats.outcome,
        rows=stats.rows,
        model_version=stats.model_version,
        queue_wait_ms=round(stats.queue_wait * 1000, 3),
        compute_ms=round(stats.compute * 1000, 3),
        **stats.context,
    )
    tally.add(stats)


class Tally:
    """One worker's job counters not yet in Redis: increments of the METRICS_JOBS fields."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()  # HINCRBY
        self._sums: defaultdict[str, float] = defaultdict(float)  # HINCRBYFLOAT
        self._flushed = time.monotonic()

    def add(self, stats: JobStats) -> None:
        """Count one job: its outcome, rows and the histograms' buckets and sums."""
        with self._lock:
            self._counts[_field("jobs", stats.queue, stats.outcome)] += 1
            if stats.rows is not None:
                self._counts[_field("rows_total", stats.queue)] += stats.rows
                self._observe("rows", stats.queue, stats.rows)
            self._observe("queue_wait", stats.queue, stats.queue_wait)
            self._observe("compute", stats.queue, stats.compute)

    def _observe(self, name: str, queue: str, value: float) -> None:
        bound = next((bound for bound in HISTOGRAMS[name] if value <= bound), INF)
        self._counts[_field(name, queue, repr(float(bound)))] += 1
        self._sums[_field(name, queue, "sum")] += value

    def flush(self, connection: Redis, due_only: bool = False) -> None:
        """Write what is pending in one round trip; with `due_only`, only once FLUSH_INTERVAL
        has passed since the last write. A Redis error only warns: the counts are kept."""
        with self._lock:
            if not self._counts or (due_only and time.monotonic() - self._flushed < FLUSH_INTERVAL):
                return
            counts, sums = self._counts, self._sums
            self._counts, self._sums = Counter(), defaultdict(float)
            self._flushed = time.monotonic()
        pipe = connection.pipeline(transaction=False)
        for name, count in counts.items():
            pipe.hincrby(keys.METRICS_JOBS, name, int(count))
        for name, total in sums.items():
            pipe.hincrbyfloat(keys.METRICS_JOBS, name, total)
        try:
            pipe.execute()
        except RedisError as error:
            log.warning("job counters not recorded yet: %s", error)
            with self._lock:
                self._counts.update(counts)
                for name, total in sums.items():
                    self._sums[name] += total


def _field(*parts: str) -> str:
    return SEPARATOR.join(parts)


def read(connection: Redis) -> Totals:
    """Return the counters every worker has added up so far."""
    totals = Totals()
    counts: dict[tuple[str, str], dict[float, int]] = defaultdict(dict)
    sums: dict[tuple[str, str], float] = {}
    for raw_name, raw_value in connection.hgetall(keys.METRICS_JOBS).items():
        name, queue, *rest = codec.text(raw_name).split(SEPARATOR)
        value = codec.text(raw_value)
        if name == "jobs":
            totals.jobs[(queue, rest[0])] = int(value)
        elif name == "rows_total":
            totals.rows[queue] = int(value)
        elif rest == ["sum"]:
            sums[(name, queue)] = float(value)
        else:
            counts[(name, queue)][float(rest[0])] = int(value)
    for key, per_bound in counts.items():
        totals.histograms[key] = Histogram(_cumulative(key[0], per_bound), sums.get(key, 0.0))
    return totals


def _cumulative(name: str, per_bound: dict[float, int]) -> list[tuple[float, float]]:
    running = 0
    buckets = []
    for bound in (*HISTOGRAMS[name], INF):
        running += per_bound.get(float(bound), 0)
        buckets.append((float(bound), float(running)))
    return buckets
