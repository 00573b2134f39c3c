"""A handwritten-digit classifier in pure NumPy: layers, training, weights files."""

from __future__ import annotations

from model.checkpoint import WeightsError, dumps, file_version, load, loads, save
from model.ensemble import Ensemble
from model.network import Classifier, Network, build

__all__ = [
    "Classifier",
    "Ensemble",
    "Network",
    "WeightsError",
    "build",
    "dumps",
    "file_version",
    "load",
    "loads",
    "save",
]
