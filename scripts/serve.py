"""`digits api`, `digits worker`: run one of the service's processes (`digits up` runs all)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from redis import Redis
from redis.exceptions import RedisError

from scripts import metrics_dir
from scripts.registry import DEFAULT_REDIS_URL
from store import eviction, logs
from store.connection import connect

# `digits api --worker-class NAME` -> gunicorn worker class (scripts/gunicorn_workers.py)
API_WORKER_CLASSES = {
    name: f"scripts.gunicorn_workers.Json{kind}Worker"
    for name, kind in (("gevent", "Gevent"), ("gthread", "Thread"), ("sync", "Sync"))
}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `api` and `worker` subcommands."""
    api = subparsers.add_parser("api", help="serve the HTTP API with gunicorn")
    bind_options(api)
    api.add_argument(
        "--processes",
        type=int,
        default=int(os.environ.get("DIGITS_API_PROCESSES", "2")),
        help="gunicorn worker processes (default: $DIGITS_API_PROCESSES or %(default)s)",
    )
    api.add_argument(
        "--threads",
        type=int,
        default=int(os.environ.get("DIGITS_API_THREADS", "16")),
        help="threads per process; each waiting request holds one (default: %(default)s)",
    )
    api.add_argument(
        "--keep-alive",
        type=int,
        default=int(os.environ.get("DIGITS_API_KEEPALIVE", "2")),
        help="seconds an idle connection is kept open; 0 closes each after its answer, which "
        "spreads busy clients over the processes (default: %(default)s)",
    )
    api.add_argument(
        "--worker-class",
        choices=sorted(API_WORKER_CLASSES),
        default=os.environ.get("DIGITS_API_WORKER_CLASS", "gevent"),
        help="gunicorn worker type: gevent holds slow clients cheaply, gthread uses --threads, "
        "sync serves one request per process (default: %(default)s)",
    )
    eviction_option(api)
    api.set_defaults(func=api_command)

    worker = subparsers.add_parser("worker", help="run an RQ worker (no fork, model preloaded)")
    worker.add_argument("--burst", action="store_true", help="quit when the queues are empty")
    worker.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL", DEFAULT_REDIS_URL),
        help="Redis to use (default: $REDIS_URL or %(default)s)",
    )
    worker.add_argument("--log-level", default=os.environ.get("DIGITS_LOG_LEVEL", "INFO"))
    worker.add_argument(
        "--blas-threads",
        type=int,
        default=int(os.environ.get("DIGITS_BLAS_THREADS", "1")),
        help="BLAS threads in this worker; run one worker per core instead (default: 1)",
    )
    eviction_option(worker)
    worker.set_defaults(func=worker_command)


def eviction_option(parser: argparse.ArgumentParser) -> None:
    """Add --allow-eviction (`digits api`, `worker` and `up`)."""
    parser.add_argument(
        "--allow-eviction",
        action="store_true",
        default=os.environ.get(eviction.OVERRIDE, "") not in ("", "0"),
        help="start even when Redis's maxmemory-policy is not noeviction: queued work and "
        f"results may then vanish (default: ${eviction.OVERRIDE})",
    )


def refuse_eviction(connection: Redis, allow: bool) -> bool:
    """Check Redis's eviction policy at start: False (and a message) when it must not run.

    A Redis that does not answer yet is not refused: the process waits for it.
    """
    try:
        eviction.check(connection, allow)
    except eviction.EvictionError as error:
        print(f"digits: refusing to start: {error}", file=sys.stderr)
        return True
    except RedisError:
        pass
    return False


def bind_options(parser: argparse.ArgumentParser) -> None:
    """Add --host and --port (`digits api` and `up`)."""
    parser.add_argument("--host", default=os.environ.get("DIGITS_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))


def api_command(args: argparse.Namespace) -> int:
    """Replace this process with gunicorn serving `api.create_app()`."""
    url = os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)
    if refuse_eviction(connect(url, socket_connect_timeout=2), args.allow_eviction):
        return 1
    if args.allow_eviction:
        os.environ[eviction.OVERRIDE] = "1"  # /readyz then reports the policy, not a problem
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"{args.host}:{args.port}",
        "--workers",
        str(args.processes),
        "--worker-class",
        API_WORKER_CLASSES[args.worker_class],
        "--threads",
        str(args.threads if args.worker_class == "gthread" else 1),
        "--keep-alive",
        str(args.keep_alive),
        "--graceful-timeout",
        "10",
        "--logger-class",
        "scripts.gunicorn_logging.JsonLogger",
        "api:create_app()",
    ]
    metrics_dir.prepare(os.environ)  # before exec: gunicorn's processes inherit it
    # A 28,000-row upload is a ~50 MB body and ~22 MB of pixels. By default glibc raises its
    # mmap threshold when such a block is freed and keeps later ones in one heap per thread:
    # the API kept ~140 MB more after a few uploads and peaked over 400 MB (measured). Blocks
    # of 4 MiB and more mapped (freed for good), and two heaps for all threads: it stays at
    # its idle size, peaks ~290 MB. (A 128 KiB threshold also held it, but cost 0.5 s per
    # upload in page faults.)
    os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", str(4 << 20))
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    os.execv(sys.executable, command)


def worker_command(args: argparse.Namespace) -> int:
    """Run one worker until SIGTERM (or until the queues are empty with --burst)."""
    from worker import runner  # imports the network: only worker processes need it

    logs.configure(args.log_level)
    logging.getLogger("worker").info("worker on Redis %s", logs.mask(args.redis_url))
    connection = connect(args.redis_url)
    if refuse_eviction(connection, args.allow_eviction):
        return 1
    runner.run(
        connection,
        burst=args.burst,
        # RQ logs three lines per job; the JSON job line (store/jobstats.py) replaces them.
        logging_level="DEBUG" if args.log_level.upper() == "DEBUG" else "WARNING",
        blas_threads=args.blas_threads,
    )
    return 0
