"""A real Backstage catalog over HTTP, as the scaffolder's `CatalogClient`.

With ``catalog.backend: backstage`` the catalog actions register and fetch in a Backstage
catalog instead of the embedded one (templates still come from the embedded catalog)::

    catalog:
      backend: backstage                          # default: embedded
      baseUrl: https://backstage.example.com      # its backend; /api/catalog is appended
      token: ${BACKSTAGE_CATALOG_TOKEN}           # a static external-access token (Bearer)
      timeoutSeconds: 30

The calls are those Backstage's own scaffolder makes (CONTRACT §8.10): ``GET
/entities/by-name/{kind}/{namespace}/{name}``, ``POST /entities/by-refs``, ``POST
/locations`` and its ``?dryRun=true``. Registering an existing location answers 409 there;
we then ask for ``POST /refresh`` of its Location entity, so a retried ``catalog:register``
refreshes instead of failing. That works on every catalog version (``?onConflict=refresh``
only on recent ones).

Lost connections and 502/503/504 are retried twice with a short backoff (every call here is
safe to repeat). Every failure becomes one of our errors, with Backstage's own message:

======================  ==============================================================
the catalog answers     the caller gets
======================  ==============================================================
400                     `InputError` (e.g. ``Unable to read url, NotFoundError: ...``)
401                     `AuthenticationError` naming ``catalog.token``
403                     `NotAllowedError` (read-only catalog, no permission)
404                     `NotFoundError` (None from the entity lookups)
409                     `ConflictError`
other, unreachable      `ScaffolderError` naming the catalog and the call
======================  ==============================================================
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote, urlsplit

import requests

from scaffolder.catalog.catalog_client import URL_LOCATION, CatalogClient, RegisteredLocation
from scaffolder.catalog.model import RefError, location_entity_ref, parse_ref
from scaffolder.errors import (
    AuthenticationError,
    ConflictError,
    InputError,
    NotAllowedError,
    NotFoundError,
    ScaffolderError,
)

CATALOG_PATH: Final = "/api/catalog"
DEFAULT_TIMEOUT_SECONDS: Final = 30.0
#: Waits before the retries of a call that lost its connection or met a 502/503/504.
RETRY_DELAYS: Final = (0.5, 1.5)
BACKENDS: Final = ("embedded", "backstage")
_RETRIED_STATUSES = frozenset({502, 503, 504})
_ERRORS: Mapping[int, type[ScaffolderError]] = {
    400: InputError,
    401: AuthenticationError,
    403: NotAllowedError,
    404: NotFoundError,
    409: ConflictError,
}


@dataclass(kw_only=True)
class BackstageCatalogClient:
    """Backstage's catalog API at ``base_url`` (``<backend>/api/catalog``).

    Attributes:
        base_url: the catalog API root, without a trailing slash.
        token: sent as ``Authorization: Bearer``; None for a catalog without auth.
        timeout: seconds one request may take.
        session: the HTTP session (tests pass their own).
        sleep: waits between retries (tests pass a recorder).
    """

    base_url: str
    token: str | None = field(default=None, repr=False)
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    session: requests.Session = field(default_factory=requests.Session)
    sleep: Callable[[float], None] = time.sleep

    # --- the CatalogClient calls --------------------------------------------------------

    def get_entity_by_ref(self, ref: str) -> dict[str, Any] | None:
        """``GET /entities/by-name/{kind}/{namespace}/{name}``; None on 404.

        Raises:
            InputError: ``ref`` is not a full entity ref.
            ScaffolderError: any other failure (see the module's table).
        """
        try:
            kind, namespace, name = parse_ref(ref)
        except RefError as exc:
            raise InputError(str(exc)) from None
        path = "/entities/by-name/" + "/".join(quote(p, safe="") for p in (kind, namespace, name))
        try:
            found = self._call("GET", path)
        except NotFoundError:
            return None
        return found if isinstance(found, dict) else None

    def get_entities_by_refs(self, refs: Sequence[str]) -> list[dict[str, Any] | None]:
        """``POST /entities/by-refs``: each ref's entity, in order (None where missing)."""
        if not refs:
            return []
        body = self._call("POST", "/entities/by-refs", json_body={"entityRefs": list(refs)})
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list) or len(items) != len(refs):
            raise ScaffolderError(
                f"The catalog at {self.base_url} answered POST /entities/by-refs without one "
                "item per ref"
            )
        return [item if isinstance(item, dict) else None for item in items]

    def add_location(self, target: str, *, type: str = URL_LOCATION) -> RegisteredLocation:
        """``POST /locations``; on 409, ``POST /refresh`` of the existing Location entity."""
        entity_ref = location_entity_ref(type, target)
        try:
            body = self._call("POST", "/locations", json_body={"type": type, "target": target})
        except ConflictError:
            self._call("POST", "/refresh", json_body={"entityRef": entity_ref})
            return RegisteredLocation(type=type, target=target, entity_ref=entity_ref, existed=True)
        location = body.get("location") if isinstance(body, dict) else None
        location = location if isinstance(location, dict) else {}
        return RegisteredLocation(
            type=str(location.get("type", type)),
            target=str(location.get("target", target)),
            entity_ref=str(location.get("entityRef", entity_ref)),
            id=str(location["id"]) if location.get("id") else None,
        )

    def dry_run_location(self, target: str, *, type: str = URL_LOCATION) -> list[dict[str, Any]]:
        """``POST /locations?dryRun=true``: the entities registering would yield."""
        body = self._call(
            "POST",
            "/locations",
            params={"dryRun": "true"},
            json_body={"type": type, "target": target},
        )
        entities = body.get("entities") if isinstance(body, dict) else None
        if not isinstance(entities, list):
            raise ScaffolderError(
                f"The catalog at {self.base_url} answered a dry-run registration without entities"
            )
        return [e for e in entities if isinstance(e, dict)]

    # --- HTTP ---------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
    ) -> Any:
        """One API call, retried on lost connections and 502-504; its JSON body (or None).

        Raises:
            ScaffolderError: the translated failure (see the module's table).
        """
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        url = self.base_url + path
        shown = f"{method} {path}"
        for attempt in range(len(RETRY_DELAYS) + 1):
            last = attempt == len(RETRY_DELAYS)
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    json=json_body,
                    headers=headers,
                    timeout=self.timeout,
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                if last:
                    raise ScaffolderError(
                        f"Could not reach the catalog at {self.base_url} ({shown}): {exc}"
                    ) from exc
                self.sleep(RETRY_DELAYS[attempt])
                continue
            if response.status_code in _RETRIED_STATUSES and not last:
                self.sleep(RETRY_DELAYS[attempt])
                continue
            return self._answer(response, shown)
        raise AssertionError("unreachable")

    def _answer(self, response: requests.Response, shown: str) -> Any:
        status = response.status_code
        if 200 <= status < 300:
            if not response.content:
                return None
            try:
                return response.json()
            except ValueError:
                raise ScaffolderError(
                    f"The catalog at {self.base_url} answered {shown} with a body that is not JSON"
                ) from None
        message = _error_message(response)
        error = _ERRORS.get(status)
        if error is AuthenticationError:
            raise AuthenticationError(
                f"The catalog at {self.base_url} refused the credentials (catalog.token) for "
                f"{shown}: {message}"
            )
        if error is not None:
            raise error(message)
        raise ScaffolderError(
            f"The catalog at {self.base_url} answered {shown} with {status}: {message}"
        )


