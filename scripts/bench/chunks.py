"""`digits bench chunks`: the CSV chunk size (rows per batch job), chosen by measurement.

    digits bench chunks [--rows 28000] [--runs 5] [--workers 2]

One private service per DIGITS_CHUNK_ROWS value, each labelling the same Kaggle-sized
test.csv through `POST /v1/batches` -> finished -> submission.csv, in turns.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from config.settings import DEFAULTS
from scripts.bench.batch import add_csv_options, kaggle_test_csv
from scripts.bench.report import load_average, median, write_section
from scripts.bench.stack import stack
from scripts.submit import submit

CHUNK_ROWS = (250, 500, 1_000, 2_000, 4_000)


def register(subparsers: Any) -> None:
    """Add `digits bench chunks`."""
    parser = subparsers.add_parser("chunks", help="CSV time by rows per batch job")
    add_csv_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Measure every chunk size and write the `chunks` section of BENCHMARKS.md."""
    times: dict[int, list[float]] = {rows: [] for rows in CHUNK_ROWS}
    with tempfile.TemporaryDirectory() as scratch, ExitStack() as stacks:
        work = Path(scratch)
        csv = kaggle_test_csv(work / "test.csv", args.rows)
        services = {
            rows: stacks.enter_context(stack(args.workers, {"DIGITS_CHUNK_ROWS": str(rows)}))
            for rows in CHUNK_ROWS
        }
        for _ in range(args.runs):
            for rows, service in services.items():
                started = time.perf_counter()
                submit(csv, work / "out.csv", service.url, progress=False)
                times[rows].append(time.perf_counter() - started)
    write_section("chunks", "CSV chunk size: rows per batch job", table(args, times))
    return 0


def table(args: argparse.Namespace, times: dict[int, list[float]]) -> str:
    """One row per chunk size, the shipped default marked."""
    load = load_average()
    lines = [
        f"{args.rows:,}-row test.csv through `POST /v1/batches` -> finished -> "
        f"submission.csv, {args.runs} runs per size, in turns; `digits up --workers "
        f"{args.workers}`, model: cnn. Load average at the end: {load}.",
        "",
        "| rows per job | jobs | median | runs (s) |",
        "| --- | --- | --- | --- |",
    ]
    for rows, runs in times.items():
        shipped = " (default)" if rows == DEFAULTS["DIGITS_CHUNK_ROWS"] else ""
        listed = ", ".join(f"{value:.2f}" for value in runs)
        jobs = -(-args.rows // rows)
        lines.append(f"| {rows:,}{shipped} | {jobs} | {median(runs):.2f} s | {listed} |")
    return "\n".join(lines)
