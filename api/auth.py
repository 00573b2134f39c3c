"""API keys and rate limits on the /v1 routes.

- `DIGITS_API_KEYS` (comma-separated): when set, every /v1 route needs
  `Authorization: Bearer <key>`; an admin key works as well.
- `DIGITS_ADMIN_KEYS`: keys that may also switch the model. Once any key is configured,
  activation needs one of these; with API keys but no admin keys it is closed over HTTP
  (`digits activate` still works where Redis is reachable). With no keys at all the API
  is open, activation included: the set-up for one machine or a trusted network.
- `DIGITS_RATE_LIMIT` (e.g. `100/s`): a budget per key, or per client address for
  requests without one; off when empty.

A browser cannot set headers on a WebSocket or an EventSource, so the routes it opens that
way (QUERY_KEY_ENDPOINTS) also take the key as `?access_token=` (RFC 6750, section 2.3)
when no Authorization header is sent; every other route takes the header only, and logs
mask the parameter as they mask the header.

The page at `/`, its static files, health, metrics and the OpenAPI document stay open.
Keys are compared by their SHA-256 digests with `hmac.compare_digest`, against every
configured key, so neither timing nor the order of the list tells which one matched.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, g, request

from api import ratelimit
from api.errors import ApiError
from api.services import services

EXTENSION = "digits.auth"
PROTECTED = "/v1/"
# The routes that switch the model or create a stream.
ADMIN_ENDPOINTS = frozenset({"models.activate", "streams.create_stream"})
# Routes a browser opens as a WebSocket or an EventSource: no way to send a header.
QUERY_KEY_ENDPOINTS = frozenset({"live.predict_live", "batches.events"})
QUERY_KEY = "access_token"
REALM = 'Bearer realm="digits"'


@dataclass(frozen=True)
class Key:
    """A configured key: its digest, the id logs show instead of it, and its role."""

    digest: bytes
    key_id: str
    admin: bool


@dataclass(frozen=True)
class Policy:
    """Who may call what, and how often."""

    keys: tuple[Key, ...]
    keys_required: bool  # API keys are configured: /v1 needs one
    admin_required: bool  # any key is configured: activation needs an admin key
    rate: ratelimit.Rate | None

    def identify(self, token: str) -> Key | None:
        """Return the key `token` is, comparing it with every key in constant time."""
        digest = _digest(token)
        found = None
        for key in self.keys:
            if hmac.compare_digest(digest, key.digest):
                found = key
        return found


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def key_id(token: str) -> str:
    """Return the short id of a key that logs may show (a hash, never the key)."""
    return hashlib.sha256(b"digits key id:" + token.encode()).hexdigest()[:12]


def _split(text: str) -> list[str]:
    return [key.strip() for key in text.split(",") if key.strip()]


def policy(config: dict[str, Any]) -> Policy:
    """Read the keys and the rate limit from the settings."""
    api_keys = _split(config["DIGITS_API_KEYS"])
    admin_keys = _split(config["DIGITS_ADMIN_KEYS"])
    # Admin keys last: a key listed in both lists is an admin key.
    keys = [Key(_digest(key), key_id(key), False) for key in api_keys]
    keys += [Key(_digest(key), key_id(key), True) for key in admin_keys]
    return Policy(
        keys=tuple(keys),
        keys_required=bool(api_keys),
        admin_required=bool(keys),
        rate=ratelimit.parse(config["DIGITS_RATE_LIMIT"]),
    )


def register(app: Flask) -> None:
    """Check keys and budgets before every /v1 request."""
    app.extensions[EXTENSION] = policy(app.config)
    app.before_request(check)


def check() -> None:
    """Raise 401, 403 or 429 for a /v1 request that may not go ahead; note its key id."""
    if not request.path.startswith(PROTECTED):
        return
    rules: Policy = current_app.extensions[EXTENSION]
    token = _token()
    key = rules.identify(token) if token else None
    g.key_id = key.key_id if key else None
    admin_route = request.endpoint in ADMIN_ENDPOINTS
    if key is None and (rules.admin_required if admin_route else rules.keys_required):
        raise _unauthorized(token is not None, admin_route)
    if admin_route and rules.admin_required and not (key and key.admin):
        raise _forbidden(rules)
    charge()


def charge() -> None:
    """Spend one request of the rate budget of this request's key (or address); raise 429.

    A long-lived request (a WebSocket) calls it again for each piece of work it takes.
    """
    rules: Policy = current_app.extensions[EXTENSION]
    if rules.rate is not None:
        key_id = g.get("key_id")
        _spend(key_id if key_id else f"ip:{request.remote_addr}", rules.rate)


def _token() -> str | None:
    """The key sent as `Authorization: Bearer`, else as ?access_token= where that is taken."""
    header = request.headers.get("Authorization")
    if header is None and request.endpoint in QUERY_KEY_ENDPOINTS:
        return request.args.get(QUERY_KEY) or None
    return _bearer(header or "")


def _bearer(header: str) -> str | None:
    match = re.fullmatch(r"\s*bearer\s+(\S+)\s*", header, re.IGNORECASE)
    return match[1] if match else None


def _unauthorized(presented: bool, admin_route: bool) -> ApiError:
    needed = "an admin key" if admin_route else "an API key"
    if presented:
        message = f"the key sent is not valid: this route needs {needed}"
        challenge = f'{REALM}, error="invalid_token"'
    else:
        message = f"this route needs {needed}: send the header Authorization: Bearer <key>"
        challenge = REALM
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": challenge})


def _forbidden(rules: Policy) -> ApiError:
    if not any(key.admin for key in rules.keys):
        message = (
            "no admin key is configured (DIGITS_ADMIN_KEYS): use `digits activate` to switch "
            "the model, DIGITS_STREAMS to declare streams"
        )
    else:
        message = "switching the model or creating a stream needs an admin key, not an API key"
    return ApiError(403, "forbidden", message)


def _spend(identity: str, rate: ratelimit.Rate) -> None:
    wait = ratelimit.spend(services().redis, identity, rate)
    if wait > 0:
        raise ApiError(
            429,
            "rate_limited",
            f"more than {rate} for this {_who(identity)}; retry in {wait:.2f} s",
            retry_after=ratelimit.retry_after(wait),
        )


def _who(identity: str) -> str:
    return "client address" if identity.startswith("ip:") else "key"


def describe(document: dict[str, Any], app: Flask) -> dict[str, Any]:
    """Return the OpenAPI document with the bearer scheme, required where this app requires it."""
    rules: Policy = app.extensions[EXTENSION]
    document = copy.deepcopy(document)  # the caller's stays as it was
    document["components"]["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "an API key (DIGITS_API_KEYS) or, to switch models, an admin key",
        }
    }
    admin_paths = {
        openapi_path(rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.endpoint in ADMIN_ENDPOINTS
    }
    error = {"$ref": "#/components/responses/Error"}
    for path, operations in document["paths"].items():
        if not path.startswith(PROTECTED):
            continue
        admin = path in admin_paths
        for operation in operations.values():
            if rules.admin_required if admin else rules.keys_required:
                operation["security"] = [{"bearer": []}]
                operation["responses"]["401"] = error
            if admin and rules.admin_required:
                operation["responses"]["403"] = error
            if rules.rate is not None:
                operation["responses"]["429"] = error
    return document


def openapi_path(rule: str) -> str:
    """Turn Flask's `/v1/models/<version>/activate` into OpenAPI's `/v1/models/{version}/...`."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)
