"""Prometheus metrics at `GET /metrics`: this API's requests, and the service read from Redis.

Two sources, one page:

- Requests (count by route and status, latency, rows per request) are counted in the
  process by prometheus-client. Under gunicorn `digits api` points
  PROMETHEUS_MULTIPROC_DIR at a directory of its own (scripts/metrics_dir.py), every
  process writes its numbers there, and whichever process answers the scrape sums them.
- Everything else is read from Redis when scraped, so it is the same from any API
  process on any machine: queue depth, live workers, the current model, and the
  counters workers add after each job (queue wait, compute, rows; store/jobstats.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from flask import Blueprint, Response
from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.multiprocess import MultiProcessCollector
from redis.exceptions import RedisError

from api.openapi import TEXT, Operation
from api.services import Services, services
from store import jobstats, liveness, registry, restarts

bp = Blueprint("metrics", __name__)

MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
HISTOGRAM_HELP = {
    "queue_wait": "Seconds a job waited in the queue before a worker started it",
    "compute": "Seconds a worker spent running a job",
    "rows": "Images or CSV rows per job (micro-batch or chunk size)",
}

# This process's own numbers; under gunicorn they are also written to the shared directory.
REGISTRY = CollectorRegistry()
REQUESTS = Counter(
    "digits_http_requests",
    "HTTP requests answered, by route template and status",
    ["method", "route", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "digits_http_request_duration_seconds",
    "Seconds from request to response (a sync predict includes queue wait and compute)",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
REQUEST_ROWS = Histogram(
    "digits_request_rows",
    "Images (JSON) or rows (CSV batch) per accepted request",
    ["route"],
    buckets=jobstats.ROWS,
    registry=REGISTRY,
)


def observe(method: str, route: str, status: int, seconds: float, rows: int | None) -> None:
    """Count one answered request."""
    REQUESTS.labels(method, route, str(status)).inc()
    LATENCY.labels(method, route).observe(seconds)
    if rows is not None and status < 400:
        REQUEST_ROWS.labels(route).observe(rows)


@bp.get("/metrics")
@Operation({200: ("Prometheus text exposition format", {"text/plain": TEXT})})
def metrics() -> Response:
    """Serve every metric in Prometheus's text format."""
    service = CollectorRegistry(auto_describe=False)
    service.register(ServiceCollector(services()))
    body = generate_latest(_requests_registry()) + generate_latest(service)
    return Response(body, mimetype=None, content_type=CONTENT_TYPE_PLAIN_0_0_4)


def _requests_registry() -> CollectorRegistry:
    if MULTIPROCESS not in os.environ:
        return REGISTRY
    merged = CollectorRegistry()
    MultiProcessCollector(merged)
    return merged


class ServiceCollector:
    """Read the service's state and the workers' job counters from Redis, per scrape."""

    def __init__(self, found: Services) -> None:
        self.found = found

    def describe(self) -> list[Metric]:
        """Name nothing up front, so registering does not read Redis."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Yield the metric families; only `digits_redis_up 0` when Redis does not answer."""
        try:
            families = list(self._families())
        except RedisError:
            families = []
        up = float(bool(families))
        yield GaugeMetricFamily("digits_redis_up", "1 when Redis answered", value=up)
        yield from families

    def _families(self) -> Iterator[Metric]:
        found = self.found
        depth = GaugeMetricFamily("digits_queue_depth", "Jobs waiting in a queue", labels=["queue"])
        for queue in (found.predict_queue, found.batch_queue):
            depth.add_metric([queue.name], queue.count)
        yield depth
        yield GaugeMetricFamily(
            "digits_workers",
            "Workers whose heartbeat is current",
            value=liveness.live_workers(found.predict_queue),
        )
        model = InfoMetricFamily("digits_model", "The model version workers use", labels=[])
        current = registry.current(found.redis)
        if current is not None:
            model.add_metric([], {"version": current})
        yield model
        yield from _job_families(jobstats.read(found.redis))
        supervised = CounterMetricFamily(
            "digits_supervisor_restarts",
            "Processes `digits up` restarted (exited, or alive but silent to Redis), by role",
            labels=["role"],
        )
        for role, total in sorted(restarts.read(found.redis).items()):
            supervised.add_metric([role], total)
        yield supervised


def _job_families(totals: jobstats.Totals) -> Iterator[Metric]:
    jobs = CounterMetricFamily(
        "digits_jobs", "Jobs ended, by queue and outcome", labels=["queue", "outcome"]
    )
    for (queue, outcome), count in sorted(totals.jobs.items()):
        jobs.add_metric([queue, outcome], count)
    yield jobs
    rows = CounterMetricFamily(
        "digits_rows_processed", "Images and CSV rows labelled", labels=["queue"]
    )
    for queue, count in sorted(totals.rows.items()):
        rows.add_metric([queue], count)
    yield rows
    for name, help_text in HISTOGRAM_HELP.items():
        unit = "" if name == "rows" else "_seconds"
        family = HistogramMetricFamily(f"digits_job_{name}{unit}", help_text, labels=["queue"])
        for (histogram, queue), found in sorted(totals.histograms.items()):
            if histogram == name:
                buckets = [(_bound(bound), count) for bound, count in found.buckets]
                family.add_metric([queue], buckets, found.total)
        yield family


def _bound(bound: float) -> str:
    return "+Inf" if bound == jobstats.INF else repr(bound)
