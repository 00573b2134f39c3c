"""API keys, admin keys and rate limits on /v1; open pages, health, metrics and OpenAPI."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from processes import redis_db
from redis import Redis

from api import auth, create_app

DB = redis_db(14)  # this module's database, flushed before and after
API_KEY, OTHER_KEY, ADMIN_KEY = "api-key-0123456789", "api-key-abcdefghij", "admin-key-0123456789"
KEYS = {"DIGITS_API_KEYS": f"{API_KEY}, {OTHER_KEY}", "DIGITS_ADMIN_KEYS": ADMIN_KEY}

Client = Callable[..., FlaskClient]


@pytest.fixture
def redis_url() -> str:
    return DB


@pytest.fixture
def make_client(redis_conn: Redis) -> Client:
    """Build a test client of an app with the given settings on this module's database."""

    def build(**settings: Any) -> FlaskClient:
        return create_app({"REDIS_URL": DB, "TESTING": True, **settings}).test_client()

    return build


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status
    assert response.json["error"]["code"] == code
    assert response.json["error"]["message"]


def test_without_keys_everything_is_open(make_client: Client, published: dict) -> None:
    client = make_client()
    assert client.get("/v1/models").status_code == 200
    activated = client.post(f"/v1/models/{published['b']}/activate")
    assert activated.status_code == 200


def test_v1_needs_a_valid_key(make_client: Client) -> None:
    client = make_client(**KEYS)
    missing = client.get("/v1/models")
    assert_error(missing, 401, "unauthorized")
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="digits"'
    wrong = client.get("/v1/models", headers=bearer("not-a-key"))
    assert_error(wrong, 401, "unauthorized")
    assert 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]
    not_bearer = client.get("/v1/models", headers={"Authorization": f"Basic {API_KEY}"})
    assert_error(not_bearer, 401, "unauthorized")
    for key in (API_KEY, OTHER_KEY, ADMIN_KEY):
        assert client.get("/v1/models", headers=bearer(key)).status_code == 200
    lowercase = client.get("/v1/models", headers={"Authorization": f"bearer {API_KEY}"})
    assert lowercase.status_code == 200


def test_every_v1_route_is_guarded(make_client: Client) -> None:
    client = make_client(**KEYS)
    job = "0" * 32
    for method, path in [
        ("POST", "/v1/predict"),
        ("POST", "/v1/jobs"),
        ("GET", f"/v1/jobs/{job}"),
        ("POST", "/v1/batches"),
        ("GET", f"/v1/batches/{job}"),
        ("GET", f"/v1/batches/{job}/submission.csv"),
        ("POST", "/v1/predict/image"),
        ("GET", "/v1/no-such-route"),  # unknown routes do not tell they are unknown
    ]:
        assert_error(client.open(path, method=method), 401, "unauthorized")


def test_access_token_is_taken_only_where_a_browser_cannot_send_a_header(
    make_client: Client,
) -> None:
    client = make_client(**KEYS)
    batch = "0" * 32
    events = f"/v1/batches/{batch}/events"
    assert client.get(f"{events}?access_token={API_KEY}").status_code == 404  # let in: no batch
    assert_error(client.get(f"{events}?access_token=wrong"), 401, "unauthorized")
    assert_error(client.get(events), 401, "unauthorized")
    for path in (f"/v1/batches/{batch}", f"/v1/batches/{batch}/submission.csv", "/v1/models"):
        assert_error(client.get(f"{path}?access_token={API_KEY}"), 401, "unauthorized")
    # The header, when sent, is what counts.
    wrong_header = client.get(f"{events}?access_token={API_KEY}", headers=bearer("wrong"))
    assert_error(wrong_header, 401, "unauthorized")


def test_pages_health_metrics_and_openapi_stay_open(make_client: Client) -> None:
    client = make_client(**KEYS)
    for path in ("/", "/static/app.js", "/healthz", "/metrics", "/openapi.json"):
        assert client.get(path).status_code == 200, path
    assert client.get("/readyz").status_code in (200, 503)  # open: no worker runs here


def test_activation_needs_an_admin_key(make_client: Client, published: dict) -> None:
    client = make_client(**KEYS)
    url = f"/v1/models/{published['b']}/activate"
    assert_error(client.post(url), 401, "unauthorized")
    assert_error(client.post(url, headers=bearer("wrong")), 401, "unauthorized")
    forbidden = client.post(url, headers=bearer(API_KEY))
    assert_error(forbidden, 403, "forbidden")
    assert "admin key" in forbidden.json["error"]["message"]
    assert client.get("/v1/models", headers=bearer(API_KEY)).json["current"] == published["a"]
    assert client.post(url, headers=bearer(ADMIN_KEY)).json["current"] == published["b"]


