"""Test hosts on a private network: one network namespace per host, a bridge between them.

Every namespace is the test's own (named after the test process), the bridge lives in a
namespace of its own too, so nothing is added to the machine's network and the private
addresses exist only inside. A host is cut off by taking its cable (the bridge's end of its
veth pair) down, as a failed switch port or a pulled cable would: its TCP connections hang
instead of being reset.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

SUBNET = "10.77.0"  # /24, inside the test's namespaces only
CLONE_NEWNET = 0x40000000  # setns(2): join a network namespace


def unavailable() -> str | None:
    """Say why namespaces cannot be made here, or None when they can (root with iproute2)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is missing"
    return None


def ip(*args: str) -> None:
    """Run `ip ARGS`, failing with its message."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


class Network:
    """Hosts in namespaces of their own on one bridge; `close` removes every namespace."""

    def __init__(self, prefix: str = f"digits-test-{os.getpid()}") -> None:
        self.prefix = prefix
        self.switch = f"{prefix}-switch"
        self.hosts: dict[str, str] = {}  # host name -> address
        ip("netns", "add", self.switch)
        try:
            ip("-n", self.switch, "link", "add", "bridge0", "type", "bridge")
            ip("-n", self.switch, "link", "set", "bridge0", "up")
        except RuntimeError:
            self.close()
            raise

    def namespace(self, host: str) -> str:
        """Return the namespace name of `host`."""
        return f"{self.prefix}-{host}"

    def add_host(self, host: str) -> str:
        """Create `host` with a cable to the bridge and the next free address; return it."""
        address = f"{SUBNET}.{len(self.hosts) + 1}"
        namespace = self.namespace(host)
        ip("netns", "add", namespace)
        self.hosts[host] = address
        port = f"port-{host}"[:15]  # the bridge's end; interface names have at most 15 bytes
        ip(
            "-n",
            self.switch,
            "link",
            "add",
            port,
            "type",
            "veth",
            "peer",
            "eth0",
            "netns",
            namespace,
        )
        ip("-n", self.switch, "link", "set", port, "master", "bridge0", "up")
        ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
        ip("-n", namespace, "link", "set", "eth0", "up")
        ip("-n", namespace, "link", "set", "lo", "up")
        return address

    def command(self, host: str, command: Sequence[str]) -> list[str]:
        """Return `command` run on `host` (`ip netns exec` execs it: the pid is the command's)."""
        return ["ip", "netns", "exec", self.namespace(host), *command]

    def cut(self, host: str) -> None:
        """Take the bridge's end of `host`'s cable down: packets to and from it are dropped."""
        ip("-n", self.switch, "link", "set", f"port-{host}"[:15], "down")

    def reconnect(self, host: str) -> None:
        """Bring `host`'s cable back up."""
        ip("-n", self.switch, "link", "set", f"port-{host}"[:15], "up")

    @contextmanager
    def on(self, host: str) -> Iterator[None]:
        """Run the block's sockets from `host`: this thread joins its namespace, then returns.

        setns(2) moves only the calling thread; the rest of the test process stays put.
        """
        libc = ctypes.CDLL(None, use_errno=True)
        with open("/proc/thread-self/ns/net") as home, open(self._path(host)) as there:
            _setns(libc, there.fileno())
            try:
                yield
            finally:
                _setns(libc, home.fileno())

    def _path(self, host: str) -> str:
        return f"/run/netns/{self.namespace(host)}"

    def close(self) -> None:
        """Delete every namespace (their interfaces go with them); report the first failure."""
        failures = []
        for namespace in [*map(self.namespace, self.hosts), self.switch]:
            try:
                ip("netns", "delete", namespace)
            except RuntimeError as error:
                failures.append(str(error))
        self.hosts.clear()
        if failures:
            raise RuntimeError("; ".join(failures))


def _setns(libc: ctypes.CDLL, descriptor: int) -> None:
    if libc.setns(descriptor, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")
