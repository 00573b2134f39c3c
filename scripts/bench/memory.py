"""`digits bench memory`: peak RSS of the API and the workers while a 28,000-row CSV runs.

    digits bench memory [--rows 28000] [--runs 5] [--workers 2]

A sampler thread reads the resident set size of every process of a private service
every SAMPLE_SECONDS while `POST /v1/batches` -> finished -> submission.csv runs. Workers
are reported one by one (the largest); the API as the sum of its gunicorn processes,
master included, and as its largest process.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scripts.bench.batch import add_csv_options, kaggle_test_csv
from scripts.bench.report import load_average, median, write_section
from scripts.bench.stack import Stack, stack
from scripts.submit import submit

if TYPE_CHECKING:
    import psutil

SAMPLE_SECONDS = 0.02
MIB = 2**20
TARGETS = {"worker": 300, "api_total": 400}  # MiB


def register(subparsers: Any) -> None:
    """Add `digits bench memory`."""
    parser = subparsers.add_parser("memory", help="peak RSS of API and workers during a CSV")
    add_csv_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Measure the peaks over the runs and write the `memory` section of BENCHMARKS.md."""
    peaks: dict[str, list[float]] = {"worker": [], "api_total": [], "api_process": []}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        csv = kaggle_test_csv(work / "test.csv", args.rows)
        with stack(args.workers) as service:
            idle = rss(service)
            for _ in range(args.runs):
                with sampled(service) as found:
                    submit(csv, work / "out.csv", service.url, progress=False)
                for name in peaks:
                    peaks[name].append(found[name] / MIB)
    write_section("memory", "Memory: peak RSS during the 28,000-row CSV", table(args, peaks, idle))
    return 0


def rss(service: Stack) -> dict[str, float]:
    """Return the current RSS (bytes): largest worker, API total, largest API process."""
    processes = service.processes()
    api = [_rss(process) for process in processes["api"]]
    workers = [_rss(process) for process in processes["worker"]]
    return {
        "worker": max(workers, default=0),
        "api_total": sum(api),
        "api_process": max(api, default=0),
    }


def _rss(process: psutil.Process) -> float:
    import psutil

    try:
        return float(process.memory_info().rss)
    except psutil.Error:
        return 0.0


@contextmanager
def sampled(service: Stack) -> Iterator[dict[str, float]]:
    """Sample RSS in a thread while the block runs; the dict holds the peaks when it ends."""
    peaks = rss(service)
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(SAMPLE_SECONDS):
            for name, value in rss(service).items():
                peaks[name] = max(peaks[name], value)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peaks
    finally:
        stop.set()
        sampler.join()


def table(args: argparse.Namespace, peaks: dict[str, list[float]], idle: dict[str, float]) -> str:
    """Format median peaks against the targets, with the idle sizes for scale."""
    load = load_average()
    lines = [
        f"{args.rows:,}-row test.csv, {args.runs} runs; RSS sampled every "
        f"{SAMPLE_SECONDS * 1000:.0f} ms. Service: `digits up --workers {args.workers}`, "
        f"model: cnn. Load average at the end: {load}.",
        "",
        "| process | idle | peak (median of runs) | target | runs (MiB) |",
        "| --- | --- | --- | --- | --- |",
    ]
    labels = {
        "worker": "worker (largest)",
        "api_total": "API: all gunicorn processes",
        "api_process": "API: largest gunicorn process",
    }
    for name, label in labels.items():
        peak = median(peaks[name])
        target = TARGETS.get(name)
        verdict = (
            "-" if target is None else f"<= {target} MiB {'met' if peak <= target else 'MISSED'}"
        )
        runs = ", ".join(f"{value:.0f}" for value in peaks[name])
        lines.append(
            f"| {label} | {idle[name] / MIB:.0f} MiB | {peak:.0f} MiB | {verdict} | {runs} |"
        )
    return "\n".join(lines)
