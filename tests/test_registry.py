"""The model registry and `digits publish` / `models` / `activate`."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis import Redis

import model
from scripts.cli import main
from scripts.registry import PublishError, publish_file
from store import keys, registry


def test_publish_is_idempotent_and_keyed_by_content(
    redis_conn: Redis, networks: dict[str, bytes]
) -> None:
    metadata = model.loads(networks["a"]).metadata
    version, added = registry.publish(redis_conn, networks["a"], metadata)
    assert version == model.file_version(networks["a"])
    assert added is True
    records = registry.records(redis_conn)
    assert registry.publish(redis_conn, networks["a"], {"other": 1}) == (version, False)
    assert registry.records(redis_conn) == records
    assert [found.version for found in records] == [version]
    assert redis_conn.get(keys.model_weights(version)) == networks["a"]
    assert redis_conn.ttl(keys.model_weights(version)) == -1  # the registry is not transient
    assert registry.current(redis_conn) is None


def test_activate_returns_the_previous_version(redis_conn: Redis, published: dict) -> None:
    assert registry.activate(redis_conn, published["b"]) == published["a"]
    assert registry.current(redis_conn) == published["b"]
    with pytest.raises(registry.UnknownModel):
        registry.activate(redis_conn, "f" * 16)
    assert registry.current(redis_conn) == published["b"]


def test_records_are_newest_first(redis_conn: Redis, published: dict) -> None:
    assert [record.version for record in registry.records(redis_conn)] == [
        published["b"],
        published["a"],
    ]


def test_publish_file_refuses_weights_that_do_not_load(
    redis_conn: Redis, tmp_path: Path, networks: dict[str, bytes]
) -> None:
    path = tmp_path / "truncated.npz"
    path.write_bytes(networks["a"][:1000])
    with pytest.raises(PublishError, match="does not load"):
        publish_file(redis_conn, path, activate=True)
    assert registry.records(redis_conn) == []
    assert registry.current(redis_conn) is None


def test_publish_models_activate_commands(
    redis_conn: Redis,
    redis_url: str,
    tmp_path: Path,
    networks: dict[str, bytes],
    capsys: pytest.CaptureFixture[str],
) -> None:
    paths = {}
    for name, data in networks.items():
        paths[name] = tmp_path / f"{name}.npz"
        paths[name].write_bytes(data)
    versions = {name: model.file_version(data) for name, data in networks.items()}
    assert main(["publish", str(paths["a"]), "--activate", "--redis-url", redis_url]) == 0
    assert main(["publish", str(paths["b"]), "--redis-url", redis_url]) == 0
    out = capsys.readouterr().out.split()
    assert out == [versions["a"], "(current)", versions["b"]]

    assert main(["models", "--redis-url", redis_url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"  {versions['b']}") and "mlp" in lines[0]
    assert lines[1].startswith(f"* {versions['a']}")

    assert main(["activate", versions["b"], "--redis-url", redis_url]) == 0
    assert capsys.readouterr().out == f"{versions['b']} is current (was {versions['a']})\n"
    assert main(["activate", "f" * 16, "--redis-url", redis_url]) == 1
    assert "no published model" in capsys.readouterr().err
    assert registry.current(redis_conn) == versions["b"]


def test_publish_command_reports_a_bad_file(
    redis_conn: Redis, redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.npz"
    path.write_bytes(b"garbage")
    assert main(["publish", str(path), "--activate", "--redis-url", redis_url]) == 1
    assert "does not load" in capsys.readouterr().err
    assert main(["publish", str(tmp_path / "missing.npz"), "--redis-url", redis_url]) == 1
    assert registry.records(redis_conn) == []
