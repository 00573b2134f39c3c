"""Write one benchmark's section of BENCHMARKS.md, leaving the other sections alone."""

from __future__ import annotations

import datetime
import os
import platform
import re
import shlex
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

REPORT = Path(__file__).resolve().parents[2] / "BENCHMARKS.md"
TITLE = "# Benchmarks\n\nEach section is written by the command it names; numbers are medians.\n"


def machine() -> str:
    """Describe this machine in one line: CPU model, cores, memory, Python and NumPy."""
    import numpy as np

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        cpu = found.group(1).strip() if found else cpu
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB, Python {platform.python_version()}, "
        f"NumPy {np.__version__}"
    )


def load_average() -> str:
    """Return the 1, 5 and 15 minute load averages as "a, b, c", for a table's caption."""
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def median(values: Sequence[float]) -> float:
    """Return the median of the runs."""
    return float(statistics.median(values))


def write_section(name: str, title: str, body: str, argv: Sequence[str] | None = None) -> None:
    """Replace (or append) the section `name` of BENCHMARKS.md with `body`."""
    command = "digits bench " + shlex.join(sys.argv[2:] if argv is None else argv)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"<!-- bench:{name} -->\n## {title}\n\n"
        f"- command: `{command}`\n- date: {stamp}\n- machine: {machine()}\n\n"
        f"{body.strip()}\n<!-- /bench:{name} -->\n"
    )
    text = REPORT.read_text() if REPORT.exists() else TITLE
    pattern = re.compile(rf"<!-- bench:{name} -->.*?<!-- /bench:{name} -->\n", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text + "\n" + section
    REPORT.write_text(text)
    print(section)
