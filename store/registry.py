"""The model registry in Redis: weights stored under their content hash, and the current one.

Importable without the network (the API lists and activates models): only `publish`
imports it, to prove a file loads before it is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from redis import Redis

from formats.weights import version as file_version
from store import codec, keys
from store.batches import now


class UnknownModel(KeyError):
    """No published model has this version."""


class CorruptModel(ValueError):
    """The stored weights no longer match their version hash."""


class BadWeights(ValueError):
    """A weights file that does not load as a network: it is never stored."""


@dataclass(frozen=True)
class ModelRecord:
    """A published model: its version, the file's metadata, when and how big."""

    version: str
    metadata: dict[str, Any]
    published_at: str
    size: int


def publish(connection: Redis, data: bytes, metadata: dict[str, Any]) -> tuple[str, bool]:
    """Store a weights file under its hash, once it has loaded; return (version, newly stored)."""
    import model  # the network: needed here only

    try:
        model.loads(data)
    except model.WeightsError as error:
        raise BadWeights(str(error)) from None
    version = file_version(data)
    record = {"version": version, "metadata": metadata, "published_at": now(), "size": len(data)}
    pipe = connection.pipeline()
    pipe.set(keys.model_weights(version), data, nx=True)
    pipe.hsetnx(keys.MODELS_META, version, orjson.dumps(record))
    _, added = pipe.execute()
    return version, bool(added)


def records(connection: Redis) -> list[ModelRecord]:
    """Return every published model, newest first."""
    raw = connection.hvals(keys.MODELS_META)
    found = [ModelRecord(**orjson.loads(item)) for item in raw]
    return sorted(found, key=lambda record: record.published_at, reverse=True)


def weights(connection: Redis, version: str) -> bytes:
    """Return the weights file of a version, checked against its hash."""
    data = connection.get(keys.model_weights(version))
    if data is None:
        raise UnknownModel(version)
    if file_version(codec.raw(data)) != version:
        raise CorruptModel(f"stored weights of model {version} do not match their hash")
    return codec.raw(data)


def refuse(connection: Redis, version: str, error: str) -> None:
    """Record that a worker would not load `version`, and why (the latest refusal wins)."""
    record = {"error": error, "at": now()}
    connection.hset(keys.MODELS_REFUSED, version, orjson.dumps(record))


def refusals(connection: Redis) -> dict[str, dict[str, str]]:
    """Return why each refused version was refused: {version: {"error", "at"}}."""
    raw = connection.hgetall(keys.MODELS_REFUSED)
    return {codec.text(version): orjson.loads(record) for version, record in raw.items()}


def current(connection: Redis) -> str | None:
    """Return the version workers must use, or None before any activation."""
    value = connection.get(keys.MODELS_CURRENT)
    return None if value is None else codec.text(value)


def activate(connection: Redis, version: str) -> str | None:
    """Make a published version current (after checking its hash); return the previous one."""
    weights(connection, version)
    previous = connection.set(keys.MODELS_CURRENT, version, get=True)
    return codec.text(previous) if isinstance(previous, bytes | str) else None
