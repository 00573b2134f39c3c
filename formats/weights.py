"""A weights file's version: the content hash that names it in the registry and in answers.

`model` computes it when it loads a file, `store.registry` when a file is published or
activated; the API checks a version without loading the network, so the hash lives here.
"""

from __future__ import annotations

import hashlib


def version(data: bytes) -> str:
    """Return the version of a weights file: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(data).hexdigest()[:16]
