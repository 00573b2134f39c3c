"""`digits publish`, `digits models`, `digits activate`: the model registry from the shell."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from redis import Redis

from config import settings
from scripts.serve import redis_option
from store import registry
from store.connection import connect


class PublishError(ValueError):
    """A weights file that must not be published: it does not load."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `publish`, `models` and `activate` subcommands."""
    loaded = settings.load()
    publish = subparsers.add_parser("publish", help="store a weights file in the registry")
    publish.add_argument("path", type=Path, help="weights file (.npz) written by `digits train`")
    when = publish.add_mutually_exclusive_group()
    when.add_argument("--activate", action="store_true", help="make it the current model")
    when.add_argument(
        "--activate-if-none",
        action="store_true",
        help="make it current only if no model is (for first starts)",
    )
    redis_option(publish, loaded)
    publish.set_defaults(func=publish_command)

    models = subparsers.add_parser("models", help="list published models")
    redis_option(models, loaded)
    models.set_defaults(func=models_command)

    activate = subparsers.add_parser("activate", help="make a published model current")
    activate.add_argument("version", help="a version listed by `digits models`")
    redis_option(activate, loaded)
    activate.set_defaults(func=activate_command)


def publish_file(connection: Redis, path: Path, activate: bool = False) -> str:
    """Check the file loads as a network, store it, maybe activate it; return its version."""
    import model  # the network is needed only to prove the file loads

    data = path.read_bytes()
    try:
        network = model.loads(data)
    except model.WeightsError as error:
        raise PublishError(f"{path} does not load: {error}") from None
    version, _ = registry.publish(connection, data, network.metadata)
    if activate:
        registry.activate(connection, version)
    return version


def publish_command(args: argparse.Namespace) -> int:
    """Run `digits publish`."""
    connection = connect(args.redis_url)
    activate = args.activate or (args.activate_if_none and registry.current(connection) is None)
    try:
        version = publish_file(connection, args.path, activate)
    except (OSError, PublishError) as error:
        print(f"digits publish: {error}", file=sys.stderr)
        return 1
    print(f"{version}{' (current)' if activate else ''}")
    return 0


def models_command(args: argparse.Namespace) -> int:
    """Run `digits models`."""
    connection = connect(args.redis_url)
    current = registry.current(connection)
    refused = registry.refusals(connection)
    for record in registry.records(connection):
        mark = "*" if record.version == current else " "
        architecture = record.metadata.get("architecture", {}).get("name", "?")
        line = f"{mark} {record.version}  {record.published_at}  {architecture}  {record.size} B"
        if record.version in refused:
            line += f"  REFUSED by a worker at {refused[record.version]['at']}"
        print(line)
    return 0


def activate_command(args: argparse.Namespace) -> int:
    """Run `digits activate`."""
    connection = connect(args.redis_url)
    try:
        previous = registry.activate(connection, args.version)
    except registry.UnknownModel:
        print(f"digits activate: no published model {args.version!r}", file=sys.stderr)
        return 1
    except registry.CorruptModel as error:
        print(f"digits activate: {error}", file=sys.stderr)
        return 1
    print(f"{args.version} is current (was {previous or 'none'})")
    return 0
