"""compose.yaml names only commands, flags, environment variables and ports the code has."""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from redis.sentinel import SentinelConnectionPool

from config.settings import DEFAULTS
from scripts import up
from scripts.cli import build_parser
from store.connection import connect, parse_sentinel_url

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("api", "worker", "scripts", "model")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def parser() -> Iterator[argparse.ArgumentParser]:
    """The real `digits` parser, its defaults built without the settings compose would set."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("PORT", "REDIS_URL", "DIGITS_HOST"):
            patch.delenv(name, raising=False)
        yield build_parser()


def digits_commands(service: dict[str, Any]) -> list[list[str]]:
    """Every `digits ...` command line a service runs, also inside `sh -c "a && b"`."""
    command = service.get("command", [])
    if command[:2] == ["sh", "-c"]:
        parts = [shlex.split(part) for part in command[2].split("&&")]
        return [part for part in parts if part[:1] == ["digits"]]
    return [command] if command[:1] == ["digits"] else []


def test_services_and_redis_settings(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"redis", "api", "worker", "trainer"} <= set(services)
    redis = services["redis"]
    assert redis["image"].startswith("redis:")
    assert " --appendonly yes" in " " + " ".join(redis["command"])
    assert "--maxmemory-policy noeviction" in " ".join(redis["command"])
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert services["worker"]["deploy"]["replicas"] >= 1
    assert services["trainer"]["profiles"] == ["train"]


def test_every_command_parses(compose: dict[str, Any], parser: argparse.ArgumentParser) -> None:
    commands = [c for service in compose["services"].values() for c in digits_commands(service)]
    names = {command[1] for command in commands}
    assert {"api", "worker", "publish", "train", "fetch-data"} <= names
    for command in commands:
        assert command[0] == "digits"
        parser.parse_args(command[1:])  # exits (fails the test) on an unknown command or flag


def test_every_environment_variable_is_read_by_the_code(compose: dict[str, Any]) -> None:
    code = "\n".join(
        path.read_text() for package in SOURCES for path in (ROOT / package).rglob("*.py")
    )
    for name, service in compose["services"].items():
        if service.get("image") != "digits:latest":
            continue  # an image of someone else's reads its own settings
        for variable in service.get("environment", {}):
            assert variable in DEFAULTS or re.search(rf"[\"']{variable}[\"']", code), (
                f"{name}: {variable} is not read anywhere"
            )


def test_ports_agree(compose: dict[str, Any], parser: argparse.ArgumentParser) -> None:
    api = compose["services"]["api"]
    published, container = api["ports"][0].split(":")
    args = parser.parse_args(api["command"][1:])
    assert int(container) == args.port == int(api["environment"]["PORT"])
    assert parser.parse_args(["api"]).port == int(container)  # the default needs no setting
    for service in compose["services"].values():
        url = service.get("environment", {}).get("REDIS_URL")
        if url:  # the redis service on Redis's default port, unless REDIS_URL names sentinels
            assert url == "${REDIS_URL:-redis://redis:6379/0}"
    assert DEFAULTS["REDIS_URL"].endswith(":6379/0")


def test_paths_agree(compose: dict[str, Any], parser: argparse.ArgumentParser) -> None:
    seed = parser.parse_args(compose["services"]["seed"]["command"][1:])
    assert ROOT / seed.path == up.WEIGHTS_DIR / up.SHIPPED_WEIGHTS[0]
    trainer = compose["services"]["trainer"]
    train, publish = (
        parser.parse_args(command[1:])
        for command in digits_commands(trainer)
        if command[1] in ("train", "publish")
    )
    assert Path(train.out) == publish.path
    mounts = {volume.split(":")[1] for volume in trainer["volumes"]}
    assert str(publish.path.parent) in mounts
    assert trainer["environment"]["DIGITS_DATA_DIR"] in mounts


def test_dashboard_is_optional_and_reads_our_redis_as_json(compose: dict[str, Any]) -> None:
    services = compose["services"]
    dashboard = services["dashboard"]
    assert dashboard["profiles"] == ["dashboard"]
    assert dashboard["environment"]["RQ_DASHBOARD_REDIS_URL"] == "redis://redis:6379/0"
    assert dashboard["environment"]["RQ_DASHBOARD_JSON"] == "true"  # RQ's JSONSerializer
    assert dashboard["ports"] == ["127.0.0.1:9181:9181"]  # it can delete jobs: local only


def test_keys_and_limits_reach_the_api(compose: dict[str, Any]) -> None:
    environment = compose["services"]["api"]["environment"]
    for name in ("DIGITS_API_KEYS", "DIGITS_ADMIN_KEYS", "DIGITS_RATE_LIMIT"):
        assert environment[name] == f"${{{name}:-}}"  # from the shell or .env, empty: off


def sentinel_config(service: dict[str, Any]) -> list[str]:
    """The lines a sentinel service writes to its configuration file before it starts."""
    shell, _, command = service["command"]
    assert shell == "sh" and command.endswith("exec redis-sentinel /tmp/sentinel.conf")
    printf = shlex.split(command.split(">")[0])
    assert printf[:2] == ["printf", "%s\\n"]
    return printf[2:]


def test_sentinel_profile_watches_the_redis_service(compose: dict[str, Any]) -> None:
    services = compose["services"]
    replica = services["redis-replica"]
    sentinels = {name: s for name, s in services.items() if name.startswith("sentinel-")}
    assert len(sentinels) == 3  # a majority survives the loss of any one
    assert replica["profiles"] == ["sentinel"]
    assert all(sentinel["profiles"] == ["sentinel"] for sentinel in sentinels.values())
    flags = " ".join(replica["command"])
    assert "--replicaof redis 6379" in flags and "--appendonly yes" in flags
    assert "--maxmemory-policy noeviction" in flags  # a promoted replica keeps the rules
    assert "--replica-announce-ip redis " in " ".join(services["redis"]["command"]) + " "
    for sentinel in sentinels.values():
        config = sentinel_config(sentinel)
        assert "port 26379" in config
        [monitor] = [line for line in config if line.startswith("sentinel monitor ")]
        _, _, name, host, port, quorum = monitor.split()
        assert (name, host, port) == ("digits", "redis", "6379")
        assert int(quorum) == len(sentinels) // 2 + 1


def test_the_documented_sentinel_url_names_the_profile(compose: dict[str, Any]) -> None:
    header = (ROOT / "compose.yaml").read_text().split("\nname:")[0]
    [url] = re.findall(r"REDIS_URL=(redis\+sentinel://\S+)", header)
    parsed = parse_sentinel_url(url)
    sentinels = sorted(name for name in compose["services"] if name.startswith("sentinel-"))
    assert sorted(host for host, _ in parsed.sentinels) == sentinels
    assert {port for _, port in parsed.sentinels} == {26379}
    assert parsed.master_name == "digits" and parsed.db == 0
    assert isinstance(connect(url).connection_pool, SentinelConnectionPool)
