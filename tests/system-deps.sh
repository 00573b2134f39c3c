#!/usr/bin/env bash
# The Debian packages the test suite drives, installed through apt-get when a program is missing.
# Usage: tests/system-deps.sh PROGRAM=PACKAGE ...   (PROGRAM is a path, e.g. of a program or a
# font, or a command name;
# an empty PROGRAM installs PACKAGE unconditionally, e.g. python3-venv after venv failed)
# Where they cannot be installed (not root, no apt-get, no package index), say what to install
# and fail: a browser test that cannot run is an error, not a skip.
set -euo pipefail

missing=()
for pair in "$@"; do
    program=${pair%%=*}
    if [[ $program == /* ]] && [ -e "$program" ]; then continue; fi
    if [[ $program != /* ]] && command -v "$program" >/dev/null; then continue; fi
    missing+=("${pair#*=}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

fail() {
    echo "make test: the tests need the Debian packages: ${missing[*]}" >&2
    echo "make test: $1; install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
}
[ "$(id -u)" -eq 0 ] || fail "not running as root, so they cannot be installed here"
command -v apt-get >/dev/null || fail "apt-get is not available on this machine"

echo "make test: installing ${missing[*]} with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || fail "apt-get update failed (no network or package mirror?)"
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || fail "apt-get install failed"
