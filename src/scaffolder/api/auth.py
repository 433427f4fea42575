"""The auth gate: Backstage's default policy, with static tokens as service principals."""

from __future__ import annotations

import hmac
import re

from flask import g, request

from scaffolder.errors import AuthenticationError
from scaffolder.settings import Settings
from scaffolder.tasks.service import Caller

_BEARER = re.compile(r"^Bearer[ ]+(\S+)$", re.IGNORECASE)


def authenticate(settings: Settings) -> Caller:
    """The caller of this request, or `AuthenticationError` (401)."""
    header = request.headers.get("Authorization")
    match = _BEARER.match(header) if header else None
    token = match.group(1) if match else None
    if token is not None:
        for static in settings.static_tokens:
            if hmac.compare_digest(static.token.encode(), token.encode()):
                return Caller(token=token, subject=static.subject)
    if settings.auth_disabled:
        # With the default policy off, an unknown token is still an error (as upstream).
        if token is not None and header is not None:
            raise AuthenticationError("Illegal token")
        return Caller()
    if token is None:
        raise AuthenticationError("Missing credentials")
    raise AuthenticationError("Illegal token")


def current_caller() -> Caller:
    """The caller authenticated for this request."""
    caller: Caller = g.scaffolder_caller
    return caller
