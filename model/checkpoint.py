"""Weights files: `.npz` arrays plus JSON metadata, versioned by a hash of their bytes.

The archive is written with fixed timestamps and sorted members, so saving the same
network twice gives the same bytes and the same version.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from formats.mnist import N_PIXELS
from formats.weights import version as file_version
from model.ensemble import NAME as ENSEMBLE
from model.ensemble import Ensemble
from model.network import Network, from_metadata

FORMAT = 1  # bump when the layout of the file changes
METADATA = "metadata"  # the member holding the UTF-8 JSON metadata as a uint8 array
MAX_BYTES = 256 * 2**20  # refuse archives that would inflate beyond this
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


class WeightsError(ValueError):
    """A weights file is corrupt, truncated, or does not describe a valid network."""


def dumps(net: Network | Ensemble) -> bytes:
    """Serialise a network to the bytes of a weights file."""
    metadata = dict(net.metadata, format=FORMAT)
    text = json.dumps(metadata, sort_keys=True, allow_nan=False).encode()
    members = {METADATA: np.frombuffer(text, np.uint8)} | net.state()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(members):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as member:
                array = np.ascontiguousarray(members[name])
                np.lib.format.write_array(member, array, allow_pickle=False)
    return buffer.getvalue()


def save(net: Network | Ensemble, path: str | os.PathLike[str]) -> str:
    """Write a network to `path` atomically; set and return its version."""
    data = dumps(net)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)
    net.version = file_version(data)
    return net.version


def load(path: str | os.PathLike[str]) -> Network | Ensemble:
    """Read a weights file; raise WeightsError if it is not a valid one."""
    return loads(Path(path).read_bytes(), source=str(path))


def loads(data: bytes, source: str = "weights") -> Network | Ensemble:
    """Rebuild a network from the bytes of a weights file; raise WeightsError if invalid."""
    arrays = _read_arrays(data, source)
    metadata = _read_metadata(arrays.pop(METADATA, None), source)
    try:
        net = build_from(metadata)
        net.normalise(np.zeros((1, N_PIXELS), np.uint8))
    except (KeyError, TypeError, ValueError, AttributeError, MemoryError) as exc:
        raise WeightsError(f"{source}: metadata does not describe a network: {exc!r}") from exc
    _check_arrays(net.state(), arrays, source)
    net.load_state(arrays)
    net.version = file_version(data)
    return net


def build_from(metadata: dict[str, Any]) -> Network | Ensemble:
    """Rebuild a network or an ensemble, arrays still zero, from a weights file's metadata."""
    if metadata["architecture"]["name"] == ENSEMBLE:
        return Ensemble.from_metadata(metadata)
    return from_metadata(metadata)


def _read_arrays(data: bytes, source: str) -> dict[str, NDArray[Any]]:
    arrays = {}
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            if sum(info.file_size for info in infos) > MAX_BYTES:
                raise WeightsError(f"{source}: archive inflates beyond {MAX_BYTES} bytes")
            for info in infos:
                if not info.filename.endswith(".npy"):
                    raise WeightsError(f"{source}: unexpected member {info.filename!r}")
                with archive.open(info) as member:
                    array = np.lib.format.read_array(member, allow_pickle=False)
                arrays[info.filename.removesuffix(".npy")] = array
    except WeightsError:
        raise
    except Exception as exc:  # any failure to parse untrusted bytes means a bad file
        raise WeightsError(f"{source}: not a readable weights file ({exc!r})") from exc
    return arrays


def _read_metadata(array: NDArray[Any] | None, source: str) -> dict[str, Any]:
    if array is None:
        raise WeightsError(f"{source}: no {METADATA!r} entry")
    if array.dtype != np.uint8 or array.ndim != 1:
        raise WeightsError(f"{source}: {METADATA!r} must be a 1-D uint8 array")
    try:
        metadata = json.loads(array.tobytes().decode())
    except ValueError as exc:
        raise WeightsError(f"{source}: {METADATA!r} is not UTF-8 JSON ({exc})") from exc
    if not isinstance(metadata, dict):
        raise WeightsError(f"{source}: {METADATA!r} must be a JSON object")
    if metadata.get("format") != FORMAT:
        raise WeightsError(f"{source}: format {metadata.get('format')!r}, expected {FORMAT}")
    return metadata


def _check_arrays(
    expected: dict[str, NDArray[Any]], arrays: dict[str, NDArray[Any]], source: str
) -> None:
    missing = sorted(expected.keys() - arrays.keys())
    unexpected = sorted(arrays.keys() - expected.keys())
    if missing or unexpected:
        raise WeightsError(f"{source}: missing arrays {missing}, unexpected arrays {unexpected}")
    for name, template in expected.items():
        array = arrays[name]
        if array.shape != template.shape or array.dtype != np.float32:
            raise WeightsError(
                f"{source}: array {name!r} is {array.dtype}{list(array.shape)}, "
                f"expected float32{list(template.shape)}"
            )
        if not np.isfinite(array).all():
            raise WeightsError(f"{source}: array {name!r} holds NaN or infinity")
