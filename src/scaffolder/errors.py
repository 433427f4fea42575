"""The one error root and its semantic subclasses.

Nothing here knows about HTTP: `api/errors.py` maps each class to Backstage's status code and
error body. The class names are the `error.name` values Backstage's clients see, so they must
not change.
"""

from __future__ import annotations

from typing import Any


class ScaffolderError(Exception):
    """Root of every error this project raises on purpose."""

    #: The `error.name` written in Backstage's error body.
    name: str = "Error"

    def __init__(self, message: str, *, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.message = message
        if cause is not None:
            self.__cause__ = cause

    def to_json(self) -> dict[str, Any]:
        """Serialize the way Backstage's `serializeError` does: name, message, cause."""
        body: dict[str, Any] = {"name": self.name, "message": self.message}
        cause = self.__cause__
        if cause is not None:
            body["cause"] = {
                "name": getattr(cause, "name", type(cause).__name__),
                "message": str(cause),
            }
        return body


class InputError(ScaffolderError):
    """The caller sent something invalid (HTTP 400)."""

    name = "InputError"


class AuthenticationError(ScaffolderError):
    """No credentials, or credentials we do not accept (HTTP 401)."""

    name = "AuthenticationError"


class NotAllowedError(ScaffolderError):
    """The caller is known but may not do this (HTTP 403)."""

    name = "NotAllowedError"


class NotFoundError(ScaffolderError):
    """The thing asked for does not exist (HTTP 404)."""

    name = "NotFoundError"


class ConflictError(ScaffolderError):
    """The request conflicts with the current state (HTTP 409)."""

    name = "ConflictError"


class TaskCancelledError(ScaffolderError):
    """Raised inside a run when its task has been cancelled."""

    name = "Error"


class ValidationErrors(ScaffolderError):
    """JSON-schema validation failures, answered as 400 ``{"errors": [...]}``.

    Backstage answers parameter and secrets validation failures with this bare shape instead
    of its usual error body.
    """

    name = "InputError"

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(str(e.get("stack", e.get("message"))) for e in errors))
        self.errors = errors
