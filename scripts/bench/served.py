"""`digits bench served`: CSV batch throughput of a candidate model against the shipped CNN.

    digits bench served [--candidate model/weights/ensemble.npz] [--rows 10000] [--runs 3]

One `digits up --workers N` on a private redis-server has both models published; runs
alternate between them (`activate`, then the workers' hot reload) so both see the same
machine load, and each run is one whole `digits submit` of the same Kaggle-format CSV.
Throughput is rows per second of that call; the candidate's median is compared with the
CNN's (issue target: at least 0.3x).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from scripts.bench.batch import kaggle_test_csv
from scripts.bench.report import load_average, median, write_section
from scripts.bench.stack import SERVED_WEIGHTS, stack
from scripts.registry import publish_file
from scripts.submit import submit
from store import registry
from store.connection import connect

TARGET = 0.3  # candidate throughput, times the shipped CNN's


def register(subparsers: Any) -> None:
    """Add `digits bench served`."""
    parser = subparsers.add_parser("served", help="CSV throughput: a model vs the shipped CNN")
    parser.add_argument("--candidate", type=Path, default=Path("model/weights/ensemble.npz"))
    parser.add_argument("--rows", type=int, default=10_000, help="rows in the CSV")
    parser.add_argument("--runs", type=int, default=3, help="runs per model (median)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Measure both models in turns and write the `served` section of BENCHMARKS.md."""
    models = {"shipped CNN": SERVED_WEIGHTS, "candidate": args.candidate}
    seconds: dict[str, list[float]] = {name: [] for name in models}
    with tempfile.TemporaryDirectory() as scratch, stack(args.workers) as service:
        csv = kaggle_test_csv(Path(scratch) / "test.csv", args.rows)
        warm = kaggle_test_csv(Path(scratch) / "warm.csv", 100)
        connection = connect(service.redis_url)
        versions = {name: publish_file(connection, path) for name, path in models.items()}
        for _ in range(args.runs):
            for name, version in versions.items():
                registry.activate(connection, version)
                submit(warm, Path(scratch) / "warm-out.csv", service.url, progress=False)  # reload
                start = time.perf_counter()
                submit(csv, Path(scratch) / f"{name}.csv", service.url, progress=False)
                seconds[name].append(time.perf_counter() - start)
    write_section("served", "CSV throughput of the served model", table(args, seconds))
    return 0


def table(args: argparse.Namespace, seconds: dict[str, list[float]]) -> str:
    """Format rows per second per model and the candidate's ratio to the shipped CNN."""
    rate = {name: args.rows / median(times) for name, times in seconds.items()}
    ratio = rate["candidate"] / rate["shipped CNN"]
    lines = [
        f"`digits up --workers {args.workers}`, {args.rows:,}-row CSV through `digits submit`, "
        f"{args.runs} runs per model in turns. Candidate: `{args.candidate}`. "
        f"Load average at the end: {load_average()} (the machine is shared).",
        "",
        "| model | rows/s (median) | runs (s) |",
        "| --- | --- | --- |",
    ]
    for name, times in seconds.items():
        runs = ", ".join(f"{value:.2f}" for value in times)
        lines.append(f"| {name} | {rate[name]:,.0f} | {runs} |")
    verdict = "met" if ratio >= TARGET else "NOT met"
    lines += ["", f"Candidate / shipped CNN: **{ratio:.2f}x** (target ≥ {TARGET}x: {verdict})."]
    return "\n".join(lines)
