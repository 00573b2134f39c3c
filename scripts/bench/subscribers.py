"""`digits bench subscribers`: the API with and without idle stream followers connected.

    digits bench subscribers [--followers 200] [--runs 3] [--duration 10]

One private service (`digits up --workers 2`, the API as shipped). In turns, with no
follower and with `--followers` idle ones (each a connection on `GET /v1/streams/idle/out`,
a stream nobody writes to), it measures the single-client sync predict latency (300
sequential requests) and the 32-connection throughput (`wrk`). Target: both within 10%.
"""

from __future__ import annotations

import argparse
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import requests

from scripts.bench.report import load_average, median, write_section
from scripts.bench.service import measure_latency
from scripts.bench.stack import stack
from scripts.bench.throughput import write_bodies, wrk

TARGET = 0.10  # largest slowdown allowed with the followers connected
CONNECTIONS = 32


def register(subparsers: Any) -> None:
    """Add `digits bench subscribers`."""
    parser = subparsers.add_parser("subscribers", help="API with vs without idle followers")
    parser.add_argument("--followers", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds of wrk per run")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Measure in turns and write the `subscribers` section of BENCHMARKS.md."""
    found: dict[int, dict[str, list[float]]] = {
        n: {"p50": [], "rate": []} for n in (0, args.followers)
    }
    with tempfile.TemporaryDirectory() as scratch, stack(2) as service:
        bodies = write_bodies(Path(scratch) / "bodies.ndjson")
        requests.post(f"{service.url}/v1/streams/idle", timeout=10).raise_for_status()
        for _ in range(args.runs):
            for followers in (0, args.followers):
                with idle_followers(service.url, followers) as held:
                    (latencies,) = measure_latency(service.url, 1, 300)
                    report = wrk(service.url, bodies, CONNECTIONS, args.duration)
                    assert all(_open(sock) for sock in held), "a follower was dropped"
                found[followers]["p50"].append(float(np.percentile(latencies, 50)))
                answered = report["requests"] - report["not_ok"]
                found[followers]["rate"].append(answered / (report["duration_us"] / 1e6))
    write_section("subscribers", "Idle stream followers vs the API", table(args, found))
    return 0


@contextmanager
def idle_followers(url: str, count: int) -> Iterator[list[socket.socket]]:
    """Hold `count` connections following an idle stream (headers read, body pending)."""
    host, port = url.removeprefix("http://").split(":")
    held = []
    try:
        for _ in range(count):
            sock = socket.create_connection((host, int(port)), timeout=10)
            request = f"GET /v1/streams/idle/out?wait=3600 HTTP/1.1\r\nHost: {host}\r\n\r\n"
            sock.sendall(request.encode())
            head = sock.recv(4096)
            if not head.startswith(b"HTTP/1.1 200"):
                raise SystemExit(f"a follower was not answered 200: {head[:300]!r}")
            held.append(sock)
        yield held
    finally:
        for sock in held:
            sock.close()


def _open(sock: socket.socket) -> bool:
    """Say whether the server still holds the connection (no EOF waiting on it)."""
    sock.setblocking(False)
    try:
        return sock.recv(4096, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    finally:
        sock.setblocking(True)


def table(args: argparse.Namespace, found: dict[int, dict[str, list[float]]]) -> str:
    """Format medians with and without followers, and the verdict."""
    quiet, busy = found[0], found[args.followers]
    latency = median(busy["p50"]) / median(quiet["p50"]) - 1
    rate = 1 - median(busy["rate"]) / median(quiet["rate"])
    met = latency <= TARGET and rate <= TARGET
    lines = [
        f"`digits up --workers 2` (API as shipped), {args.runs} runs per state, in turns; "
        f"followers: idle `GET /v1/streams/idle/out` connections. Load average at the end: "
        f"{load_average()} (the machine is shared).",
        "",
        "| followers | predict p50, 1 client | predictions/s, 32 connections | runs (ms / per s) |",
        "| --- | --- | --- | --- |",
    ]
    for followers, values in ((0, quiet), (args.followers, busy)):
        runs = "; ".join(
            f"{p:.1f} / {r:,.0f}" for p, r in zip(values["p50"], values["rate"], strict=True)
        )
        p50, rate_per_s = median(values["p50"]), median(values["rate"])
        lines.append(f"| {followers} | {p50:.2f} ms | {rate_per_s:,.0f} | {runs} |")
    lines += [
        "",
        f"With {args.followers} followers: p50 {latency:+.1%}, throughput {-rate:+.1%} "
        f"(target: within {TARGET:.0%}: {'met' if met else 'MISSED'}).",
    ]
    return "\n".join(lines)
