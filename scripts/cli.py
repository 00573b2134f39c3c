"""The `digits` command: one subcommand per module in `scripts/`."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from config.settings import SettingError

# Each module defines `register(subparsers)`, which adds its subcommand(s) and sets
# `func=<callable taking the parsed args and returning an exit code>`.
COMMAND_MODULES = [
    "scripts.fetch_data",
    "scripts.train",
    "scripts.calibrate",
    "scripts.ensemble",
    "scripts.bench.command",
    "scripts.registry",
    "scripts.serve",
    "scripts.up",
    "scripts.submit",
    "scripts.stream",
    "scripts.negatives",
    "scripts.nondigit",
]


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="digits", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `digits` command line; 2 when the arguments or the settings are wrong."""
    try:
        parser = build_parser()  # the flags' defaults are the settings
    except SettingError as error:
        print(f"digits: {error}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
