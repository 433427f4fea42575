"""{{ cookiecutter.slug }}: the HTTP app, built by a factory so tests and gunicorn share it."""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask, jsonify

SERVICE_NAME = "{{ cookiecutter.slug }}"
HEALTH_CHECK_PATH = "{{ cookiecutter.health_check_path }}"


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app; ``config`` overrides what the environment says (tests use it)."""
    app = Flask(__name__)
    app.config.update(
        SERVICE_NAME=os.environ.get("SERVICE_NAME", SERVICE_NAME),
        VERSION=os.environ.get("APP_VERSION", "dev"),
    )
    app.config.update(config or {})
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"))

    @app.get(HEALTH_CHECK_PATH)
    def health() -> Any:
        # The ALB target group and the container HEALTHCHECK both probe this: keep it cheap
        # and independent of downstream dependencies, or one slow database drains every task.
        return jsonify(status="ok")

    @app.get("/")
    def index() -> Any:
        return jsonify(service=app.config["SERVICE_NAME"], version=app.config["VERSION"])

    return app
