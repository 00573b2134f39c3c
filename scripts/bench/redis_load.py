"""`digits bench redis`: what one prediction and one CSV row cost Redis, for sizing a primary.

    digits bench redis [--runs 3] [--requests 500] [--duration 15] [--connections 32]
                       [--rows 10000] [--workers 2] [--idle 10]

On a private redis-server behind `digits up`, Redis's own counters are read before and after
each load: commands (INFO commandstats: each command where it ran, inside MULTI/EXEC and
Lua scripts too), bytes in and out (INFO stats' total_net_*_bytes),
and the CPU of Redis's main thread (used_cpu_*_main_thread: the one core a primary has for
commands). The idle service (worker heartbeats, sweeps, blocking reads that time out) is
measured first for `--idle` seconds and its rate subtracted from every load, so what is
left is the cost of the work. Loads, in turns, `--runs` times:

- single images, one client, sequential sync `POST /v1/predict` (no micro-batching);
- single images, `--connections` connections (`wrk`, as `digits bench throughput`);
- a `--rows` Kaggle CSV through `digits submit` (upload, its batch events, submission).

From the CPU per prediction follows the rate at which one primary's main thread is busy all
the time: the ceiling, quoted with the commands and bytes it implies.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import requests
from redis import Redis

from formats.kaggle_csv import write_kaggle_csv
from scripts.bench.report import load_average, median, write_section
from scripts.bench.service import test_pixels
from scripts.bench.stack import stack
from scripts.bench.throughput import write_bodies, wrk
from scripts.submit import submit
from store.connection import connect

REFERENCE_SETS = 200_000  # SETs per reference run
BUSY = 0.7  # share of the main thread to plan for: past it, latency grows with the queue


@dataclass(frozen=True)
class Counters:
    """Redis's counters at one moment."""

    at: float  # time.monotonic()
    calls: dict[str, int]  # command -> calls, inside MULTI/EXEC and Lua scripts too
    bytes_in: int
    bytes_out: int
    cpu: float  # seconds of the main thread, user + system

    @staticmethod
    def read(connection: Redis) -> Counters:
        """Read INFO commandstats, stats and cpu."""
        stats, cpu = connection.info("stats"), connection.info("cpu")
        calls = {
            name.removeprefix("cmdstat_"): int(entry["calls"])
            for name, entry in connection.info("commandstats").items()
        }
        return Counters(
            at=time.monotonic(),
            calls=calls,
            bytes_in=int(stats["total_net_input_bytes"]),
            bytes_out=int(stats["total_net_output_bytes"]),
            cpu=float(cpu["used_cpu_user_main_thread"]) + float(cpu["used_cpu_sys_main_thread"]),
        )


@dataclass(frozen=True)
class Cost:
    """Redis's work for one unit (a prediction or a CSV row), the idle service left out."""

    calls: dict[str, float]
    bytes_in: float
    bytes_out: float
    cpu_us: float

    @property
    def commands(self) -> float:
        """Every command, counted where it ran (in a transaction, in a script, or alone)."""
        return sum(self.calls.values())

    @staticmethod
    def between(before: Counters, after: Counters, idle: Cost | None, units: float) -> Cost:
        """The counters' growth per unit, minus the idle rate (per second) over the span."""
        seconds = after.at - before.at
        spare = idle or Cost({}, 0.0, 0.0, 0.0)

        def per_unit(grown: float, idle_rate: float) -> float:
            return max(0.0, grown - idle_rate * seconds) / units

        names = set(after.calls) | set(spare.calls)
        return Cost(
            calls={
                name: per_unit(
                    after.calls.get(name, 0) - before.calls.get(name, 0), spare.calls.get(name, 0)
                )
                for name in names
            },
            bytes_in=per_unit(after.bytes_in - before.bytes_in, spare.bytes_in),
            bytes_out=per_unit(after.bytes_out - before.bytes_out, spare.bytes_out),
            cpu_us=per_unit((after.cpu - before.cpu) * 1e6, spare.cpu_us),
        )


