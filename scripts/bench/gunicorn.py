"""`digits bench gunicorn`: the API server's worker type, processes and threads, measured.

    digits bench gunicorn [--runs 5] [--duration 15] [--connections 32] [--workers 2]

The throughput load (`digits bench throughput`) against one private service per gunicorn
setting, all measured in turns. The shipped default is the row marked "(default)".
"""

from __future__ import annotations

import argparse
from typing import Any

from scripts.bench.report import write_section
from scripts.bench.stack import ROLES
from scripts.bench.throughput import Measured, add_load_options, measure, summary

# label -> settings of `digits api` (DIGITS_API_*), over the defaults.
SETTINGS = {
    "gthread, 1 process x 16 threads": {"PROCESSES": "1"},
    "gthread, 1 process x 32 threads": {"PROCESSES": "1", "THREADS": "32"},
    "gthread, 2 processes x 8 threads": {"THREADS": "8"},
    "gthread, 2 x 16 (default)": {},
    "gthread, 2 x 16, no keep-alive": {"KEEPALIVE": "0"},
    "gthread, 4 x 8": {"PROCESSES": "4", "THREADS": "8"},
    "gthread, 4 x 8, no keep-alive": {"PROCESSES": "4", "THREADS": "8", "KEEPALIVE": "0"},
    "sync, 8 processes": {"PROCESSES": "8", "WORKER_CLASS": "sync"},
}


def register(subparsers: Any) -> None:
    """Add `digits bench gunicorn`."""
    parser = subparsers.add_parser("gunicorn", help="API worker type, processes, threads")
    add_load_options(parser)
    parser.set_defaults(func=run, duration=15)


def run(args: argparse.Namespace) -> int:
    """Measure every setting and write the `gunicorn` section of BENCHMARKS.md."""
    variants = {
        label: {f"DIGITS_API_{name}": value for name, value in settings.items()}
        for label, settings in SETTINGS.items()
    }
    results = measure(variants, args).services
    write_section("gunicorn", "API server: gunicorn settings at 32 connections", table(results))
    return 0


def table(results: dict[str, Measured]) -> str:
    """One row per setting: medians, and the API's CPU per request."""
    lines = [
        "With keep-alive a client stays with the process that accepted it, and gthread "
        "processes race to accept: the 32 connections split 32/0, 31/1, 20/12 or 23/9 over "
        "two processes in four tries. Without keep-alive every request is accepted afresh, "
        "by whichever process is free. `sync` serves one request per process, so its "
        "requests never meet in a micro-batch.",
        "",
        "| gunicorn | predictions/s | p50 | p99 | errors | CPU ms per request: API / "
        "workers / Redis |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label, measured in results.items():
        medians = summary(measured.runs)
        cpu = " / ".join(f"{medians[role]:.2f}" for role in ROLES)
        lines.append(
            f"| {label} | {medians['rate']:,.0f} | {medians['p50']:.1f} ms | "
            f"{medians['p99']:.1f} ms | {medians['errors']:.0f} | {cpu} |"
        )
    return "\n".join(lines)
