"""`digits api`, `digits worker`: run one of the service's processes (`digits up` runs all).

Their flags default to the settings (`config.settings`: defaults, then the environment) and
override them.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from redis import Redis
from redis.exceptions import RedisError

from config import settings
from config.settings import Settings
from scripts import metrics_dir
from store import eviction, logs
from store.connection import connect

# `digits api --worker-class NAME` -> gunicorn worker class (scripts/gunicorn_workers.py)
API_WORKER_CLASSES = {
    name: f"scripts.gunicorn_workers.Json{kind}Worker"
    for name, kind in (("gevent", "Gevent"), ("gthread", "Thread"), ("sync", "Sync"))
}
# Each command's flags (argparse names) and the settings they override.
API_FLAGS = {
    "host": "DIGITS_HOST",
    "port": "PORT",
    "processes": "DIGITS_API_PROCESSES",
    "threads": "DIGITS_API_THREADS",
    "keep_alive": "DIGITS_API_KEEPALIVE",
    "worker_class": "DIGITS_API_WORKER_CLASS",
    "allow_eviction": "DIGITS_ALLOW_EVICTION",
}
WORKER_FLAGS = {
    "redis_url": "REDIS_URL",
    "log_level": "DIGITS_LOG_LEVEL",
    "blas_threads": "DIGITS_BLAS_THREADS",
    "allow_eviction": "DIGITS_ALLOW_EVICTION",
}


# A 28,000-row upload is a ~50 MB body and ~22 MB of pixels. By default glibc raises its mmap
# threshold when such a block is freed and keeps later ones in one heap per thread: the API
# kept ~140 MB more after a few uploads and peaked over 400 MB (measured). Blocks of 4 MiB and
# more mapped (freed for good), and two heaps for all threads: it stays at its idle size,
# peaks ~290 MB. (A 128 KiB threshold also held it, but cost 0.5 s per upload in page faults.)
# gunicorn runs with these unless the environment sets them.
ALLOCATOR = {"MALLOC_MMAP_THRESHOLD_": str(4 << 20), "MALLOC_ARENA_MAX": "2"}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `api` and `worker` subcommands."""
    loaded = settings.load()
    api = subparsers.add_parser("api", help="serve the HTTP API with gunicorn")
    bind_options(api, loaded)
    api.add_argument(
        "--processes",
        type=int,
        default=loaded["DIGITS_API_PROCESSES"],
        help="gunicorn worker processes (default: $DIGITS_API_PROCESSES or %(default)s)",
    )
    api.add_argument(
        "--threads",
        type=int,
        default=loaded["DIGITS_API_THREADS"],
        help="threads per process; each waiting request holds one (default: %(default)s)",
    )
    api.add_argument(
        "--keep-alive",
        type=int,
        default=loaded["DIGITS_API_KEEPALIVE"],
        help="seconds an idle connection is kept open; 0 closes each after its answer, which "
        "spreads busy clients over the processes (default: %(default)s)",
    )
    api.add_argument(
        "--worker-class",
        choices=sorted(API_WORKER_CLASSES),
        default=loaded["DIGITS_API_WORKER_CLASS"],
        help="gunicorn worker type: gevent holds slow clients cheaply, gthread uses --threads, "
        "sync serves one request per process (default: %(default)s)",
    )
    eviction_option(api, loaded)
    api.set_defaults(func=api_command)

    worker = subparsers.add_parser("worker", help="run an RQ worker (no fork, model preloaded)")
    worker.add_argument("--burst", action="store_true", help="quit when the queues are empty")
    redis_option(worker, loaded)
    worker.add_argument("--log-level", default=loaded["DIGITS_LOG_LEVEL"])
    worker.add_argument(
        "--blas-threads",
        type=int,
        default=loaded["DIGITS_BLAS_THREADS"],
        help="BLAS threads in this worker; run one worker per core instead (default: %(default)s)",
    )
    eviction_option(worker, loaded)
    worker.set_defaults(func=worker_command)


def configured(args: argparse.Namespace, flags: dict[str, str]) -> Settings:
    """Return the settings, a command's `flags` (argparse name: setting) overriding them."""
    return settings.load({name: getattr(args, flag) for flag, name in flags.items()})


def redis_option(parser: argparse.ArgumentParser, loaded: Settings) -> None:
    """Add --redis-url (`digits worker`, `publish`, `models`, `activate`)."""
    parser.add_argument(
        "--redis-url",
        default=loaded["REDIS_URL"],
        help="Redis to use (default: $REDIS_URL or %(default)s)",
    )


def eviction_option(parser: argparse.ArgumentParser, loaded: Settings) -> None:
    """Add --allow-eviction (`digits api`, `worker` and `up`)."""
    parser.add_argument(
        "--allow-eviction",
        action="store_true",
        default=loaded["DIGITS_ALLOW_EVICTION"],
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


def bind_options(parser: argparse.ArgumentParser, loaded: Settings) -> None:
    """Add --host and --port (`digits api` and `up`)."""
    parser.add_argument("--host", default=loaded["DIGITS_HOST"])
    parser.add_argument("--port", type=int, default=loaded["PORT"])


def api_command(args: argparse.Namespace) -> int:
    """Replace this process with gunicorn serving `api.create_app()`."""
    config = configured(args, API_FLAGS)
    allow = config["DIGITS_ALLOW_EVICTION"]
    if refuse_eviction(connect(config["REDIS_URL"], socket_connect_timeout=2), allow):
        return 1
    if allow:
        os.environ[eviction.OVERRIDE] = "1"  # /readyz then reports the policy, not a problem
    metrics_dir.prepare(os.environ)  # before exec: gunicorn's processes inherit it
    for name, value in ALLOCATOR.items():
        os.environ.setdefault(name, value)
    os.execv(sys.executable, gunicorn_command(config, "api:create_app()"))


def gunicorn_command(config: Settings, app: str) -> list[str]:
    """Return the command that serves `app` (gunicorn's "module:callable") as `digits api` does.

    `config` gives the server's settings: DIGITS_HOST, PORT and the DIGITS_API_* ones.
    """
    worker_class = config["DIGITS_API_WORKER_CLASS"]
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"{config['DIGITS_HOST']}:{config['PORT']}",
        "--workers",
        str(config["DIGITS_API_PROCESSES"]),
        "--worker-class",
        API_WORKER_CLASSES[worker_class],
        "--threads",
        str(config["DIGITS_API_THREADS"] if worker_class == "gthread" else 1),
        "--keep-alive",
        str(config["DIGITS_API_KEEPALIVE"]),
        "--graceful-timeout",
        "10",
        "--logger-class",
        "scripts.gunicorn_logging.JsonLogger",
        app,
    ]


def worker_command(args: argparse.Namespace) -> int:
    """Run one worker until SIGTERM (or until the queues are empty with --burst)."""
    from worker import runner  # imports the network: only worker processes need it

    config = configured(args, WORKER_FLAGS)
    logs.configure(config["DIGITS_LOG_LEVEL"])
    logging.getLogger("worker").info("worker on Redis %s", logs.mask(config["REDIS_URL"]))
    connection = connect(config["REDIS_URL"])
    if refuse_eviction(connection, config["DIGITS_ALLOW_EVICTION"]):
        return 1
    runner.run(connection, config, burst=args.burst)
    return 0
