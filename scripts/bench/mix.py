"""The soak's mix of work (`digits bench soak`): what each client sends, and the answers counted.

Single images and 16-image requests to /v1/predict, jobs followed to their result, malformed
requests, and now and then a 200-row CSV batch followed to its submission.csv, back to back.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import requests

from formats.kaggle_csv import PIXEL_NAMES
from formats.mnist import N_PIXELS

TIMEOUT = 30.0  # seconds a single request may take before it counts as failed


@dataclass
class Answers:
    """Answers counted by (route, status); a failed connection counts as status 0."""

    counts: Counter[tuple[str, int]] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, route: str, status: int) -> None:
        """Count one answer."""
        with self.lock:
            self.counts[route, status] += 1

    def total(self) -> int:
        """Return how many answers there were."""
        return sum(self.counts.values())

    def server_errors(self) -> int:
        """Return how many answers were 5xx or failed connections."""
        return sum(n for (_, status), n in self.counts.items() if status == 0 or status >= 500)


class Client:
    """One thread's session: sends the mix of work and counts every answer."""

    def __init__(self, url: str, answers: Answers, seed: int) -> None:
        self.url = url
        self.answers = answers
        self.session = requests.Session()
        self.random = random.Random(seed)
        pixels = np.random.default_rng(seed).integers(0, 256, (200, N_PIXELS), dtype=np.uint8)
        self.images = pixels.tolist()
        self.csv = csv_bytes(pixels)
        self.mix: list[tuple[float, Callable[[], None]]] = [
            (0.60, self.predict_one),
            (0.15, self.predict_many),
            (0.15, self.job),
            (0.07, self.malformed),
            (0.03, self.batch),
        ]

    def run(self, until: float) -> None:
        """Send work until the monotonic clock reaches `until`."""
        actions = [action for _, action in self.mix]
        weights = [weight for weight, _ in self.mix]
        while time.monotonic() < until:
            self.random.choices(actions, weights)[0]()

    def call(self, route: str, method: str, path: str, **kwargs: Any) -> requests.Response | None:
        """Send one request and count its answer; None when the connection failed."""
        try:
            response = self.session.request(method, self.url + path, timeout=TIMEOUT, **kwargs)
        except requests.RequestException:
            self.answers.add(route, 0)
            return None
        self.answers.add(route, response.status_code)
        return response

    def predict_one(self) -> None:
        """One image, waiting for the label."""
        image = self.random.choice(self.images)
        self.call("POST /v1/predict (1)", "POST", "/v1/predict", json={"pixels": image})

    def predict_many(self) -> None:
        """Sixteen images, waiting for the labels."""
        start = self.random.randrange(len(self.images) - 16)
        body = {"images": self.images[start : start + 16]}
        self.call("POST /v1/predict (16)", "POST", "/v1/predict", json=body)

    def job(self) -> None:
        """Queue four images, then poll until they are labelled."""
        body = {"images": self.random.sample(self.images, 4)}
        accepted = self.call("POST /v1/jobs", "POST", "/v1/jobs", json=body)
        if accepted is not None and accepted.status_code == 202:
            self.follow("GET /v1/jobs/<id>", accepted.json()["status_url"], "finished")

    def malformed(self) -> None:
        """A request the API must refuse with a 4xx."""
        body = {"pixels": self.random.choice(self.images)[:700]}
        self.call("POST /v1/predict (bad)", "POST", "/v1/predict", json=body)

    def batch(self) -> None:
        """Upload a 200-row CSV, follow it, download its submission."""
        headers = {"Content-Type": "text/csv"}
        accepted = self.call(
            "POST /v1/batches", "POST", "/v1/batches", data=self.csv, headers=headers
        )
        if accepted is None or accepted.status_code != 202:
            return
        body = accepted.json()
        if self.follow("GET /v1/batches/<id>", body["status_url"], "finished"):
            self.call("GET submission.csv", "GET", body["submission_url"])

    def follow(self, route: str, path: str, status: str, polls: int = 200) -> bool:
        """Poll a status URL until it reports `status`; say whether it did."""
        for _ in range(polls):
            response = self.call(route, "GET", path)
            if response is None or response.status_code != 200:
                return False
            if response.json()["status"] == status:
                return True
            time.sleep(0.05)
        return False


def csv_bytes(pixels: np.ndarray) -> bytes:
    """Return a Kaggle test.csv of `pixels`."""
    rows = (",".join(map(str, row)) for row in pixels.tolist())
    return ("\n".join([",".join(PIXEL_NAMES), *rows]) + "\n").encode()