def _error_message(response: requests.Response) -> str:
    """Backstage's ``error.message``, else the start of the body, else the reason."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = body["error"].get("message")
        if isinstance(message, str) and message:
            return message
    text = response.text.strip()
    return text[:300] if text else f"{response.status_code} {response.reason}"


def catalog_api_url(base_url: str) -> str:
    """The catalog API root for ``catalog.baseUrl``: ``/api/catalog`` appended unless there.

    Raises:
        InputError: not an ``http``/``https`` URL, or one with credentials in it.
    """
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"catalog.baseUrl must be an http(s) URL, got {base_url!r}")
    if parts.username or parts.password:
        raise InputError("catalog.baseUrl must not hold credentials; use catalog.token")
    root = base_url.rstrip("/")
    return root if root.endswith(CATALOG_PATH) else root + CATALOG_PATH


def catalog_client_from_config(
    config: Mapping[str, Any], *, embedded: CatalogClient
) -> CatalogClient:
    """The catalog the scaffolder registers in and fetches from (``catalog.backend``).

    Args:
        config: the whole configuration.
        embedded: the embedded catalog's client, the default.

    Raises:
        InputError: an unknown backend, or ``backstage`` without a valid ``catalog.baseUrl``.
    """
    catalog = config.get("catalog") or {}
    if not isinstance(catalog, Mapping):
        raise InputError("Config key 'catalog' must be a mapping")
    backend = str(catalog.get("backend") or "embedded")
    if backend not in BACKENDS:
        raise InputError(f"catalog.backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "embedded":
        return embedded
    base_url = catalog.get("baseUrl")
    if not isinstance(base_url, str) or not base_url:
        raise InputError("catalog.backend: backstage needs catalog.baseUrl (its backend URL)")
    token = catalog.get("token")
    try:
        timeout = float(catalog.get("timeoutSeconds", DEFAULT_TIMEOUT_SECONDS))
    except (TypeError, ValueError):
        raise InputError("catalog.timeoutSeconds must be a number") from None
    return BackstageCatalogClient(
        base_url=catalog_api_url(base_url),
        token=str(token) if token else None,
        timeout=timeout,
    )
