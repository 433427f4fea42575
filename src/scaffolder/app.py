"""The Flask app factory."""

from __future__ import annotations

from contextlib import suppress
from http import HTTPStatus

from flask import Flask, Response, g, request

from scaffolder.api import actions_registry, autocomplete, catalog, health, metrics, scaffolder
from scaffolder.api.admission import TaskCreationGate
from scaffolder.api.auth import Authenticator, authenticate
from scaffolder.api.cors import CorsMiddleware, CorsPolicy
from scaffolder.api.errors import register_error_handlers
from scaffolder.remote_actions import build_remote_actions
from scaffolder.services import EXTENSION_KEY, Services, build_services
from scaffolder.settings import MAX_BODY_BYTES, Settings


def create_app(
    settings: Settings | None = None, *, services: Services | None = None, with_worker: bool = True
) -> Flask:
    """Build the app: services (database, catalog, registry, workers), routes, errors.

    Args:
        settings: configuration; defaults to `Settings()` (SQLite under ./var).
        services: an already built container (the CLI shares one with its own commands).
        with_worker: whether this process also runs tasks (``scaffolder serve`` does).
    """
    app = Flask("scaffolder")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False  # type: ignore[attr-defined]
    if services is None:
        services = build_services(settings or Settings(), with_worker=with_worker)
    app.extensions[EXTENSION_KEY] = services
    authenticator = Authenticator.from_settings(services.settings)
    remote_actions = build_remote_actions(services)
    cors = CorsPolicy.from_config(services.settings.raw)
    # Task creations one at a time (see scaffolder.api.admission), inside CORS.
    app.wsgi_app = TaskCreationGate(app.wsgi_app)  # type: ignore[method-assign]
    if cors is not None:
        # Outside Flask: preflights are answered before any route or the auth gate.
        app.wsgi_app = CorsMiddleware(app.wsgi_app, cors)  # type: ignore[method-assign]

    @app.before_request
    def _authenticate() -> None:
        if request.blueprint in ("scaffolder", "autocomplete", "catalog") and request.endpoint != (
            "scaffolder.openapi"
        ):
            plugin = "catalog" if request.blueprint == "catalog" else "scaffolder"
            g.scaffolder_caller = authenticate(authenticator, plugin)
        elif request.blueprint == actions_registry.bp.name:
            g.scaffolder_caller = authenticate(authenticator, remote_actions.plugin_id)

    @app.after_request
    def _reason_phrase(response: Response) -> Response:
        # Werkzeug upper-cases reason phrases ("404 NOT FOUND"); Node writes "404 Not Found",
        # and Backstage's clients put the phrase in the messages users see.
        code = response.status_code
        with suppress(ValueError):
            response.status = f"{code} {HTTPStatus(code).phrase}"
        return response

    for blueprint in (scaffolder.bp, autocomplete.bp, catalog.bp, health.bp, metrics.bp):
        app.register_blueprint(blueprint)
    actions_registry.mount(app, remote_actions)
    register_error_handlers(app)
    return app
