"""The worker's in-memory model: loaded once, swapped when the registry's current version moves."""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from redis import Redis

import model
from store import registry

log = logging.getLogger(__name__)


class Network(Protocol):
    """The part of `model`'s network a worker uses."""

    metadata: dict[str, Any]

    def predict_proba(self, pixels: NDArray[np.uint8]) -> NDArray[np.float32]: ...


class NoModel(LookupError):
    """No model is current, or none that loads."""


class ModelCache:
    """Hold the network of the current version; refuse versions that fail to load.

    `lock` is held by whoever uses the network (an RQ job, the stream consumer): one forward
    pass at a time per process, since each worker process is one core's worth of work.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.network: Network | None = None
        self.version: str | None = None
        self.refused: set[str] = set()

    def get(self, connection: Redis, current: str | None) -> tuple[Network, str]:
        """Return (network, version) for the registry's `current` version, loading it if new."""
        if current is not None and current != self.version and current not in self.refused:
            self._load(connection, current)
        if self.network is None or self.version is None:
            raise NoModel("no model is active: run `digits publish PATH --activate`")
        return self.network, self.version

    def _load(self, connection: Redis, version: str) -> None:
        try:
            network = model.loads(registry.weights(connection, version))
        except (registry.UnknownModel, registry.CorruptModel, model.WeightsError) as error:
            # Keep serving with the model we have: a bad publish must not take workers down.
            kept = f"still serving model {self.version}" if self.version else "no model to serve"
            log.error("model %s refused, %s: %s", version, kept, error)
            self.refused.add(version)
            registry.refuse(connection, version, f"{kept}: {error}")  # GET /v1/models shows it
            return
        self.network, self.version = network, version
        log.info("model %s loaded", version)