def register(subparsers: Any) -> None:
    """Add `digits bench redis`."""
    parser = subparsers.add_parser("redis", help="Redis commands, bytes and CPU per prediction")
    parser.add_argument("--runs", type=int, default=3, help="turns of the three loads (median)")
    parser.add_argument("--requests", type=int, default=500, help="sequential predictions")
    parser.add_argument("--duration", type=int, default=15, help="seconds of wrk per run")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--rows", type=int, default=10_000, help="rows in the CSV")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle baseline")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Measure, then write the `redis` section of BENCHMARKS.md."""
    costs: dict[str, list[Cost]] = {"reference": [], "sequential": [], "concurrent": [], "csv": []}
    with tempfile.TemporaryDirectory() as scratch, stack(args.workers) as service:
        work = Path(scratch)
        csv = work / "test.csv"
        write_kaggle_csv(csv, test_pixels(args.rows))
        bodies = write_bodies(work / "bodies.ndjson")
        connection = connect(service.redis_url)
        wrk(service.url, bodies, args.connections, 3)  # warm up: models loaded, pools filled
        time.sleep(2)  # let the warm-up's jobs settle before the idle baseline
        idle = measure(connection, None, lambda: idle_for(args.idle))  # per second
        loads: dict[str, Callable[[], float]] = {
            "reference": lambda: plain_sets(connection, args.connections),
            "sequential": lambda: sequential(service.url, args.requests),
            "concurrent": lambda: concurrent(service.url, bodies, args),
            "csv": lambda: submit(csv, work / "out.csv", service.url, progress=False)["rows"],
        }
        for _ in range(args.runs):
            for name, load in loads.items():
                costs[name].append(measure(connection, idle, load))
    write_section("redis", "Redis per prediction and per CSV row", table(args, idle, costs))
    return 0


def idle_for(seconds: float) -> float:
    """Do nothing for `seconds`; return them (the idle cost is per second)."""
    time.sleep(seconds)
    return seconds


def measure(connection: Redis, idle: Cost | None, load: Callable[[], float]) -> Cost:
    """Run `load` (it returns how many units it did) between two readings of the counters."""
    before = Counters.read(connection)
    units = load()
    return Cost.between(before, Counters.read(connection), idle, units)


def plain_sets(connection: Redis, clients: int) -> float:
    """The reference: `redis-benchmark` SETs from `clients` connections, no pipelining."""
    binary = shutil.which("redis-benchmark")
    if binary is None:
        raise SystemExit("redis-benchmark is not installed (Debian's redis-tools)")
    where = connection.connection_pool.connection_kwargs
    command = [binary, "-h", str(where["host"]), "-p", str(where["port"]), "-q", "-t", "set"]
    command += ["-n", str(REFERENCE_SETS), "-c", str(clients), "-P", "1"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return REFERENCE_SETS


def sequential(url: str, count: int) -> int:
    """Send `count` single-image sync predictions one after another; return `count`."""
    body = orjson.dumps({"pixels": test_pixels(1)[0].tolist()})
    headers = {"Content-Type": "application/json"}
    with requests.Session() as http:
        for _ in range(count):
            answer = http.post(f"{url}/v1/predict", data=body, headers=headers, timeout=10)
            if answer.status_code != 200:
                raise SystemExit(f"sync predict answered {answer.status_code}")
    return count


def concurrent(url: str, bodies: Path, args: argparse.Namespace) -> int:
    """Run wrk for `--duration` seconds; return the predictions answered."""
    report = wrk(url, bodies, args.connections, args.duration)
    return max(1, report["requests"] - report["not_ok"])


def table(args: argparse.Namespace, idle: Cost, costs: dict[str, list[Cost]]) -> str:
    """Format the medians, the busiest commands and the ceiling they imply."""
    labels = {
        "reference": f"reference: plain SET, `redis-benchmark -c {args.connections} -P 1`",
        "sequential": "single image, 1 client, sequential",
        "concurrent": f"single image, {args.connections} connections (micro-batched)",
        "csv": f"CSV row ({args.rows:,}-row upload via `digits submit`)",
    }
    lines = [
        f"`digits up --workers {args.workers}` on a private redis-server; Redis's counters "
        f"(INFO commandstats, stats, cpu) before and after each load, the idle service's rate "
        f"(measured {args.idle:g} s: {idle.commands:.0f} commands/s, "
        f"{idle.cpu_us / 1e3:.1f} ms CPU/s) subtracted. {args.runs} runs, medians. "
        f"Load average at the end: {load_average()} (the machine is shared).",
        "",
        "| per unit | Redis commands | of them EVALSHA | bytes in | bytes out "
        "| Redis main-thread CPU | as plain SETs | ceiling at 100% of one core | at 70% |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    cpu = {name: median([cost.cpu_us for cost in runs]) for name, runs in costs.items()}
    for name, runs in costs.items():
        commands = median([cost.commands for cost in runs])
        scripts = median([cost.calls.get("evalsha", 0.0) for cost in runs])
        lines.append(
            f"| {labels[name]} | {commands:.2f} | {scripts:.2f} "
            f"| {median([c.bytes_in for c in runs]):,.0f} "
            f"| {median([c.bytes_out for c in runs]):,.0f} | {cpu[name]:.1f} µs "
            f"| {cpu[name] / cpu['reference']:.2f} "
            f"| {1e6 / cpu[name]:,.0f}/s | {BUSY * 1e6 / cpu[name]:,.0f}/s |"
        )
    sets = cpu["concurrent"] / cpu["reference"]
    lines += [
        "",
        f"A micro-batched prediction costs Redis the CPU of {sets:.1f} plain SETs: where "
        f"`redis-benchmark -t set -c {args.connections}` does R SETs/s, one primary carries "
        f"about R / {sets:.1f} predictions/s with its main thread busy all the time.",
    ]
    lines += ["", "Commands per unit (median, the busiest first):", ""]
    for name, runs in costs.items():
        if name == "reference":
            continue
        names = sorted({n for cost in runs for n in cost.calls})
        per = {n: median([cost.calls.get(n, 0.0) for cost in runs]) for n in names}
        top = sorted(per.items(), key=lambda item: -item[1])[:8]
        shown = ", ".join(f"{n} {value:.2f}" for n, value in top if value >= 0.005)
        lines.append(f"- {labels[name]}: {shown}")
    return "\n".join(lines)
