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
from scripts.bench.throughput import Load, add_load_options, measure, summary

# label -> settings of `digits api` (DIGITS_API_*); connections 0 means "as many as threads".
SETTINGS = {
    "gthread, 1 process x 16 threads": {"PROCESSES": "1", "THREADS": "16"},
    "gthread, 1 process x 32 threads": {"PROCESSES": "1", "THREADS": "32"},
    "gthread, 2 processes x 8 threads": {"PROCESSES": "2", "THREADS": "8"},
    "gthread, 2 x 16, connections not capped": {
        "PROCESSES": "2",
        "THREADS": "16",
        "CONNECTIONS": "1000",
    },
    "gthread, 2 x 16, 16 connections per process (default)": {},
    "gthread, 4 x 8, 8 connections per process": {"PROCESSES": "4", "THREADS": "8"},
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
    results = measure(variants, args)
    write_section("gunicorn", "API server: gunicorn settings at 32 connections", table(results))
    return 0


def table(results: dict[str, list[Load]]) -> str:
    """One row per setting: medians, and the API's CPU per request."""
    lines = [
        "Why the connection cap: gthread processes race to accept, and the first one awake "
        "takes every connection of a burst (measured: 32 of 32), leaving the other "
        "processes idle; a process that holds as many connections as it has threads leaves "
        "the rest to the others. `sync` serves one request per process, so its requests "
        "never meet in a micro-batch.",
        "",
        "| gunicorn | predictions/s | p50 | p99 | errors | CPU ms per request: API / "
        "workers / Redis |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label, runs in results.items():
        medians = summary(runs)
        cpu = " / ".join(f"{medians[role]:.2f}" for role in ROLES)
        lines.append(
            f"| {label} | {medians['rate']:,.0f} | {medians['p50']:.1f} ms | "
            f"{medians['p99']:.1f} ms | {medians['errors']:.0f} | {cpu} |"
        )
    return "\n".join(lines)
