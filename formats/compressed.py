"""gzip and zip files as Kaggle and people ship them, opened with a cap on the output.

A few kilobytes of gzip or zip can expand to gigabytes (a "zip bomb"), so every function here
takes `limit`, the most uncompressed bytes the caller accepts, and stops decompressing one byte
past it: memory and time stay bounded by the limit, whatever the archive claims.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import PurePosixPath

GZIP_MAGIC = b"\x1f\x8b"  # RFC 1952, section 2.3.1
ZIP_MAGIC = b"PK\x03\x04"  # a local file header (PKWARE APPNOTE.TXT, 4.3.7)
PREFERRED_MEMBER = "test.csv"  # Kaggle's digit-recognizer.zip holds train, test, sample
GZIP_WINDOW = 16 + zlib.MAX_WBITS  # zlib's wbits for the gzip container


class ArchiveError(ValueError):
    """A compressed upload is broken (`bad_archive`) or expands past the limit (`too_large`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def is_compressed(data: bytes) -> bool:
    """Tell whether `data` starts like a gzip stream or a zip archive."""
    return data.startswith(GZIP_MAGIC) or data.startswith(ZIP_MAGIC)


def unpack(data: bytes, limit: int | None) -> bytes:
    """Return the CSV inside gzip or zip `data` (or `data` itself when it is neither).

    Raises ArchiveError when the archive is broken or holds more than `limit` bytes.
    """
    if data.startswith(GZIP_MAGIC):
        return gunzip(data, limit)
    if data.startswith(ZIP_MAGIC):
        return unzip_csv(data, limit)
    return data


def gunzip(data: bytes, limit: int | None) -> bytes:
    """Decompress gzip `data` (any number of members), at most `limit` bytes of output."""
    out = bytearray()
    rest = data
    while rest.strip(b"\0"):  # members follow each other; gzip(1) ignores zero padding
        stream = zlib.decompressobj(GZIP_WINDOW)
        room = 0 if limit is None else limit + 1 - len(out)  # 0: no cap (zlib's convention)
        try:
            out += stream.decompress(rest, room)
        except zlib.error as error:
            raise ArchiveError("bad_archive", f"the gzip data is corrupt ({error})") from None
        if limit is not None and len(out) > limit:
            raise _too_large("gzip data", limit)
        if not stream.eof:
            raise ArchiveError("bad_archive", "the gzip data ends early: was the upload cut?")
        rest = stream.unused_data
    return bytes(out)


def unzip_csv(data: bytes, limit: int | None) -> bytes:
    """Return the zip's test.csv, else its only CSV, at most `limit` bytes of output."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        member = _pick_member(archive)
        if limit is not None and member.file_size > limit:
            raise _too_large(f"the zip's {member.filename}", limit)
        with archive.open(member) as stream:
            text = stream.read(-1 if limit is None else limit + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as error:
        raise ArchiveError("bad_archive", f"the zip archive cannot be read ({error})") from None
    if limit is not None and len(text) > limit:  # the header understated the size
        raise _too_large(f"the zip's {member.filename}", limit)
    return text


def _pick_member(archive: zipfile.ZipFile) -> zipfile.ZipInfo:
    csvs = [
        info
        for info in archive.infolist()
        if not info.is_dir() and PurePosixPath(info.filename).suffix.lower() == ".csv"
    ]
    for info in csvs:
        if PurePosixPath(info.filename).name == PREFERRED_MEMBER:
            return info
    if len(csvs) == 1:
        return csvs[0]
    names = ", ".join(info.filename for info in csvs[:5]) or "no CSV file"
    raise ArchiveError(
        "bad_archive",
        f"the zip holds {names}: expected {PREFERRED_MEMBER} or exactly one CSV file",
    )


def _too_large(what: str, limit: int) -> ArchiveError:
    return ArchiveError(
        "too_large", f"{what} expands to more than the limit of {limit:,} bytes uncompressed"
    )
