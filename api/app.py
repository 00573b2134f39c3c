"""The Flask app factory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from api import batches, errors, health, images, jobs, microbatch, models, openapi, services
from api import config as settings
from api.encoding import OrjsonProvider

BLUEPRINTS = (health.bp, jobs.bp, batches.bp, models.bp, openapi.bp, images.bp)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: settings (defaults, environment, overrides), Redis and queues, routes."""
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    app.config.update(settings.load(config))
    app.extensions["digits"] = services.connect(app.config)
    microbatch.install(app, app.extensions["digits"])
    errors.register(app)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    return app
