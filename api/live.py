"""Predictions as you draw over one WebSocket: `GET /v1/predict/live` (flask-sock).

The client sends each drawing as a text message `{"id": ..., "image": "data:image/png;
base64,..."}` (a canvas's `toDataURL()`; `id` is any JSON value, echoed back). Each answer is
the body of `POST /v1/predict/image` plus that `id`: `labels`, `probabilities`,
`confidence`, `uncertain`, `model_version`, `job_id`, `pixels`, `box`, `status` "finished"
(or "queued" with a `status_url` when `?wait=` ran out), or `{"id", "error": {"code",
"message"}}` with the error that route would give. A newer drawing supersedes an older one
not yet answered (`api.latest`): the older gets `{"id", "status": "superseded", "by"}`.

Why a WebSocket and not SSE plus POST: one connection carries drawings in and answers out,
so latest-wins is the state of one handler in one process. With SSE plus POST each drawing
is a request that may reach another gunicorn process than the event stream, so which drawing
is the newest would have to be agreed through Redis. Under the gevent worker `digits api`
runs, an open connection is two greenlets (simple-websocket's reader and this handler).

The handshake is an ordinary /v1 request: keys and the rate limit apply as to any other
(`api.auth`; a browser, which cannot set headers on a WebSocket, sends `?access_token=`), and
each drawing spends one request of the rate budget.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import orjson
from flask import Blueprint, copy_current_request_context
from flask.blueprints import BlueprintSetupState
from flask_sock import Sock
from simple_websocket import ConnectionClosed, Server

from api import auth, errors, images
from api.encoding import OPTIONS
from api.errors import ApiError
from api.inputs import LiveQuery
from api.latest import Drawing, Latest, Message
from api.openapi import Operation
from api.services import Services, services

PING = 25.0  # seconds between pings: proxies keep the connection, a vanished client is noticed
IDLE_CLOSE = 1000  # normal closure: the page reconnects when it is drawn on again

SHAPE = '{"id": 1, "image": "data:image/png;base64,..."}'

bp = Blueprint("live", __name__, url_prefix="/v1")
sock = Sock()


@bp.record_once
def _options(state: BlueprintSetupState) -> None:
    config = state.app.config
    options = {"ping_interval": PING, "max_message_size": config["MAX_CONTENT_LENGTH"]}
    config.setdefault("SOCK_SERVER_OPTIONS", options)


@sock.route("/predict/live", bp=bp)
@Operation(
    {101: ("switched to the WebSocket protocol (Upgrade: websocket)", {})},
    errors=(400, 503),
    query=LiveQuery,
    description=(
        f"Send each drawing as a text message {SHAPE}; each answer is the body of "
        "POST /v1/predict/image with the drawing's id, or {id, error}. A drawing superseded by "
        "a newer one before its answer gets {id, status: superseded, by}."
    ),
)
def predict_live(ws: Server) -> None:
    """Answer each drawing on the connection, latest-wins, until it closes or stays idle."""
    found = services()
    send = _sender(ws)
    latest = Latest(_predictor(found), send, _spawn)
    while True:
        text = ws.receive(timeout=found.config["DIGITS_LIVE_IDLE"])
        if text is None:
            ws.close(IDLE_CLOSE, "no drawing for DIGITS_LIVE_IDLE seconds")
            return
        try:
            drawing = read(text)
            auth.charge()
        except ApiError as error:
            send({"id": _tag(text), **_error(error)})
            continue
        latest.submit(drawing)


def read(text: str | bytes) -> Drawing:
    """Parse one message into a Drawing; raise ApiError 400 or 422 saying what to send."""
    if isinstance(text, bytes):
        raise ApiError(400, "invalid_message", f"send each drawing as text: {SHAPE}")
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        raise ApiError(400, "invalid_json", f"the message is not JSON ({error}): {SHAPE}") from None
    if not isinstance(document, dict):
        raise ApiError(400, "invalid_message", f"the message must be a JSON object: {SHAPE}")
    return Drawing(tag=document.get("id"), picture=document)


def _tag(text: str | bytes) -> Any:
    """The `id` of a message, when it has one, to echo with its error."""
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return document.get("id") if isinstance(document, dict) else None


def _predictor(found: Services) -> Callable[[Drawing], Message]:
    def predict(drawing: Drawing) -> Message:
        try:
            body, _, _ = images.answer(found, images.picture_field(drawing.picture))
        except Exception as error:  # the client gets the error HTTP would give, not a hang-up
            body = _error(error)
        return {"id": drawing.tag, **body}

    return predict


def _error(error: Exception) -> Message:
    """The `{"error": {"code", "message"}}` body the HTTP routes would answer `error` with."""
    found: Message = orjson.loads(errors.handle(error).get_data())
    return found


def _sender(ws: Server) -> Callable[[Message], None]:
    lock = threading.Lock()  # messages from several predictions must not interleave

    def send(message: Message) -> None:
        try:
            with lock:
                ws.send(orjson.dumps(message, option=OPTIONS).decode())
        except (ConnectionClosed, OSError):
            pass  # the client went: nothing is waiting for this answer

    return send


def _spawn(work: Callable[[], None]) -> None:
    """Run `work` in its own thread (a greenlet under gevent) inside this request's context."""
    threading.Thread(target=copy_current_request_context(work), daemon=True).start()
