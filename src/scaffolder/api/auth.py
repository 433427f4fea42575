"""The auth gate: Backstage's default policy (CONTRACT §10.1).

A bearer token is tried, in upstream's order, as a Backstage plugin token addressed to the
plugin called (when ``backend.auth.backstage`` is configured; the calling plugin's keys are
on Backstage), as a Backstage user token (verified against Backstage's JWKS, likewise), then
as a static ``externalAccess`` token. With
``dangerouslyDisableDefaultAuthPolicy`` a request without a token is the "none" principal;
a token that is sent must still be valid, as upstream.
"""

from __future__ import annotations

import hmac
import re

from flask import g, request

from scaffolder.errors import AuthenticationError, NotAllowedError
from scaffolder.integrations.backstage_tokens import (
    PluginIdentity,
    PluginTokenVerifier,
    UserTokenVerifier,
)
from scaffolder.settings import Settings, StaticToken
from scaffolder.tasks.service import Caller

_BEARER = re.compile(r"^Bearer[ ]+(\S+)$", re.IGNORECASE)


class Authenticator:
    """Turns an ``Authorization`` header into a `Caller`, or a 401/403."""

    def __init__(
        self,
        settings: Settings,
        user_tokens: UserTokenVerifier | None = None,
        plugin_tokens: PluginTokenVerifier | None = None,
    ) -> None:
        self._disabled = settings.auth_disabled
        self._static = settings.static_tokens
        self._user_tokens = user_tokens
        self._plugin_tokens = plugin_tokens

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        """The gate for these settings (its JWKS client fetches nothing until a token comes)."""
        identity = settings.backstage_identity
        if identity is None:
            return cls(settings)
        return cls(settings, UserTokenVerifier(identity), PluginTokenVerifier(identity))

    @property
    def disabled(self) -> bool:
        """Whether a request without a token is let in (as the none principal)."""
        return self._disabled

    def authenticate(self, header: str | None, plugin: str) -> Caller:
        """The caller presenting ``header`` to ``plugin`` (``scaffolder`` or ``catalog``).

        Raises:
            AuthenticationError: no token where one is needed, or a token we do not accept.
            NotAllowedError: a static token whose access restrictions leave out ``plugin``.
        """
        match = _BEARER.match(header) if header else None
        token = match.group(1) if match else None
        if token is None:
            if self._disabled:
                return Caller()
            raise AuthenticationError("Missing credentials")
        if self._plugin_tokens is not None:
            plugin_identity = self._plugin_tokens.verify(token, audience=plugin)
            if plugin_identity is not None:
                return self._plugin_caller(plugin_identity)
        if self._user_tokens is not None:
            identity = self._user_tokens.verify(token)
            if identity is not None:
                if identity.limited:
                    raise AuthenticationError("Illegal limited user token")
                return Caller(
                    user_ref=identity.user_ref,
                    token=token,
                    ownership_refs=identity.ownership_refs,
                )
        static = self._static_token(token)
        if static is not None:
            if static.plugins is not None and plugin not in static.plugins:
                allowed = ", ".join(f"'{p}'" for p in static.plugins)
                raise NotAllowedError(f"This token's access is restricted to plugin(s) {allowed}")
            return Caller(token=token, subject=static.subject)
        raise AuthenticationError("Illegal token")

    def _plugin_caller(self, identity: PluginIdentity) -> Caller:
        """A plugin's call: a service, or the user it acts for (its ``obo`` token).

        The plugin token itself is not kept as the caller's token: its audience is us, so it
        is of no use to pass on.
        """
        subject = f"plugin:{identity.plugin_id}"
        if identity.on_behalf_of is None:
            return Caller(subject=subject)
        user = self._user_tokens.verify(identity.on_behalf_of) if self._user_tokens else None
        if user is None:
            raise AuthenticationError("Invalid user token in plugin token obo claim")
        return Caller(user_ref=user.user_ref, subject=subject, ownership_refs=user.ownership_refs)

    def _static_token(self, token: str) -> StaticToken | None:
        found = None
        for static in self._static:
            # Every entry is compared, so the time taken does not tell which one matched.
            if hmac.compare_digest(static.token.encode(), token.encode()) and found is None:
                found = static
        return found


def authenticate(authenticator: Authenticator, plugin: str) -> Caller:
    """Authenticate the current request for ``plugin``."""
    return authenticator.authenticate(request.headers.get("Authorization"), plugin)


def current_caller() -> Caller:
    """The caller authenticated for this request."""
    caller: Caller = g.scaffolder_caller
    return caller
