"""`digits up`'s supervisor: restart a child that exits, replace a worker that went silent.

Each child (the API's gunicorn master, each worker) runs in its own process group. A child
that exits is started again after a back-off (0.5 s, doubling, at most BACKOFF_MAX); a worker
process that is alive to the OS but has not beaten in Redis for DEAD_AFTER (stopped with
SIGSTOP, hung, its Redis connection wedged) is killed with SIGKILL and replaced. Past
MAX_RESTARTS restarts of one role within RESTART_WINDOW seconds the supervisor stops
restarting that role and says why: for the API it stops the service, since nothing is
served; for workers the API stays up (predict answers 503 `no_worker`, queued work waits).

Why not RQ's `WorkerPool`: it forks its workers from one parent, so `worker.runner`'s own
process loop (preload, reconnect to a lost Redis, the heartbeat thread) would have to be
rebuilt on its internals, and it judges a worker alive by its PID alone: a stopped worker
looks healthy to it. Gunicorn respawns its own request processes; this restarts its master.
Every restart is a JSON log line and a count in Redis (store.restarts), read by /metrics.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from redis import Redis
from redis.exceptions import RedisError
from rq import Worker

from store import keys, liveness, logs, restarts

MAX_RESTARTS = 5  # restarts of one role within RESTART_WINDOW before giving up on it
RESTART_WINDOW = 60.0  # seconds
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 8.0  # seconds before a restart: doubles per recent restart
# Judge beats only after Redis has answered without a break for this long: after a Redis
# restart a worker needs up to 5 s to reconnect (worker.recovery) and a moment to beat again.
TRUST_REDIS_AFTER = liveness.DEAD_AFTER + 10.0

log = logging.getLogger("digits.supervisor")


@dataclass
class Child:
    """One supervised process slot: what to run, and the process running it now."""

    role: str  # "api" or "worker"
    command: Sequence[str]
    process: subprocess.Popen[bytes] | None = None
    due: float | None = None  # monotonic time a restart is due, while waiting to restart


@dataclass
class Supervisor:
    """Start the children and keep them running; `check` once or twice a second."""

    children: list[Child]
    env: Mapping[str, str]
    connection: Redis
    restarted: dict[str, deque[float]] = field(default_factory=dict)
    given_up: set[str] = field(default_factory=set)
    _redis_since: float | None = None  # monotonic time since Redis answers without a break

    def start(self) -> None:
        """Start every child, each in its own process group (Ctrl-C reaches `up` only)."""
        for child in self.children:
            self._spawn(child)

    def processes(self) -> list[subprocess.Popen[bytes]]:
        """The children's current processes."""
        return [child.process for child in self.children if child.process is not None]

    def check(self) -> str | None:
        """Restart what exited or went silent; return why the service must stop, if it must."""
        for child in self.children:
            if child.process is not None and child.process.poll() is not None:
                code = child.process.returncode
                self._schedule(child, f"exited with code {code}", code)
        for child in self._silent_workers():
            assert child.process is not None
            child.process.kill()
            child.process.wait()
            self._schedule(child, f"alive but no heartbeat for {liveness.DEAD_AFTER:g} s", None)
        now = time.monotonic()
        for child in self.children:
            if child.due is not None and child.due <= now and child.role not in self.given_up:
                self._spawn(child)
        if "api" in self.given_up:
            return f"the API keeps exiting ({MAX_RESTARTS} restarts in {RESTART_WINDOW:g} s)"
        return None

    def stop(self, timeout: float) -> None:
        """SIGTERM every child still running, then SIGKILL those that outlive `timeout`."""
        processes = self.processes()
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGCONT)  # a stopped child cannot exit
                process.terminate()
        deadline = time.monotonic() + timeout
        for process in processes:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _spawn(self, child: Child) -> None:
        child.process = subprocess.Popen(child.command, env=dict(self.env), process_group=0)
        child.due = None

    def _schedule(self, child: Child, reason: str, exit_code: int | None) -> None:
        """Plan the restart of a child whose process ended, after its back-off."""
        pid = child.process.pid if child.process is not None else None
        child.process = None
        now = time.monotonic()
        recent = self.restarted.setdefault(child.role, deque())
        while recent and recent[0] < now - RESTART_WINDOW:
            recent.popleft()
        if len(recent) >= MAX_RESTARTS:
            self._give_up(child, reason)
            return
        recent.append(now)
        delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (len(recent) - 1))
        child.due = now + delay
        logs.event(
            log,
            f"{child.role} process {pid} {reason}: restarting it in {delay:g} s",
            event="restart",
            role=child.role,
            pid=pid,
            reason=reason,
            exit_code=exit_code,
            delay_s=delay,
            recent_restarts=len(recent),
        )
        try:
            restarts.count(self.connection, child.role)
        except RedisError as error:
            log.warning("could not count the restart in Redis: %s", error)

    def _give_up(self, child: Child, reason: str) -> None:
        if child.role in self.given_up:
            return
        self.given_up.add(child.role)
        what = "stopping the service" if child.role == "api" else "the API stays up without it"
        log.error(
            "%s process %s; it was restarted %d times in the last %g s: not restarting it "
            "again, %s. Its own log lines above say why it exits.",
            child.role,
            reason,
            MAX_RESTARTS,
            RESTART_WINDOW,
            what,
        )

    def _silent_workers(self) -> list[Child]:
        """Return the worker children that run but have not beaten for DEAD_AFTER seconds."""
        running = {
            child.process.pid: child
            for child in self.children
            if child.role == "worker" and child.process is not None
        }
        try:
            beats = self._beats_by_pid()
        except RedisError:
            self._redis_since = None
            return []
        now = time.monotonic()
        self._redis_since = self._redis_since or now
        if now - self._redis_since < TRUST_REDIS_AFTER:
            return []
        return [running[pid] for pid, fresh in beats.items() if pid in running and not fresh]

    def _beats_by_pid(self) -> dict[int, bool]:
        """Map each PID of a worker of this host to whether any of its names beats in time."""
        hostname = socket.gethostname()
        workers = [w for w in Worker.all(connection=self.connection) if w.hostname == hostname]
        if not workers:
            return {}
        seconds, microseconds = self.connection.time()
        cutoff = seconds + microseconds / 1e6 - liveness.DEAD_AFTER
        beats = self.connection.zmscore(keys.WORKER_BEATS, [w.name for w in workers])
        fresh: dict[int, bool] = {}
        for worker, beat in zip(workers, beats, strict=True):
            if worker.pid is not None and beat is not None:  # None: not beating yet
                fresh[worker.pid] = fresh.get(worker.pid, False) or beat > cutoff
        return fresh
