"""Backstage user tokens, verified against the JWKS of Backstage's auth backend.

Backstage's auth backend signs a user token (header ``typ: vnd.backstage.user``, usually ES256
with a ``kid``) whose ``sub`` is the user's entity ref and ``ent`` its ownership refs; the
public keys are at ``<backend.baseUrl>/api/auth/.well-known/jwks.json``. We verify the way
Backstage's own ``UserTokenHandler`` does (which tokens count as user tokens, the messages),
and also check ``aud`` and ``iss``, which upstream leaves unchecked. PyJWT errors stay here.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import jwt

from scaffolder.errors import AuthenticationError
from scaffolder.settings import BackstageIdentity

log = logging.getLogger(__name__)

USER_TOKEN_TYPE = "vnd.backstage.user"  # noqa: S105 - a JWT typ, not a secret
LIMITED_USER_TOKEN_TYPE = "vnd.backstage.limited-user"  # noqa: S105
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
        self._client = jwt.PyJWKClient(
            identity.jwks_url,
            cache_jwk_set=True,
            lifespan=JWKS_CACHE_SECONDS,
            timeout=JWKS_TIMEOUT_SECONDS,
        )
        self._lock = threading.Lock()
        self._last_refresh = float("-inf")

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
            key = self._signing_key(kid)
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

    def _signing_key(self, kid: str) -> jwt.PyJWK:
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
