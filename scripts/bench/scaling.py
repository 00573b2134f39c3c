"""`digits bench scaling`: CSV throughput with 1 worker vs 2 workers.

    digits bench scaling [--rows 28000] [--runs 5]

Two private services, one with one worker and one with two, each labelling the same
Kaggle-sized test.csv through `POST /v1/batches` -> finished -> submission.csv, in turns.
Two rates per run: end to end (upload, parse and download included, which no worker
speeds up) and the workers' own, rows over the batch's first-start-to-finish time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from scripts.bench.batch import add_csv_options, kaggle_test_csv
from scripts.bench.report import load_average, median, write_section
from scripts.bench.stack import stack
from scripts.submit import submit

WORKER_COUNTS = (1, 2)


def register(subparsers: Any) -> None:
    """Add `digits bench scaling`."""
    parser = subparsers.add_parser("scaling", help="CSV throughput: 1 vs 2 workers")
    add_csv_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Measure both services and write the `scaling` section of BENCHMARKS.md."""
    rates: dict[int, dict[str, list[float]]] = {
        workers: {"end_to_end": [], "workers": []} for workers in WORKER_COUNTS
    }
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        csv = kaggle_test_csv(work / "test.csv", args.rows)
        with stack(1) as one, stack(2) as two:
            for _ in range(args.runs):
                for workers, service in ((1, one), (2, two)):
                    end_to_end, workers_rate = timed_submit(csv, work / "out.csv", service.url)
                    rates[workers]["end_to_end"].append(end_to_end)
                    rates[workers]["workers"].append(workers_rate)
    write_section("scaling", "Scaling: CSV throughput, 1 vs 2 workers", table(args, rates))
    return 0


def timed_submit(csv: Path, out: Path, url: str) -> tuple[float, float]:
    """Label the CSV through the service; return (rows/s end to end, rows/s of the workers)."""
    started = time.perf_counter()
    batch = submit(csv, out, url, progress=False)
    elapsed = time.perf_counter() - started
    working = _seconds(batch["started_at"], batch["finished_at"])
    return batch["rows"] / elapsed, batch["rows"] / working


def _seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def table(args: argparse.Namespace, rates: dict[int, dict[str, list[float]]]) -> str:
    """Format rows/s per worker count and the speed-up of the second worker."""
    load = load_average()
    lines = [
        f"{args.rows:,}-row test.csv, {args.runs} runs per service, in turns; model: cnn, one "
        f"BLAS thread per worker. Load average at the end: {load} (the machine is shared; "
        "2 cores serve the API, Redis, the workers and the client).",
        "",
        "| workers | end to end, rows/s | workers only, rows/s | runs, end to end (rows/s) |",
        "| --- | --- | --- | --- |",
    ]
    for workers in WORKER_COUNTS:
        runs = ", ".join(f"{value:,.0f}" for value in rates[workers]["end_to_end"])
        lines.append(
            f"| {workers} | {median(rates[workers]['end_to_end']):,.0f} | "
            f"{median(rates[workers]['workers']):,.0f} | {runs} |"
        )
    one, two = (median(rates[workers]["workers"]) for workers in WORKER_COUNTS)
    whole = median(rates[2]["end_to_end"]) / median(rates[1]["end_to_end"])
    lines += ["", f"Second worker: {two / one:.2f}x the workers' rate, {whole:.2f}x end to end."]
    return "\n".join(lines)
