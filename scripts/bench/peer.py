"""`digits bench peer`: the queue service against the same model served in-process.

    digits bench peer [--runs 5] [--duration 20] [--connections 32] [--workers 2] [--requests 200]

The peer (scripts/bench/peer_app.py) is what a user would write instead of a queue: a plain
Flask app that runs the shipped CNN in its own processes, under the gunicorn settings of
`digits up`'s API (`digits api`'s options and environment, scripts/serve.py). The service is
`digits up --workers N` on a private redis-server (scripts/bench/stack.py). Both are measured
in turns in one run, so machine noise hits both:

- 32 connections: `wrk` with scripts/bench/wrk/predict.lua, as `digits bench throughput`;
- one client: sequential single-image requests on one keep-alive connection, as
  `digits bench service`.

The queue costs something; the targets say how much it may: at 32 connections the service
serves at least 0.8x the peer's predictions per second, and one client's p50 is at most 2.5x
the peer's. The queue is what lets workers live on other machines.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson

from config import settings
from scripts.bench.peer_app import WEIGHTS
from scripts.bench.report import load_average, median, write_section
from scripts.bench.service import ROOT, _wait_for, free_port, measure_latency, test_pixels
from scripts.bench.stack import ROLES, SERVED_WEIGHTS, stack
from scripts.bench.throughput import (
    WARM_UP,
    Load,
    Served,
    add_load_options,
    summary,
    timed_load,
    write_bodies,
    wrk,
)
from scripts.serve import ALLOCATOR, gunicorn_command

TARGET_RATE, TARGET_P50 = 0.8, 2.5  # service / peer: predictions/s at 32 connections, p50 alone
PEER, SERVICE = "peer: plain Flask app, model in-process", "service: API, Redis queue, workers"
PEER_APP = "scripts.bench.peer_app:create_app()"
# BLAS held to one thread per process, as a worker holds it (DIGITS_BLAS_THREADS).
ONE_THREAD = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}


@dataclass(frozen=True)
class Peer:
    """The running peer: its URL and its gunicorn master."""

    url: str
    process: subprocess.Popen[bytes]

    def cpu_seconds(self) -> dict[str, float]:
        """Return the CPU time of its processes, all of it the API's (no workers, no Redis)."""
        import psutil

        master = psutil.Process(self.process.pid)
        used = 0.0
        for process in [master, *master.children(recursive=True)]:
            try:
                times = process.cpu_times()
            except psutil.Error:
                continue
            used += times.user + times.system
        return {role: used if role == "api" else 0.0 for role in ROLES}

    def jobs_run(self) -> int:
        """No queue, no jobs."""
        return 0


@dataclass(frozen=True)
class Alone:
    """One client's sequential requests in one turn: p50 and p99 in ms."""

    p50: float
    p99: float


def register(subparsers: Any) -> None:
    """Add `digits bench peer`."""
    parser = subparsers.add_parser("peer", help="the service vs the model served in-process")
    add_load_options(parser)
    parser.add_argument("--requests", type=int, default=200, help="one client's requests a turn")
    parser.set_defaults(func=run, duration=20)


def run(args: argparse.Namespace) -> int:
    """Measure the peer and the service in turns; write the `peer` section of BENCHMARKS.md.

    Without `wrk` only one client's turns are measured, and the section says so.
    """
    loaded = shutil.which("wrk") is not None
    loads: dict[str, list[Load]] = {PEER: [], SERVICE: []}
    alone: dict[str, list[Alone]] = {PEER: [], SERVICE: []}
    with (
        tempfile.TemporaryDirectory() as scratch,
        tempfile.TemporaryFile("w+") as log,
        stack(args.workers) as service,
        peer(log) as plain,
    ):
        served: dict[str, Served] = {PEER: plain, SERVICE: service}
        bodies = write_bodies(Path(scratch) / "bodies.txt")
        for target in served.values():
            if loaded:
                wrk(target.url, bodies, args.connections, WARM_UP)
        for _ in range(args.runs):
            for name, target in served.items():
                if loaded:
                    loads[name].append(timed_load(target, bodies, args))
                (latencies,) = measure_latency(target.url, 1, args.requests)
                alone[name].append(Alone(*np.percentile(latencies, [50, 99]).tolist()))
    title = "Peer: the queue service against the model served in-process"
    write_section("peer", title, table(args, loads, alone))
    return 0


