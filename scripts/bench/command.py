"""`digits bench NAME`: run one benchmark and update its section of BENCHMARKS.md."""

from __future__ import annotations

import importlib
from typing import Any

# Each module defines `register(subparsers)` for its own `digits bench NAME`.
BENCH_MODULES = [
    "scripts.bench.model",
    "scripts.bench.training",
    "scripts.bench.service",
    "scripts.bench.throughput",
    "scripts.bench.peer",
    "scripts.bench.gunicorn",
    "scripts.bench.batch",
    "scripts.bench.csv_parse",
    "scripts.bench.served",
    "scripts.bench.scaling",
    "scripts.bench.memory",
    "scripts.bench.chunks",
    "scripts.bench.profile",
    "scripts.bench.uncertain",
    "scripts.bench.images",
    "scripts.bench.redis_load",
    "scripts.bench.stream",
    "scripts.bench.stream_soak",
    "scripts.bench.subscribers",
    "scripts.soak",
]


def register(subparsers: Any) -> None:
    """Add the `bench` subcommand and one sub-subcommand per benchmark."""
    parser = subparsers.add_parser("bench", help="run a benchmark, update BENCHMARKS.md")
    benches = parser.add_subparsers(dest="bench", required=True, metavar="NAME")
    for name in BENCH_MODULES:
        importlib.import_module(name).register(benches)
