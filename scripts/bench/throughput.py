"""`digits bench throughput`: single-image predictions at 32 connections, batched vs not.

    digits bench throughput [--runs 5] [--duration 30] [--connections 32] [--workers 2]

Two private services side by side (each its own redis-server and `digits up`), measured
in turns so machine noise hits both: the shipped configuration (micro-batching on), and the
reference with `DIGITS_MAX_BATCH=1`, one image per RQ job. Between them, in the same turns,
stock RQ runs no-op jobs one after another (scripts/bench/stock_rq.py): the ceiling of one
image per job with RQ as shipped, HTTP and model left out. The load is `wrk` running
scripts/bench/wrk/predict.lua: each connection POSTs `{"pixels": [...]}` for MNIST test
images in turn and waits for the answer. Errors are socket errors plus every answer other
than 200 (a 202 is a prediction that did not arrive within the wait).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from scripts.bench.report import load_average, median, write_section
from scripts.bench.service import ROOT, test_pixels
from scripts.bench.stack import ROLES, Stack, stack
from scripts.bench.stock_rq import Sequential, run_jobs, stock_rq

LUA = ROOT / "scripts" / "bench" / "wrk" / "predict.lua"
IMAGES = 1_000  # distinct request bodies the connections cycle through
WARM_UP = 3  # seconds of load before the first timed run of each service
TARGET_RATE, TARGET_P99 = 1_000, 100.0  # predictions/s and ms at 32 connections
SOCKET_ERRORS = ("connect", "read", "write", "timeout")
STOCK_JOBS = 500  # no-op jobs per stock RQ run

SHIPPED = "micro-batching (shipped settings: gevent API)"
GTHREAD = "reference: gthread API, 2 x 16 threads (the default before gevent)"
ONE_PER_JOB = "reference: one image per RQ job"
VARIANTS = {
    SHIPPED: {},
    GTHREAD: {"DIGITS_API_WORKER_CLASS": "gthread"},
    ONE_PER_JOB: {"DIGITS_MAX_BATCH": "1"},
}


@dataclass(frozen=True)
class Load:
    """One timed wrk run against one service."""

    rate: float  # answered requests per second
    p50: float  # ms
    p99: float  # ms
    errors: int  # socket errors and answers other than 200
    cpu: dict[str, float]  # CPU ms per request, per role
    per_job: float  # requests answered per RQ job


@dataclass(frozen=True)
class HotPath:
    """What the workers did across all runs: forks, restarts, model loads."""

    workers: int
    restarted: bool  # a worker PID changed
    children_cpu: float  # seconds of CPU in the workers' ended children (a fork per job adds up)
    model_loads: int  # "model ... loaded" log lines (one per worker start)

    def describe(self) -> str:
        """Say it in one sentence."""
        same = "changed PIDs" if self.restarted else "the same PIDs before and after"
        return (
            f"{self.workers} worker processes, {same}; CPU time of their child processes: "
            f"{self.children_cpu:.2f} s (no fork per job); {self.model_loads} model loads "
            "(one per worker, at start)"
        )


@dataclass(frozen=True)
class Measured:
    """A service's timed runs and its workers' hot-path check."""

    runs: list[Load]
    hot_path: HotPath


@dataclass(frozen=True)
class Results:
    """Every service's runs, and stock RQ's, taken in the same turns."""

    services: dict[str, Measured]
    stock: list[Sequential]


def register(subparsers: Any) -> None:
    """Add `digits bench throughput`."""
    parser = subparsers.add_parser("throughput", help="32 connections: batched vs one per job")
    add_load_options(parser)
    parser.set_defaults(func=run)


def add_load_options(parser: argparse.ArgumentParser) -> None:
    """Add the options every wrk benchmark takes."""
    parser.add_argument("--runs", type=int, default=5, help="timed runs per service (median)")
    parser.add_argument("--duration", type=int, default=30, help="seconds per run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)


def run(args: argparse.Namespace) -> int:
    """Measure both services and write the `throughput` section of BENCHMARKS.md."""
    results = measure(VARIANTS, args, stock_jobs=STOCK_JOBS)
    body = table(args, results)
    write_section("throughput", "Throughput: single images at 32 connections", body)
    return 0


def measure(
    variants: Mapping[str, Mapping[str, str]], args: argparse.Namespace, stock_jobs: int = 0
) -> Results:
    """Start one service per variant, then time them in turns.

    With `stock_jobs`, stock RQ runs that many no-op jobs in every turn too.
    """
    require_wrk()
    results: dict[str, list[Load]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as scratch, ExitStack() as stacks:
        bodies = write_bodies(Path(scratch) / "bodies.txt")
        running = {
            name: stacks.enter_context(stack(args.workers, settings))
            for name, settings in variants.items()
        }
        stock_queue = stacks.enter_context(stock_rq()) if stock_jobs else None
        for service in running.values():
            wrk(service.url, bodies, args.connections, WARM_UP)
        workers = {name: worker_pids(service) for name, service in running.items()}
        stock = []
        for _ in range(args.runs):
            for name, service in running.items():
                results[name].append(timed_load(service, bodies, args))
            if stock_queue is not None:
                stock.append(run_jobs(stock_queue, stock_jobs))
        services = {
            name: Measured(results[name], hot_path(service, workers[name]))
            for name, service in running.items()
        }
        return Results(services, stock)


def require_wrk() -> None:
    """Stop with what to install when `wrk` is missing."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")