@contextmanager
def peer(log: IO[str]) -> Iterator[Peer]:
    """Run the peer under `digits api`'s gunicorn settings on a free port until the block ends."""
    port = free_port()
    process = subprocess.Popen(
        gunicorn_command(settings.load({"PORT": port}), PEER_APP),
        cwd=ROOT,
        env=ALLOCATOR | dict(os.environ) | ONE_THREAD | {WEIGHTS: str(SERVED_WEIGHTS)},
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: _answers(port), "the peer did not start")
        yield Peer(url, process)
    finally:
        process.terminate()
        process.wait(timeout=60)


def _answers(port: int) -> bool:
    """Say whether the peer answers a prediction with 200."""
    body = orjson.dumps({"pixels": test_pixels(1)[0].tolist()})
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("POST", "/v1/predict", body, {"Content-Type": "application/json"})
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def table(
    args: argparse.Namespace, loads: dict[str, list[Load]], alone: dict[str, list[Alone]]
) -> str:
    """Format both sides' medians, the ratios against the targets and what each run gave."""
    single = {
        name: (median([run.p50 for run in runs]), median([run.p99 for run in runs]))
        for name, runs in alone.items()
    }
    p50_ratio = single[SERVICE][0] / single[PEER][0]
    lines = [
        f"The peer (`scripts/bench/peer_app.py`) and `digits up --workers {args.workers}` on "
        "a private redis-server serve the shipped CNN under the same gunicorn settings "
        f"(`digits api`'s), measured in turns, {args.runs} turns. Load average at the end: "
        f"{load_average()} (the machine is shared: other work ran beside it).",
        "",
    ]
    if loads[PEER]:
        lines += _loaded(args, loads)
    else:
        lines += [
            f"**{args.connections} connections: not measured**: `wrk` is not installed on "
            "this machine (`apt-get install wrk`).",
            "",
        ]
    lines += [
        f"One client, {args.requests} sequential single-image requests on one keep-alive "
        "connection per turn (as `digits bench service`):",
        "",
        "| side | p50 | p99 | runs (p50, ms) |",
        "| --- | --- | --- | --- |",
        *(
            f"| {name} | {single[name][0]:.2f} ms | {single[name][1]:.2f} ms | "
            f"{', '.join(f'{run.p50:.2f}' for run in alone[name])} |"
            for name in (PEER, SERVICE)
        ),
        "",
        f"One client: the service's p50 is **{p50_ratio:.2f}x** the peer's (target <= "
        f"{TARGET_P50:g}x: **{_verdict(p50_ratio <= TARGET_P50)}**).",
    ]
    return "\n".join(lines)


def _loaded(args: argparse.Namespace, loads: dict[str, list[Load]]) -> list[str]:
    medians = {name: summary(runs) for name, runs in loads.items()}
    ratio = medians[SERVICE]["rate"] / medians[PEER]["rate"]
    cpu = {name: sum(medians[name][role] for role in ROLES) for name in medians}
    rows = [
        f"| {name} | {found['rate']:,.0f} | {found['p50']:.1f} ms | {found['p99']:.1f} ms | "
        f"{found['errors']:.0f} | {cpu[name]:.2f} ({' / '.join(f'{found[r]:.2f}' for r in ROLES)})"
        f" | {', '.join(f'{load.rate:.0f}' for load in loads[name])} |"
        for name, found in medians.items()
    ]
    return [
        f"{args.connections} connections, `wrk -t2 -c{args.connections} -d{args.duration}s` "
        "with `scripts/bench/wrk/predict.lua` (one image per request, 1,000 MNIST test "
        "images in turn):",
        "",
        "| side | predictions/s | p50 | p99 | errors | CPU ms per request (API / workers / "
        "Redis) | runs (predictions/s) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        f"{args.connections} connections: the service serves **{ratio:.2f}x** the peer's "
        f"predictions per second (target >= {TARGET_RATE:g}x: "
        f"**{_verdict(ratio >= TARGET_RATE)}**), at {cpu[SERVICE] / cpu[PEER]:.2f}x its CPU "
        "per request.",
        "",
    ]


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"
