"""Backstage user and plugin tokens, verified against the JWKS Backstage publishes.

Backstage's auth backend signs a user token (header ``typ: vnd.backstage.user``, usually ES256
with a ``kid``) whose ``sub`` is the user's entity ref and ``ent`` its ownership refs; the
public keys are at ``<backend.baseUrl>/api/auth/.well-known/jwks.json``. We verify the way
Backstage's own ``UserTokenHandler`` does (which tokens count as user tokens, the messages),
and also check ``aud`` and ``iss``, which upstream leaves unchecked.

A Backstage backend plugin calling another service signs a plugin token itself (header
``typ: vnd.backstage.plugin``; ``sub`` the calling plugin, ``aud`` the target plugin, maybe
``obo`` a limited user token of the user it acts for), with keys at
``<backend.baseUrl>/api/<sub>/.backstage/auth/v1/jwks.json``; it is verified as upstream's
``PluginTokenHandler`` does (CONTRACT §10.1). PyJWT errors stay here.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jwt

from scaffolder.errors import AuthenticationError
from scaffolder.settings import BackstageIdentity

log = logging.getLogger(__name__)

USER_TOKEN_TYPE = "vnd.backstage.user"  # noqa: S105 - a JWT typ, not a secret
LIMITED_USER_TOKEN_TYPE = "vnd.backstage.limited-user"  # noqa: S105
PLUGIN_TOKEN_TYPE = "vnd.backstage.plugin"  # noqa: S105
#: Backstage's rule for a plugin token's subject (upstream's ALLOWED_PLUGIN_ID_PATTERN).
PLUGIN_ID_PATTERN = re.compile(r"^[a-z0-9_-]+$", re.IGNORECASE)
#: How many calling plugins' key sets are kept (least recently used ones are dropped).
MAX_PLUGIN_KEY_SETS = 32
#: How long fetched keys are used before the JWKS is read again.
JWKS_CACHE_SECONDS = 300
#: How long one JWKS request may take.
JWKS_TIMEOUT_SECONDS = 5
#: A token signed with an unknown ``kid`` refetches the JWKS at most this often, so that
#: made-up kids cannot make us hammer Backstage.
JWKS_REFRESH_COOLDOWN_SECONDS = 30
#: Clock difference tolerated on ``exp`` and ``iat`` between Backstage and us.
CLOCK_TOLERANCE_SECONDS = 5

_FAILED = "Failed user token verification"
_PLUGIN_FAILED = "Failed plugin token verification"


@dataclass(frozen=True, kw_only=True)
class UserIdentity:
    """A verified user token: who (``sub``) and the refs it owns through (``ent``)."""

    user_ref: str
    ownership_refs: tuple[str, ...] = ()
    limited: bool = False


class UserTokenVerifier:
    """Verifies Backstage user tokens; one per app, its key cache shared by all requests."""

    def __init__(self, identity: BackstageIdentity) -> None:
        self._identity = identity
        self._keys = KeySet(identity.jwks_url)

    def verify(self, token: str) -> UserIdentity | None:
        """The identity in ``token``, or ``None`` when it is not a Backstage user token.

        Raises:
            AuthenticationError: a user token that does not verify (401
                ``Failed user token verification``), or one without ``sub``.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None
        typ = header.get("typ")
        if typ == USER_TOKEN_TYPE:
            limited = False
        elif typ == LIMITED_USER_TOKEN_TYPE:
            limited = True
        elif typ is None or typ == "JWT":
            # Older user tokens carry no typ; upstream recognises them by their audience.
            try:
                claims = jwt.decode(token, options={"verify_signature": False})
            except jwt.PyJWTError:
                return None
            if claims.get("aud") != self._identity.audience:
                return None
            limited = False
        else:
            return None  # a plugin token or something else: not ours to judge
        payload = self._decode(token, header, limited=limited)
        sub = payload.get("sub")
        if not isinstance(sub, str) or not sub:
            raise AuthenticationError("No user sub found in token")
        ent = payload.get("ent")
        refs = tuple(r for r in ent if isinstance(r, str)) if isinstance(ent, list) else ()
        return UserIdentity(user_ref=sub, ownership_refs=refs, limited=limited)

    def _decode(self, token: str, header: dict[str, Any], *, limited: bool) -> dict[str, Any]:
        kid = header.get("kid")
        try:
            if not isinstance(kid, str):
                raise jwt.InvalidTokenError("the token has no kid")
            key = self._keys.signing_key(kid)
            if limited:
                # A limited token is the user token's header and {sub, iat, exp} signed again:
                # no audience or issuer to check.
                payload: dict[str, Any] = jwt.decode(
                    token,
                    key=key,
                    algorithms=list(self._identity.algorithms),
                    options={"require": ["iat", "exp", "sub"], "verify_aud": False},
                    leeway=CLOCK_TOLERANCE_SECONDS,
                )
            else:
                payload = jwt.decode(
                    token,
                    key=key,
                    algorithms=list(self._identity.algorithms),
                    audience=self._identity.audience,
                    issuer=self._identity.issuer,
                    options={"require": ["iat", "exp", "sub", "aud", "iss"]},
                    leeway=CLOCK_TOLERANCE_SECONDS,
                )
        except jwt.PyJWKClientConnectionError as exc:
            log.error("Backstage JWKS %s could not be read: %s", self._identity.jwks_url, exc)
            raise AuthenticationError(_FAILED) from None
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            log.warning("Failed to verify incoming user token: %s", exc)
            raise AuthenticationError(_FAILED) from None
        return payload