def worker_pids(service: Stack) -> set[int]:
    """Return the PIDs of the service's worker processes."""
    return {process.pid for process in service.processes()["worker"]}


def hot_path(service: Stack, pids_before: set[int]) -> HotPath:
    """Check the workers after the runs: same processes, no children, one model load each."""
    workers = service.processes()["worker"]
    loads = [line for line in service.log_lines() if "model " in line and " loaded" in line]
    return HotPath(
        workers=len(workers),
        restarted={process.pid for process in workers} != pids_before,
        children_cpu=sum(
            process.cpu_times().children_user + process.cpu_times().children_system
            for process in workers
        ),
        model_loads=len(loads),
    )


def write_bodies(path: Path) -> Path:
    """Write one JSON request body per line, one MNIST test image each."""
    lines = (orjson.dumps({"pixels": row.tolist()}) for row in test_pixels(IMAGES))
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


class Served(Protocol):
    """What a timed load reads of a running service: a stack.Stack, or a peer."""

    @property
    def url(self) -> str: ...

    def cpu_seconds(self) -> dict[str, float]: ...

    def jobs_run(self) -> int: ...


def timed_load(service: Served, bodies: Path, args: argparse.Namespace) -> Load:
    """Run wrk once against `service`, with the CPU each of its roles used per request."""
    before, jobs_before = service.cpu_seconds(), service.jobs_run()
    report = wrk(service.url, bodies, args.connections, args.duration)
    after, jobs = service.cpu_seconds(), service.jobs_run() - jobs_before
    seconds = report["duration_us"] / 1e6
    answered = report["requests"] - report["not_ok"]
    requests = max(report["requests"], 1)
    return Load(
        rate=answered / seconds,
        p50=report["p50_us"] / 1e3,
        p99=report["p99_us"] / 1e3,
        errors=report["not_ok"] + sum(report[kind] for kind in SOCKET_ERRORS),
        cpu={role: (after[role] - before[role]) / requests * 1e3 for role in ROLES},
        per_job=answered / jobs if jobs else 0.0,  # 0: no queue
    )


