"""The Flask app factory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from api import (
    access,
    auth,
    batches,
    errors,
    health,
    images,
    jobs,
    live,
    metrics,
    microbatch,
    models,
    openapi,
    services,
    streams,
    upload,
)
from api.encoding import OrjsonProvider
from config import settings
from store import logs

BLUEPRINTS = (
    health.bp,
    jobs.bp,
    batches.bp,
    models.bp,
    openapi.bp,
    images.bp,
    metrics.bp,
    streams.bp,
    live.bp,
)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: settings (defaults, environment, overrides), Redis and queues, routes."""
    app = Flask(__name__)
    app.request_class = upload.Request  # a streamed body over the limit is a 413, not cut
    app.json = OrjsonProvider(app)
    app.config.update(settings.load(config))
    logs.configure(app.config["DIGITS_LOG_LEVEL"])
    app.extensions["digits"] = services.connect(app.config)
    microbatch.install(app, app.extensions["digits"])
    errors.register(app)
    access.register(app)  # first: its clock also covers the key check
    auth.register(app)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    return app
