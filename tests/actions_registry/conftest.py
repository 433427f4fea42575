"""A Backstage backend's side of the Actions Registry: its key sets on loopback, its tokens.

`backstage` serves what a Backstage backend publishes: the user-token keys of its auth plugin
(``/api/auth/.well-known/jwks.json``) and each plugin's own keys
(``/api/<plugin>/.backstage/auth/v1/jwks.json``). `plugin_token` signs what its plugins send
us: ``typ: vnd.backstage.plugin``, ``sub`` the calling plugin, ``aud`` the target plugin.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from flask.testing import FlaskClient

from scaffolder.app import create_app
from scaffolder.services import Services, build_services
from scaffolder.settings import Settings
from tests.conftest import FIXTURE_TEMPLATES, REPO

STATIC_TOKEN = "static-token-0123456789"
ACTIONS = "/api/ecs/.backstage/actions"
USER_JWKS = "/api/auth/.well-known/jwks.json"
JANE = "user:default/jane"


@dataclass
class Backstage:
    """Key sets served on 127.0.0.1 by path, and the requests they got."""

    base_url: str = ""
    key_sets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)

    def publish(self, path: str, key: ec.EllipticCurvePrivateKey, kid: str) -> None:
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
        self.key_sets.setdefault(path, []).append({**jwk, "kid": kid, "alg": "ES256"})


def plugin_jwks(plugin: str) -> str:
    return f"/api/{plugin}/.backstage/auth/v1/jwks.json"


@pytest.fixture
def backstage() -> Iterator[Backstage]:
    state = Backstage()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.hits.append(self.path)
            keys = state.key_sets.get(self.path)
            if keys is None:
                self.send_response(404)
                self.end_headers()
                return
            body = json.dumps({"keys": keys}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def scaffolder_key(backstage: Backstage) -> ec.EllipticCurvePrivateKey:
    """The Backstage scaffolder plugin's signing key (kid ``p1``), in its JWKS."""
    key = ec.generate_private_key(ec.SECP256R1())
    backstage.publish(plugin_jwks("scaffolder"), key, "p1")
    return key


@pytest.fixture
def auth_key(backstage: Backstage) -> ec.EllipticCurvePrivateKey:
    """The auth backend's user-token key (kid ``u1``)."""
    key = ec.generate_private_key(ec.SECP256R1())
    backstage.publish(USER_JWKS, key, "u1")
    return key


@pytest.fixture
def plugin_token(scaffolder_key: ec.EllipticCurvePrivateKey) -> Callable[..., str]:
    """Sign a plugin token from ``scaffolder`` to ``ecs``; keywords override claims."""

    def make(
        *,
        key: Any = None,
        kid: str = "p1",
        typ: str = "vnd.backstage.plugin",
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {"sub": "scaffolder", "aud": "ecs", "iat": now, "exp": now + 3600}
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(
            payload, key or scaffolder_key, algorithm="ES256", headers={"typ": typ, "kid": kid}
        )

    return make


@pytest.fixture
def limited_user_token(auth_key: ec.EllipticCurvePrivateKey) -> Callable[..., str]:
    """A limited user token for ``sub`` (what a plugin token's ``obo`` carries)."""

    def make(sub: str = JANE) -> str:
        now = int(time.time())
        return jwt.encode(
            {"sub": sub, "iat": now, "exp": now + 3600},
            auth_key,
            algorithm="ES256",
            headers={"typ": "vnd.backstage.limited-user", "kid": "u1"},
        )

    return make


def catalog_with_ecs_templates() -> dict[str, Any]:
    return {
        "locations": [
            {"type": "file", "target": f"{FIXTURE_TEMPLATES}/*/template.yaml"},
            {"type": "file", "target": f"{REPO}/cookiecutters/*/template.yaml"},
        ]
    }


@pytest.fixture
def registry_app(
    make_settings: Callable[..., Settings], backstage: Backstage
) -> Iterator[Callable[..., FlaskClient]]:
    """A test client on our service, ``extra`` merged into its config.

    ``auth=False`` turns auth off (loopback development); otherwise Backstage tokens are
    verified against `backstage` and ``static_tokens`` (default: `STATIC_TOKEN`) accepted.
    """
    built: list[Services] = []

    def make(
        extra: dict[str, Any] | None = None,
        *,
        auth: bool = True,
        static_tokens: list[dict[str, Any]] | None = None,
        **backend: Any,
    ) -> FlaskClient:
        static = static_tokens or [
            {"type": "static", "options": {"token": STATIC_TOKEN, "subject": "ci-bot"}}
        ]
        auth_config: dict[str, Any] = (
            {"backstage": {"baseUrl": backstage.base_url}, "externalAccess": static}
            if auth
            else {"dangerouslyDisableDefaultAuthPolicy": True}
        )
        config = {"catalog": catalog_with_ecs_templates(), **(extra or {})}
        services = build_services(make_settings(config, auth=auth_config, **backend))
        built.append(services)
        app: Flask = create_app(services=services)
        return app.test_client()

    yield make
    for services in built:
        services.close()


def services_of(client: FlaskClient) -> Services:
    services: Services = client.application.extensions["scaffolder"]
    return services


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_of(res: Any) -> tuple[int, str, str]:
    body = res.json
    return res.status_code, body["error"]["name"], body["error"]["message"]
