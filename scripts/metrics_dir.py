"""The directory where gunicorn's processes share their Prometheus numbers.

prometheus-client's multiprocess mode has each process write its counters to files in
PROMETHEUS_MULTIPROC_DIR; the directory must start empty on every start of the server.
`digits api` makes one per gunicorn master, named after its pid (exec keeps the pid),
and removes those whose master is gone, so a crash or SIGKILL leaves nothing behind
for longer than the next start.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import MutableMapping
from pathlib import Path

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
PREFIX = "digits-metrics-"


def prepare(environ: MutableMapping[str, str], pid: int | None = None) -> Path:
    """Set VARIABLE in `environ` to an empty directory for process `pid`, unless set; return it."""
    if environ.get(VARIABLE):
        return Path(environ[VARIABLE])
    parent = Path(tempfile.gettempdir())
    _remove_orphans(parent)
    directory = parent / f"{PREFIX}{pid or os.getpid()}"
    shutil.rmtree(directory, ignore_errors=True)  # a pid reused since: its files are stale
    directory.mkdir(mode=0o700)
    environ[VARIABLE] = str(directory)
    return directory


def _remove_orphans(parent: Path) -> None:
    for directory in parent.glob(f"{PREFIX}*"):
        pid = directory.name.removeprefix(PREFIX)
        if pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(directory, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True
