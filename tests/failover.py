"""A replicated Redis on loopback for failover tests: a primary, a replica and three sentinels."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from processes import RedisServer, free_port, redis_server_binary, stop, wait_for
from redis import Redis
from redis.exceptions import RedisError

from store import codec

MASTER_NAME = "digits"
QUORUM = 2  # sentinels that must agree the primary is down: a majority of three
DOWN_AFTER_MS = 1000  # silence after which a sentinel holds the primary down (default 30,000)
FAILOVER_TIMEOUT_MS = 10_000  # Sentinel's pace for retrying a failover (default 180,000)


def sentinel_command(config: Path) -> list[str]:
    """Debian's `redis-sentinel` (`bash .ci/run` installs it), else redis-server in that mode."""
    found = shutil.which("redis-sentinel")
    return [found, str(config)] if found else [redis_server_binary(), str(config), "--sentinel"]


class SentinelGroup:
    """A primary, its replica and three sentinels watching it, each in its own directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.primary = RedisServer(self._directory("primary"))
        self.replica = RedisServer(
            self._directory("replica"), options=["--replicaof", "127.0.0.1", str(self.primary.port)]
        )
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """The service's REDIS_URL: every sentinel, the primary's name, database 0."""
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{MASTER_NAME}/0"

    def _directory(self, name: str) -> Path:
        path = self.directory / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def start(self) -> None:
        """Start the servers and the sentinels; return once each sentinel sees the whole group."""
        self.primary.start()
        self.replica.start()
        for port in self.sentinel_ports:
            directory = self._directory(f"sentinel-{port}")
            config = directory / "sentinel.conf"  # Sentinel rewrites its file: one each
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
                f"logfile {directory / 'sentinel.log'}\n"
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.primary.port} {QUORUM}\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n"
            )
            self.sentinels.append(
                subprocess.Popen(sentinel_command(config), stdout=subprocess.DEVNULL)
            )
        wait_for(
            self.watching, 30, "three sentinels that see the primary, its replica and each other"
        )

    def watching(self) -> bool:
        """Say whether the replica is in sync and each sentinel knows the replica and the others."""
        try:
            replica = Redis(port=self.replica.port).info("replication")
            if replica.get("master_link_status") != "up":
                return False
            for port in self.sentinel_ports:
                state = Redis(port=port).sentinel_master(MASTER_NAME)
                if state["num-slaves"] != 1 or state["num-other-sentinels"] != 2:
                    return False
            return True
        except RedisError:
            return False

    def primary_port(self) -> int:
        """Return the port the sentinels now name as the primary's."""
        for port in self.sentinel_ports:
            try:
                address = Redis(port=port).execute_command(
                    "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME
                )
                return int(codec.text(address[1]))
            except RedisError:
                continue
        raise AssertionError("no sentinel answered")

    def stop(self) -> None:
        """Stop the sentinels first (no failover during shutdown), then the servers."""
        stop(self.sentinels)
        self.replica.stop()
        self.primary.stop()
