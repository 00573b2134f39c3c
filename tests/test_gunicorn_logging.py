"""Gunicorn's own lines come out as JSON, like every other line the service logs."""

from __future__ import annotations

import orjson
import pytest
from gunicorn.config import Config

from scripts.gunicorn_logging import JsonLogger


def test_gunicorn_lines_are_json_with_secrets_masked(capsys: pytest.CaptureFixture[str]) -> None:
    logger = JsonLogger(Config())
    logger.info("Booting worker with pid: %s", 4242)
    logger.error("cannot reach redis://:hunter2@cache:6379/0")

    lines = [orjson.loads(line) for line in capsys.readouterr().err.splitlines()]

    assert [(line["level"], line["logger"]) for line in lines] == [
        ("info", "gunicorn.error"),
        ("error", "gunicorn.error"),
    ]
    assert lines[0]["message"] == "Booting worker with pid: 4242"
    assert lines[1]["message"] == "cannot reach redis://:***@cache:6379/0"
