"""The IDX file format of the original MNIST distribution (raw or gzip-compressed)."""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

GZIP_MAGIC = b"\x1f\x8b"
# Type codes from the format's description; values are stored big-endian.
DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class IDXFormatError(ValueError):
    """The file is not a well-formed IDX file."""


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (raw or .gz) into an array of its declared shape, in native byte order."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise IDXFormatError(f"{path}: broken gzip data ({error})") from error
    return parse_idx(raw, name=str(path))


def parse_idx(raw: bytes, name: str = "IDX data") -> np.ndarray:
    """Parse the bytes of an uncompressed IDX file, checking magic, type code and size."""
    if len(raw) < 4 or raw[:2] != b"\0\0":
        raise IDXFormatError(f"{name}: not an IDX file (bad magic number {raw[:4].hex()!r})")
    code, ndim = raw[2], raw[3]
    if code not in DTYPES:
        raise IDXFormatError(f"{name}: unknown IDX type code 0x{code:02x}")
    header = 4 + 4 * ndim
    if ndim == 0:
        raise IDXFormatError(f"{name}: the header declares no dimensions")
    if len(raw) < header:
        raise IDXFormatError(f"{name}: truncated header ({len(raw)} bytes for {ndim} dimensions)")
    shape = tuple(int(size) for size in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = DTYPES[code]
    expected = math.prod(shape) * dtype.itemsize
    if len(raw) - header != expected:
        raise IDXFormatError(
            f"{name}: shape {shape} needs {expected:,} data bytes, found {len(raw) - header:,}"
            + (" (truncated file)" if len(raw) - header < expected else "")
        )
    data = np.frombuffer(raw, dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))
