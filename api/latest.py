"""Latest-wins for one connection's drawings: a newer drawing supersedes an older unanswered one.

A person drawing wants the answer for what is on the pad now, never for a stroke ago. So each
drawing starts as soon as it arrives (up to IN_FLIGHT at once on one connection), and a slow
prediction never holds a newer drawing back; past IN_FLIGHT the newest waits for a free
place, replacing any drawing that waited before it. When a prediction ends, its answer goes
to the client only if no newer drawing has arrived meanwhile; otherwise the client is told
that drawing was superseded, and by which. Deciding and sending happen under one lock, so
once a drawing has arrived no answer to an older one is ever sent after it.

IN_FLIGHT bounds what one connection can make the service do at once (a connection is one
request to the rate limit and the queue bound): a prediction cannot be called back once its
job is queued, so a client that sends drawings faster than they are answered gets at most
IN_FLIGHT jobs running, the rest superseded before they start.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

IN_FLIGHT = 2  # predictions one connection may have running at once

Message = dict[str, Any]


@dataclass(frozen=True)
class Drawing:
    """One picture sent on a connection: its client's `tag` (echoed as `id`) and its bytes."""

    tag: Any
    picture: Any


class Latest:
    """Run a connection's drawings latest-wins.

    `predict(drawing)` returns the message answering it (an answer or an error; it must not
    raise), `send(message)` writes a message to the client, `spawn(work)` runs `work()`
    concurrently (a thread; a greenlet under gevent).
    """

    def __init__(
        self,
        predict: Callable[[Drawing], Message],
        send: Callable[[Message], None],
        spawn: Callable[[Callable[[], None]], None],
        in_flight: int = IN_FLIGHT,
    ) -> None:
        self.predict = predict
        self.send = send
        self.spawn = spawn
        self.in_flight = in_flight
        self._lock = threading.Lock()
        self._newest: Drawing | None = None  # the last drawing to arrive
        self._waiting: Drawing | None = None  # arrived while IN_FLIGHT were running
        self._running = 0

    def submit(self, drawing: Drawing) -> None:
        """Take a newly arrived drawing: start it, or let it wait in place of an older one."""
        with self._lock:
            self._newest = drawing
            if self._waiting is not None:
                self.send(superseded(self._waiting, drawing))
                self._waiting = None
            if self._running >= self.in_flight:
                self._waiting = drawing
                return
            self._running += 1
        self.spawn(lambda: self._run(drawing))

    def _run(self, drawing: Drawing | None) -> None:
        """Predict `drawing`, answer it if it is still the newest, then take any waiting one."""
        while drawing is not None:
            message = self.predict(drawing)
            with self._lock:
                newest = self._newest
                self.send(message if newest is drawing else superseded(drawing, newest))
                drawing, self._waiting = self._waiting, None
                if drawing is None:
                    self._running -= 1


def superseded(drawing: Drawing, by: Drawing | None) -> Message:
    """The message telling the client a drawing will not be answered: a newer one came."""
    return {"id": drawing.tag, "status": "superseded", "by": by.tag if by else None}
