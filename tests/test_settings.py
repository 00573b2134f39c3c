"""One configuration for every process: defaults, then the environment, then the caller."""

from __future__ import annotations

from typing import Any

import pytest
from redis import Redis

from config import settings
from scripts import cli, serve
from worker import recovery, runner


def test_the_environment_overrides_defaults_and_the_caller_overrides_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DIGITS_MAX_ROWS", "50")
    monkeypatch.setenv("DIGITS_WAIT", "2.5")
    monkeypatch.setenv("DIGITS_ALLOW_EVICTION", "yes")
    loaded = settings.load({"DIGITS_WAIT": 9.0})
    assert (loaded["DIGITS_MAX_ROWS"], loaded["DIGITS_WAIT"]) == (50, 9.0)
    assert loaded["DIGITS_ALLOW_EVICTION"] is True
    assert loaded["DIGITS_CHUNK_ROWS"] == settings.DEFAULTS["DIGITS_CHUNK_ROWS"]
    for off in ("0", "false", "No", ""):
        monkeypatch.setenv("DIGITS_ALLOW_EVICTION", off)
        assert settings.load()["DIGITS_ALLOW_EVICTION"] is False


def test_a_malformed_variable_is_named_and_stops_the_cli_cleanly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DIGITS_MAX_ROWS", "many")
    with pytest.raises(settings.SettingError, match="DIGITS_MAX_ROWS='many' is not a int"):
        settings.load()
    assert cli.main(["models"]) == 2
    assert "DIGITS_MAX_ROWS='many'" in capsys.readouterr().err


def test_command_flags_default_to_the_settings_and_override_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DIGITS_API_PROCESSES", "5")
    monkeypatch.setenv("REDIS_URL", "redis://elsewhere:6379/2")
    monkeypatch.setenv("DIGITS_BLAS_THREADS", "2")
    parser = cli.build_parser()
    api = parser.parse_args(["api"])
    assert serve.configured(api, serve.API_FLAGS)["DIGITS_API_PROCESSES"] == 5
    worker = parser.parse_args(["worker", "--blas-threads", "3"])
    config = serve.configured(worker, serve.WORKER_FLAGS)
    assert (config["REDIS_URL"], config["DIGITS_BLAS_THREADS"]) == ("redis://elsewhere:6379/2", 3)
    assert parser.parse_args(["models"]).redis_url == "redis://elsewhere:6379/2"


def test_a_worker_runs_with_the_settings_it_is_given(
    redis_conn: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}
    lifeline = recovery.Lifeline

    def recording(connection: Redis, worker: runner.Worker, *rest: Any) -> recovery.Lifeline:
        seen.update(worker_ttl=worker.worker_ttl, rest=rest)
        return lifeline(connection, worker, *rest)

    monkeypatch.setattr(recovery, "Lifeline", recording)
    given = {"DIGITS_WORKER_TTL": 45, "DIGITS_SWEEP_INTERVAL": 0.5, "DIGITS_MAX_RECOVERIES": 0}
    runner.run(redis_conn, settings.load(given), burst=True)
    assert seen == {"worker_ttl": 45, "rest": (0.5, 0)}