def wrk(url: str, bodies: Path, connections: int, seconds: int) -> dict[str, int]:
    """Run wrk with the predict script; return the JSON line the script prints."""
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
    command += ["-s", str(LUA), url, "--", str(bodies)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    report: dict[str, int] = json.loads(output.strip().splitlines()[-1])
    return report


def summary(runs: list[Load]) -> dict[str, float]:
    """Medians over the runs, errors summed."""
    return {
        "rate": median([load.rate for load in runs]),
        "p50": median([load.p50 for load in runs]),
        "p99": median([load.p99 for load in runs]),
        "errors": float(sum(load.errors for load in runs)),
        "per_job": median([load.per_job for load in runs]),
        **{role: median([load.cpu[role] for load in runs]) for role in ROLES},
    }


def table(args: argparse.Namespace, found: Results) -> str:
    """Format the medians, the ratios, the verdict and the hot-path checks."""
    results = found.services
    medians = {name: summary(measured.runs) for name, measured in results.items()}
    batched, reference, gthread = medians[SHIPPED], medians[ONE_PER_JOB], medians[GTHREAD]
    ratio = batched["rate"] / reference["rate"]
    stock_rate = median([run.rate for run in found.stock])
    met = batched["rate"] >= TARGET_RATE and batched["p99"] <= TARGET_P99 and batched["errors"] == 0
    load = load_average()
    lines = [
        f"`wrk -t2 -c{args.connections} -d{args.duration}s` with "
        "`scripts/bench/wrk/predict.lua` (one image per request, 1,000 MNIST test images in "
        f"turn), {args.runs} runs per service, the services and stock RQ in turns. Each "
        "service: "
        f"`digits up --workers {args.workers}` on its own redis-server, model: cnn. "
        f"Load average at the end: {load} (the machine is shared).",
        "",
        "| service | predictions/s | p50 | p99 | errors | requests per RQ job | CPU ms per "
        "request: API / workers / Redis | runs (predictions/s) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *(row(name, medians[name], measured.runs) for name, measured in results.items()),
        stock_row(found.stock),
        "",
        f"Micro-batching serves **{ratio:.1f}x** the predictions per second of one image per "
        f"job through the same service, and **{batched['rate'] / stock_rate:.1f}x** the jobs "
        "per second of stock RQ running no-op jobs one at a time (one `SimpleWorker`, RQ's "
        f"blocking result read, {STOCK_JOBS} jobs per run, no HTTP, no model). "
        f"Target: >= {TARGET_RATE:,} predictions/s with p99 <= {TARGET_P99:.0f} ms and zero "
        f"errors: **{'met' if met else 'MISSED'}**. The gevent API (which holds slow clients "
        "without a thread each, README Operations) serves "
        f"**{batched['rate'] / gthread['rate']:.2f}x** the predictions per second of the "
        f"gthread API, p99 {batched['p99']:.1f} ms against {gthread['p99']:.1f} ms.",
        "",
        "Worker hot path, checked over all runs:",
        "",
        *(f"- {name}: {measured.hot_path.describe()}." for name, measured in results.items()),
    ]
    return "\n".join(lines)


def stock_row(runs: list[Sequential]) -> str:
    """Stock RQ's medians in the services' columns; it has no HTTP and no CPU split."""
    rate, p50, p99 = (
        median([getattr(run, name) for run in runs]) for name in ("rate", "p50", "p99")
    )
    rates = ", ".join(f"{run.rate:.0f}" for run in runs)
    return (
        f"| reference: stock RQ, no-op job, 1 SimpleWorker, 1 client, no HTTP | {rate:,.0f} | "
        f"{p50:.1f} ms | {p99:.1f} ms | 0 | 1.0 | - | {rates} |"
    )


def row(name: str, medians: dict[str, float], runs: list[Load]) -> str:
    cpu = " / ".join(f"{medians[role]:.2f}" for role in ROLES)
    rates = ", ".join(f"{load.rate:.0f}" for load in runs)
    return (
        f"| {name} | {medians['rate']:,.0f} | {medians['p50']:.1f} ms | "
        f"{medians['p99']:.1f} ms | {medians['errors']:.0f} | {medians['per_job']:.1f} | "
        f"{cpu} | {rates} |"
    )
