"""Dynamic batching of sync predictions: concurrent requests of one process share one job.

A request that arrives while other requests of the same process wait for their answers
opens a group, or joins the open one. The group goes to the queue as one RQ job when it
holds DIGITS_MAX_BATCH images or DIGITS_BATCH_WINDOW_MS after it opened, whichever comes
first. A request with no company in flight goes at once: the window only delays work that
has something to gain from it, and never by more than the window.

A group sent while this process's previous group still waits in the queue joins that one
(store.groups): the queue wait, not a timer, then sets how large jobs grow under load.

Every caller keeps a job id of its own. The worker writes each caller's share of the
group's output under that id, so waiting, `GET /v1/jobs/<id>` and the 202 fallback work as
for any job, and no caller sees another's images or answers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from flask import Flask, current_app
from numpy.typing import NDArray

from api import dispatch, ids
from api.services import Services
from store import groups

EXTENSION = "digits.microbatch"


@dataclass
class Group:
    """Requests that will share one job."""

    members: list[tuple[str, NDArray[np.uint8]]] = field(default_factory=list)
    images: int = 0
    company: bool = False  # other requests were in flight when it opened
    enqueued: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class MicroBatcher:
    """Group concurrent requests into jobs of at most `max_images` images.

    `enqueue(members, company)` puts one group on the queue; it runs in the thread of the
    group's first request (the leader), which then releases the others.
    """

    def __init__(
        self, enqueue: Callable[[groups.Members, bool], object], window: float, max_images: int
    ) -> None:
        self.enqueue = enqueue
        self.window = window  # seconds a group stays open for company
        self.max_images = max_images
        self._lock = threading.Condition()
        self._open: Group | None = None
        self._in_flight = 0  # requests between `submit` and the end of their block

    @contextmanager
    def submit(self, pixels: NDArray[np.uint8]) -> Iterator[str]:
        """Queue the images, in company when there is some; yield the caller's job id.

        The caller counts as in flight (company for later requests) until its block ends:
        keep waiting for the answer inside it.
        """
        with self._lock:
            company = self._in_flight > 0
            self._in_flight += 1
        try:
            job_id = ids.new()
            self._join(job_id, pixels, company)
            yield job_id
        finally:
            with self._lock:
                self._in_flight -= 1

    def _join(self, job_id: str, pixels: NDArray[np.uint8], company: bool) -> None:
        """Add the request to a group; lead and send the group, or wait until its leader has."""
        with self._lock:
            group, lead = self._place(len(pixels), company)
            group.members.append((job_id, pixels))
            group.images += len(pixels)
            if group is self._open and group.images >= self.max_images:
                self._close()
            if lead:
                self._hold(group)
        if lead:
            self._send(group)
        else:
            group.enqueued.wait()
        if group.error is not None:
            raise group.error

    def _place(self, images: int, company: bool) -> tuple[Group, bool]:
        """Return the group for a request of `images` images, and whether the request leads it."""
        group = self._open
        if group is not None and group.images + images <= self.max_images:
            return group, False
        if group is not None:
            self._close()  # too full for this request: send it now, start the next one
        group = Group(company=company)
        if company and images < self.max_images:
            self._open = group
        return group, True

    def _hold(self, group: Group) -> None:
        """Keep an open group open until it fills or its window ends (the lock is held)."""
        deadline = time.monotonic() + self.window
        while self._open is group:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._close()
                break
            self._lock.wait(remaining)

    def _close(self) -> None:
        """Stop the open group taking members and wake its leader (the lock is held)."""
        self._open = None
        self._lock.notify_all()

    def _send(self, group: Group) -> None:
        try:
            self.enqueue(group.members, group.company)
        except Exception as error:  # every member must learn of it, not only the leader
            group.error = error
        finally:
            group.enqueued.set()


class GroupQueue:
    """Send groups to the queue: into this process's last group while no worker has claimed
    it (and it has room), else as a new job."""

    def __init__(self, services: Services, max_images: int) -> None:
        self.services = services
        self.max_images = max_images
        self._lock = threading.Lock()
        self._waiting: tuple[str, int] | None = None  # (group id, images) last sent as a job

    def send(self, members: groups.Members, company: bool) -> None:
        """Queue the members' images, joining the waiting group when it still takes them.

        Without `company` (no other request of this process waits for an answer) the last
        group was answered or given up on: joining it would most likely be a wasted round trip.
        """
        images = sum(len(pixels) for _, pixels in members)
        group_id = self._reserve(images) if company else None
        ttl = self.services.config["DIGITS_RESULT_TTL"]
        if group_id is not None and groups.join(self.services.redis, group_id, members, ttl):
            return
        # Named before it is queued, so requests that come meanwhile can join it; a join that
        # runs before it exists (or after a failed submit) finds no open group and goes alone.
        with self._lock:
            self._waiting = (members[0][0], images)
        dispatch.submit_group(self.services, members)

    def _reserve(self, images: int) -> str | None:
        """Count `images` into the waiting group and return its id, if it has room."""
        with self._lock:
            if self._waiting is None:
                return None
            group_id, held = self._waiting
            if held + images > self.max_images:
                self._waiting = None
                return None
            self._waiting = (group_id, held + images)
            return group_id


def install(app: Flask, services: Services) -> None:
    """Give the app a batcher that sends its groups through a GroupQueue."""
    config = services.config
    max_images = max(1, int(config["DIGITS_MAX_BATCH"]))
    app.extensions[EXTENSION] = MicroBatcher(
        GroupQueue(services, max_images).send,
        window=float(config["DIGITS_BATCH_WINDOW_MS"]) / 1000,
        max_images=max_images,
    )


def batcher() -> MicroBatcher:
    """Return the current app's batcher."""
    found: MicroBatcher = current_app.extensions[EXTENSION]
    return found
