"""`digits bench soak`: sustained load on a private copy of the service, then the verdict.

    digits bench soak [--minutes 5] [--clients 8] [--workers 2]
    python -m scripts.soak [--minutes 5] [--clients 8] [--workers 2]

Starts a private stack (its own redis-server and `digits up`, see `scripts.bench.stack`)
and keeps `--clients` threads busy for `--minutes` on loopback, each sending the mix of
work of `scripts.bench.mix` back to back. Every few seconds it samples the memory (RSS) of
the API and worker processes and of Redis.

The `soak` section of BENCHMARKS.md gets the answers counted by route and status and the
memory at the start and end of the run. The run passes when no answer was a 5xx (or a
failed connection) and API and worker memory stayed flat: the mean of the last third of
the samples within MAX_GROWTH of the first third's, warm-up excluded.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis import Redis

from scripts.bench.mix import TIMEOUT, Answers, Client
from scripts.bench.report import write_section
from store.connection import connect

if TYPE_CHECKING:  # psutil comes with the dev and bench extras, not with the service
    import psutil

    from scripts.bench.stack import Stack

SAMPLE_EVERY = 5.0  # seconds between memory samples
WARM_UP = 30.0  # seconds of samples left out of the memory verdict
MAX_GROWTH = 0.10  # memory may grow by this share, or by SLACK_MB, whichever is more
SLACK_MB = 8.0


def register(subparsers: Any) -> None:
    """Add `digits bench soak`."""
    parser = subparsers.add_parser("soak", help="sustained load: no 5xx, flat memory")
    _arguments(parser)
    parser.set_defaults(func=run)


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=5.0, help="how long to load the service")
    parser.add_argument("--clients", type=int, default=8, help="threads sending requests")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")


def run(args: argparse.Namespace, argv: list[str] | None = None) -> int:
    """Run the soak and write its section; 1 when it saw a 5xx, a lost request or growing memory."""
    from scripts.bench.stack import stack

    with stack(args.workers) as running:
        answers, samples = soak(running, args.minutes * 60, args.clients)
    verdict = Verdict.of(answers, samples)
    body = report(args, answers, samples, verdict)
    write_section("soak", "Soak: sustained load, answers and memory", body, argv)
    return 0 if verdict.passed else 1


def main() -> int:
    """Run `python -m scripts.soak`, the same as `digits bench soak`."""
    parser = argparse.ArgumentParser(prog="python -m scripts.soak", description=__doc__)
    _arguments(parser)
    return run(parser.parse_args(), ["soak", *sys.argv[1:]])


@dataclass
class Sample:
    """Memory at one moment: seconds into the run, RSS in MB by role, Redis's own memory."""

    at: float
    rss: dict[str, float]
    redis_mb: float
    redis_keys: int


def soak(running: Stack, seconds: float, clients: int) -> tuple[Answers, list[Sample]]:
    """Load the service for `seconds` with `clients` threads, sampling memory meanwhile."""
    answers = Answers()
    started = time.monotonic()
    until = started + seconds
    threads = [
        threading.Thread(target=Client(running.url, answers, seed).run, args=(until,))
        for seed in range(clients)
    ]
    for thread in threads:
        thread.start()
    samples = []
    redis = connect(running.redis_url)
    while time.monotonic() < until:
        samples.append(sample(running, redis, time.monotonic() - started))
        print(f"{samples[-1].at:6.0f} s  {answers.total():8d} answers  {samples[-1].rss}")
        time.sleep(min(SAMPLE_EVERY, max(0.0, until - time.monotonic())))
    for thread in threads:
        thread.join(timeout=TIMEOUT + 30)
    samples.append(sample(running, redis, time.monotonic() - started))
    return answers, samples


def sample(running: Stack, redis: Redis, at: float) -> Sample:
    """Measure the RSS of every API and worker process, and Redis's memory."""
    rss = {}
    for role, processes in running.processes().items():
        if role != "redis":
            rss[role] = sum(_rss(process) for process in processes) / 2**20
    memory = redis.info("memory")
    return Sample(at, rss, memory["used_memory"] / 2**20, int(redis.dbsize()))


def _rss(process: psutil.Process) -> int:
    import psutil

    try:
        return int(process.memory_info().rss)
    except psutil.Error:  # the process ended between listing and measuring
        return 0


@dataclass(frozen=True)
class Verdict:
    """Did the run pass: no 5xx, and flat API and worker memory."""

    server_errors: int
    growth_mb: dict[str, float]
    flat: dict[str, bool]

    @property
    def passed(self) -> bool:
        """True when there was no 5xx and every role's memory stayed flat."""
        return self.server_errors == 0 and all(self.flat.values())

    @classmethod
    def of(cls, answers: Answers, samples: list[Sample]) -> Verdict:
        """Judge a run from its answers and memory samples."""
        steady = [found for found in samples if found.at >= WARM_UP] or samples
        third = max(1, len(steady) // 3)
        growth, flat = {}, {}
        for role in steady[0].rss:
            first = statistics.fmean(found.rss[role] for found in steady[:third])
            last = statistics.fmean(found.rss[role] for found in steady[-third:])
            growth[role] = last - first
            flat[role] = last - first <= max(MAX_GROWTH * first, SLACK_MB)
        return cls(answers.server_errors(), growth, flat)


def report(
    args: argparse.Namespace, answers: Answers, samples: list[Sample], verdict: Verdict
) -> str:
    """Format the run as the markdown body of the `soak` section."""
    seconds = samples[-1].at
    lines = [
        f"{args.clients} clients, {args.workers} workers, {seconds / 60:.1f} minutes on loopback; "
        f"{answers.total():,} answers, {answers.total() / seconds:.0f} per second.",
        "",
        "| route | status | answers |",
        "| --- | --- | ---: |",
    ]
    for (route, status), count in sorted(answers.counts.items()):
        lines.append(f"| {route} | {status or 'no answer'} | {count:,} |")
    lines += [
        "",
        "| memory (MB) | after warm-up | end | growth | flat |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    steady = [found for found in samples if found.at >= WARM_UP] or samples
    for role, grown in verdict.growth_mb.items():
        lines.append(
            f"| {role} RSS | {steady[0].rss[role]:.1f} | {samples[-1].rss[role]:.1f} "
            f"| {grown:+.1f} | {'yes' if verdict.flat[role] else 'NO'} |"
        )
    lines.append(
        f"| Redis used_memory | {steady[0].redis_mb:.1f} | {samples[-1].redis_mb:.1f} "
        f"| {samples[-1].redis_mb - steady[0].redis_mb:+.1f} | (keys: {steady[0].redis_keys:,} "
        f"→ {samples[-1].redis_keys:,}; results are kept DIGITS_RESULT_TTL) |"
    )
    outcome = "PASS" if verdict.passed else "FAIL"
    lines += ["", f"**{outcome}**: {verdict.server_errors} answers were 5xx or no answer at all."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
