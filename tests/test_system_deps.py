"""tests/system-deps.sh, which `make test` runs: apt-get for what is missing, or a clear stop.

`id` and `apt-get` are stand-ins on PATH here: the script's decisions are tested without
installing anything.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "system-deps.sh"


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    """A PATH directory whose `apt-get` logs its arguments and whose `id -u` is $FAKE_UID."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/apt.log\n')
    (bin_dir / "id").write_text('#!/bin/sh\necho "$FAKE_UID"\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    return bin_dir


def run(fake_bin: Path, uid: int, *pairs: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{fake_bin}:/usr/bin:/bin", "FAKE_UID": str(uid)}
    return subprocess.run(
        ["bash", str(SCRIPT), *pairs], env=env, capture_output=True, text=True, check=False
    )


def test_nothing_happens_when_every_program_is_there(fake_bin: Path) -> None:
    done = run(fake_bin, 0, "/bin/sh=dash", "bash=bash")
    assert (done.returncode, done.stderr) == (0, "")
    assert not (fake_bin.parent / "apt.log").exists()


def test_missing_programs_are_installed_with_apt_get_as_root(fake_bin: Path) -> None:
    done = run(
        fake_bin, 0, "/usr/bin/no-such-chromium=chromium", "bash=bash", "nodriver=chromium-driver"
    )
    assert done.returncode == 0, done.stderr
    assert "installing chromium chromium-driver with apt-get" in done.stderr
    calls = (fake_bin.parent / "apt.log").read_text().splitlines()
    assert calls == [
        "update -qq",
        "install -y -qq --no-install-recommends chromium chromium-driver",
    ]


def test_without_root_it_says_what_to_install_and_fails(fake_bin: Path) -> None:
    done = run(fake_bin, 1000, "/usr/bin/no-such-chromium=chromium")
    assert done.returncode == 1
    assert "the tests need the Debian packages: chromium" in done.stderr
    assert "not running as root" in done.stderr
    assert "sudo apt-get install chromium" in done.stderr
    assert not (fake_bin.parent / "apt.log").exists()
