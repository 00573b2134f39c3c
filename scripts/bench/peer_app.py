"""The peer `digits bench peer` measures the service against: the same model, no queue.

What a user would write instead of the service: a plain Flask app that loads the weights once
per process and answers `POST /v1/predict` itself, with the service's answer fields. To
compare the queue and nothing else, it reads pixels with the service's own checks
(`api.payload`, `api.pixel_encoding`), computes the answer with the worker's own function
(`worker.jobs.answer`: calibrated probabilities, the uncertain flags and the not-a-digit
detector) and runs under the API's gunicorn settings. `digits bench peer` starts it with
the weights file in `DIGITS_PEER_WEIGHTS` and BLAS held to one thread per process, as
workers run (one process per core; more threads would only oversubscribe the cores).
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, request

import model
from api import errors, ids, payload, pixel_encoding
from api.encoding import OrjsonProvider
from config import settings
from worker import jobs, nondigit

WEIGHTS = "DIGITS_PEER_WEIGHTS"


def create_app(weights: str | None = None) -> Flask:
    """Build the peer: the network at `weights` (else $DIGITS_PEER_WEIGHTS) in this process."""
    network = model.load(weights or os.environ[WEIGHTS])
    nondigit.shipped()  # loaded before the first request, as a worker's preload does
    max_images = settings.load()["DIGITS_MAX_IMAGES"]
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    errors.register(app)

    @app.post("/v1/predict")
    def predict() -> Any:
        pixels = payload.parse_images(request.get_data(), max_images)
        pixels = pixel_encoding.apply(pixels, pixel_encoding.ENCODINGS[0], lambda i: f"images[{i}]")
        probabilities, uncertain = jobs.answer(network, pixels)
        return {
            "job_id": ids.new(),
            "status": "finished",
            "labels": probabilities.argmax(axis=1),
            "probabilities": probabilities,
            "confidence": probabilities.max(axis=1),
            "uncertain": uncertain,
            "model_version": network.version,
        }

    return app
