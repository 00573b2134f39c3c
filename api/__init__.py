"""The HTTP API: JSON in, work on Redis queues, results out."""

from __future__ import annotations

from api.app import create_app

__all__ = ["create_app"]