def test_activation_is_closed_with_api_keys_but_no_admin_key(
    make_client: Client, published: dict
) -> None:
    client = make_client(DIGITS_API_KEYS=API_KEY)
    refused = client.post(f"/v1/models/{published['b']}/activate", headers=bearer(API_KEY))
    assert_error(refused, 403, "forbidden")
    assert "digits activate" in refused.json["error"]["message"]


def test_admin_keys_alone_guard_only_activation(make_client: Client, published: dict) -> None:
    client = make_client(DIGITS_ADMIN_KEYS=ADMIN_KEY)
    assert client.get("/v1/models").status_code == 200
    url = f"/v1/models/{published['b']}/activate"
    assert_error(client.post(url), 401, "unauthorized")
    assert client.post(url, headers=bearer(ADMIN_KEY)).status_code == 200


def test_keys_are_compared_in_constant_time_against_every_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    compare = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return compare(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    rules = auth.policy({**KEYS, "DIGITS_RATE_LIMIT": ""})
    assert rules.identify(API_KEY) is not None  # the first key: no early exit all the same
    assert len(calls) == 3
    assert all(len(a) == len(b) == 32 for a, b in calls)  # digests: no length to leak
    calls.clear()
    assert rules.identify("wrong") is None
    assert len(calls) == 3


def test_a_key_in_both_lists_is_an_admin_key() -> None:
    rules = auth.policy(
        {"DIGITS_API_KEYS": API_KEY, "DIGITS_ADMIN_KEYS": API_KEY, "DIGITS_RATE_LIMIT": ""}
    )
    found = rules.identify(API_KEY)
    assert found is not None and found.admin


def test_key_id_is_a_hash_that_does_not_contain_the_key() -> None:
    key_id = auth.key_id(API_KEY)
    assert len(key_id) == 12 and key_id not in API_KEY and API_KEY not in key_id
    assert key_id == auth.key_id(API_KEY) != auth.key_id(OTHER_KEY)


def test_rate_limit_per_key_shared_by_api_processes(make_client: Client) -> None:
    first, second = (make_client(**KEYS, DIGITS_RATE_LIMIT="3/min") for _ in range(2))
    for client in (first, first, second):
        assert client.get("/v1/models", headers=bearer(API_KEY)).status_code == 200
    limited = first.get("/v1/models", headers=bearer(API_KEY))
    assert_error(limited, 429, "rate_limited")
    assert 1 <= int(limited.headers["Retry-After"]) <= 20  # one request every 20 s
    assert second.get("/v1/models", headers=bearer(API_KEY)).status_code == 429
    assert first.get("/v1/models", headers=bearer(OTHER_KEY)).status_code == 200
    assert first.get("/healthz").status_code == 200  # outside /v1: not counted


def test_rate_limit_per_client_address_without_keys(make_client: Client) -> None:
    client = make_client(DIGITS_RATE_LIMIT="2/hour")
    here, there = {"REMOTE_ADDR": "10.0.0.1"}, {"REMOTE_ADDR": "10.0.0.2"}
    assert [client.get("/v1/models", environ_base=here).status_code for _ in range(3)] == [
        200,
        200,
        429,
    ]
    assert client.get("/v1/models", environ_base=there).status_code == 200


def test_unauthorized_requests_spend_no_budget(make_client: Client) -> None:
    client = make_client(**KEYS, DIGITS_RATE_LIMIT="1/hour")
    for _ in range(3):
        assert client.get("/v1/models").status_code == 401
    assert client.get("/v1/models", headers=bearer(API_KEY)).status_code == 200


def test_a_malformed_rate_limit_stops_the_app_from_starting(redis_conn: Redis) -> None:
    with pytest.raises(ValueError, match="DIGITS_RATE_LIMIT"):
        create_app({"REDIS_URL": DB, "DIGITS_RATE_LIMIT": "lots"})


def test_openapi_describes_the_bearer_scheme_where_required(make_client: Client) -> None:
    document = make_client(**KEYS, DIGITS_RATE_LIMIT="100/s").get("/openapi.json").json
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["bearer"]["description"],
    }
    predict = document["paths"]["/v1/predict"]["post"]
    assert predict["security"] == [{"bearer": []}]
    assert {"401", "429"} <= predict["responses"].keys()
    assert "403" in document["paths"]["/v1/models/{version}/activate"]["post"]["responses"]
    assert "security" not in document["paths"]["/healthz"]["get"]
    assert "security" not in document["paths"]["/metrics"]["get"]


def test_openapi_requires_nothing_without_keys(make_client: Client) -> None:
    make_client(**KEYS).get("/openapi.json")  # must not leave its marks on shared data
    document = make_client().get("/openapi.json").json
    assert "bearer" in document["components"]["securitySchemes"]
    for operations in document["paths"].values():
        for operation in operations.values():
            assert "security" not in operation
            assert "401" not in operation["responses"]