@dataclass(frozen=True, kw_only=True)
class PluginIdentity:
    """A verified plugin token: the calling plugin and, if any, the user it acts for."""

    plugin_id: str
    #: The ``obo`` claim: a limited user token of the user the plugin calls on behalf of.
    on_behalf_of: str | None = None


class PluginTokenVerifier:
    """Verifies Backstage plugin tokens addressed to one of our plugin ids.

    The keys of each calling plugin are read from its JWKS on the Backstage backend
    (``<baseUrl>/api/<plugin>/.backstage/auth/v1/jwks.json``) and cached like user keys.
    """

    def __init__(self, identity: BackstageIdentity) -> None:
        self._identity = identity
        self._key_sets: OrderedDict[str, KeySet] = OrderedDict()
        self._lock = threading.Lock()

    def verify(self, token: str, *, audience: str) -> PluginIdentity | None:
        """The calling plugin in ``token``, or ``None`` when it is not a plugin token.

        Args:
            token: the bearer token.
            audience: the plugin id the request is for (the token's ``aud`` must be it).

        Raises:
            AuthenticationError: a plugin token that does not verify, with upstream's messages.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None
        if header.get("typ") != PLUGIN_TOKEN_TYPE:
            return None
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise AuthenticationError(_PLUGIN_FAILED) from None
        plugin_id = unverified.get("sub")
        if not isinstance(plugin_id, str) or not plugin_id:
            raise AuthenticationError("Invalid plugin token: missing subject")
        if not PLUGIN_ID_PATTERN.match(plugin_id):
            raise AuthenticationError("Invalid plugin token: forbidden subject format")
        keys = self._key_set(plugin_id)
        kid = header.get("kid")
        try:
            if not isinstance(kid, str):
                raise jwt.InvalidTokenError("the token has no kid")
            payload: dict[str, Any] = jwt.decode(
                token,
                key=keys.signing_key(kid),
                algorithms=list(self._identity.algorithms),
                audience=audience,
                options={"require": ["iat", "exp", "sub", "aud"]},
                leeway=CLOCK_TOLERANCE_SECONDS,
            )
        except jwt.PyJWKClientConnectionError as exc:
            log.error("plugin %s's JWKS %s could not be read: %s", plugin_id, keys.url, exc)
            raise AuthenticationError(
                f"Received a plugin token where the source '{plugin_id}' plugin unexpectedly "
                "does not have a JWKS endpoint. The target plugin needs to be migrated to be "
                "installed in an app using the new backend system."
            ) from None
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            log.warning("Failed to verify incoming plugin token: %s", exc)
            raise AuthenticationError(_PLUGIN_FAILED) from None
        obo = payload.get("obo")
        return PluginIdentity(
            plugin_id=plugin_id, on_behalf_of=obo if isinstance(obo, str) else None
        )

    def _key_set(self, plugin_id: str) -> KeySet:
        with self._lock:
            keys = self._key_sets.get(plugin_id)
            if keys is None:
                url = f"{self._identity.base_url}/api/{plugin_id}/.backstage/auth/v1/jwks.json"
                keys = self._key_sets[plugin_id] = KeySet(url)
                while len(self._key_sets) > MAX_PLUGIN_KEY_SETS:
                    self._key_sets.popitem(last=False)
            self._key_sets.move_to_end(plugin_id)
            return keys


class KeySet:
    """One JWKS URL's keys: cached, refetched for an unknown ``kid`` at most every 30 s."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._client = jwt.PyJWKClient(
            url, cache_jwk_set=True, lifespan=JWKS_CACHE_SECONDS, timeout=JWKS_TIMEOUT_SECONDS
        )
        self._lock = threading.Lock()
        self._last_refresh = float("-inf")

    def signing_key(self, kid: str) -> jwt.PyJWK:
        """The key with ``kid``.

        Raises:
            jwt.PyJWKClientConnectionError: the JWKS could not be read.
            jwt.InvalidTokenError: no such key, even after a refetch.
        """
        key = _find(self._client.get_signing_keys(), kid)
        if key is not None:
            return key
        with self._lock:
            now = time.monotonic()
            if now - self._last_refresh < JWKS_REFRESH_COOLDOWN_SECONDS:
                raise jwt.InvalidTokenError(f"no key with kid {kid!r} in the JWKS")
            self._last_refresh = now
        key = _find(self._client.get_signing_keys(refresh=True), kid)
        if key is None:
            raise jwt.InvalidTokenError(f"no key with kid {kid!r} in the JWKS")
        return key


def _find(keys: list[jwt.PyJWK], kid: str) -> jwt.PyJWK | None:
    return next((key for key in keys if key.key_id == kid), None)
