"""`digits bench profile`: where the time goes under the 32-connection load.

    digits bench profile [--duration 20] [--connections 32] [--workers 2]

Runs the throughput load against the shipped service and samples every API and worker
process with py-spy (the `bench` extra) meanwhile:

- API processes: only samples holding the GIL, i.e. Python CPU time, which is what one
  gunicorn process runs out of;
- workers (single-threaded): every sample of the main thread, i.e. wall time, so that the
  time a worker spends waiting for Redis replies shows next to its CPU work.

Each sample is charged to the first category, in CATEGORIES order, whose module is on its
stack, which splits the time into the service's own steps.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from scripts.bench.report import load_average, write_section
from scripts.bench.stack import stack
from scripts.bench.throughput import WARM_UP, add_load_options, write_bodies, wrk

RATE = 250  # samples per second and process
OWN_STEPS = ("parse", "group", "wait")  # the API categories that are the service's own work

# role -> (category, the stack text that marks it); the first match wins.
CATEGORIES: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "api": [
        ("parse and check the JSON body (api/payload.py)", ("api/payload.py",)),
        ("group and enqueue: join or RQ job (api/microbatch.py)", ("api/microbatch.py",)),
        ("wait for the answer: BLPOP (store/results.py)", ("store/results.py",)),
        ("access log, metrics, auth", ("api/access.py", "api/metrics.py", "api/auth.py")),
        ("view: other (api/)", ("(api/",)),
        ("Flask and werkzeug", ("flask/", "werkzeug/")),
        ("gunicorn: HTTP parsing, connections, threads", ("gunicorn/",)),
    ],
    "worker": [
        ("model forward pass (model/)", ("(model/",)),
        ("RQ: dequeue, waiting for a job", ("dequeue_job_and_maintain_ttl",)),
        ("waiting for Redis replies", ("_read_from_socket", "SocketBuffer.readline")),
        ("claim group, write answers (store/groups.py, results.py)", ("worker/jobs.py",)),
        ("job line and counters (store/jobstats.py)", ("store/jobstats.py",)),
        ("RQ: job bookkeeping (started, finished, registries)", ("rq/",)),
    ],
}


def register(subparsers: Any) -> None:
    """Add `digits bench profile`."""
    parser = subparsers.add_parser("profile", help="py-spy profile under the 32-connection load")
    add_load_options(parser)
    parser.set_defaults(func=run, duration=20, runs=1)


def run(args: argparse.Namespace) -> int:
    """Profile the service under load and write the `profile` section of BENCHMARKS.md."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).is_file():
        raise SystemExit("py-spy is not installed: pip install -e '.[bench]'")
    with tempfile.TemporaryDirectory() as scratch, stack(args.workers) as service:
        work = Path(scratch)
        bodies = write_bodies(work / "bodies.txt")
        wrk(service.url, bodies, args.connections, WARM_UP)
        processes = service.processes()
        targets = [
            (role, process.pid, work / f"{role}-{process.pid}.txt")
            for role in ("api", "worker")
            for process in processes[role]
            if not (role == "api" and process.children())  # the gunicorn master serves nothing
        ]
        load = threading.Thread(
            target=wrk, args=(service.url, bodies, args.connections, args.duration + 2)
        )
        load.start()
        spies = [
            subprocess.Popen(
                [spy, "record", "-p", str(pid), "-d", str(args.duration), "-r", str(RATE)]
                + ["-f", "raw", "-o", str(path), "--nonblocking"]
                + (["--gil"] if role == "api" else ["--idle"]),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for role, pid, path in targets
        ]
        for process in spies:
            process.wait()
        load.join()
        shares = {
            role: charge(role, [path for owner, _, path in targets if owner == role])
            for role in CATEGORIES
        }
    write_section("profile", "Profile: where the time goes at 32 connections", table(args, shares))
    return 0


def charge(role: str, paths: list[Path]) -> Counter[str]:
    """Sum the samples of `role`'s processes by category."""
    totals: Counter[str] = Counter()
    for path in paths:
        for line in path.read_text().splitlines():
            frames, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue  # py-spy's occasional empty sample
            if role == "worker" and "BaseWorker.work" not in frames:
                continue  # the worker's helper threads (heartbeats) are not on the job path
            totals[category(role, frames)] += int(count)
    return totals


def category(role: str, frames: str) -> str:
    """Return the first category whose marker is on the stack, else "other"."""
    for name, markers in CATEGORIES[role]:
        if any(marker in frames for marker in markers):
            return name
    return "other (interpreter, threads, idle polling)"


def table(args: argparse.Namespace, shares: dict[str, Counter[str]]) -> str:
    """One table per role: each category's share of the samples."""
    load = load_average()
    lines = [
        f"py-spy at {RATE} Hz for {args.duration} s on every process of `digits up --workers "
        f"{args.workers}` while `wrk -c{args.connections}` runs the throughput load "
        f"(`digits bench throughput`). Load average at the end: {load}.",
    ]
    titles = {
        "api": "API processes, Python CPU (samples holding the GIL)",
        "worker": "Workers, wall time of the job loop",
    }
    for role, title in titles.items():
        total = sum(shares[role].values()) or 1
        lines += ["", f"{title}:", "", "| where | share |", "| --- | --- |"]
        for name, count in shares[role].most_common():
            lines.append(f"| {name} | {count / total:.0%} |")
    return "\n".join([*lines, "", reading(shares)])


def reading(shares: dict[str, Counter[str]]) -> str:
    """Say what the two tables mean for the next gain, with this run's numbers."""
    api, worker = (_fractions(shares[role]) for role in ("api", "worker"))
    own = sum(share for name, share in api.items() if name.startswith(OWN_STEPS))
    http = sum(share for name, share in api.items() if name.startswith(("gunicorn", "Flask")))
    redis = worker.get("waiting for Redis replies", 0.0)
    forward = worker.get("model forward pass (model/)", 0.0)
    return (
        f"Reading it: in the API the service's own steps (parse, group and enqueue, wait) "
        f"take {own:.0%} of the Python CPU and HTTP handling (gunicorn, Flask, werkzeug) "
        f"{http:.0%}; the workers spend {redis:.0%} of their job loop waiting for Redis "
        f"replies (RQ's bookkeeping makes several round trips per job) and {forward:.0%} in "
        "the forward pass. Beyond what micro-batching already shares out, more predictions "
        "per core would take fewer queue round trips per job than RQ's protocol makes, or an "
        "HTTP server that does not hold a thread per waiting request; a faster model would "
        "change little."
    )


def _fractions(counts: Counter[str]) -> dict[str, float]:
    total = sum(counts.values()) or 1
    return {name: count / total for name, count in counts.items()}
