"""Backstage's side of user tokens: a key pair, a JWKS on loopback, and signed tokens."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask
from flask.testing import FlaskClient

from scaffolder.app import create_app
from scaffolder.services import Services, build_services
from scaffolder.settings import Settings
from tests.conftest import FIXTURE_TEMPLATES

JWKS_PATH = "/api/auth/.well-known/jwks.json"
STATIC_TOKEN = "static-token-0123456789"
JANE = "user:default/jane"


@dataclass
class Jwks:
    """A JWKS served on 127.0.0.1, as Backstage's auth backend publishes it."""

    base_url: str
    keys: list[dict[str, Any]] = field(default_factory=list)
    hits: int = 0
    down: bool = False

    @property
    def issuer(self) -> str:
        return f"{self.base_url}/api/auth"

    def publish(self, key: Any, kid: str, alg: str) -> None:
        jwk = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(key.public_key()))
        self.keys.append({**jwk, "kid": kid, "alg": alg, "use": "sig"})


@pytest.fixture
def jwks() -> Iterator[Jwks]:
    state = Jwks(base_url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.hits += 1
            if state.down or self.path != JWKS_PATH:
                self.send_response(503 if state.down else 404)
                self.end_headers()
                return
            body = json.dumps({"keys": state.keys}).encode()
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


@pytest.fixture
def ec_key(jwks: Jwks) -> ec.EllipticCurvePrivateKey:
    """Backstage's signing key (ES256, kid ``k1``), published in the JWKS."""
    key = ec.generate_private_key(ec.SECP256R1())
    jwks.publish(key, "k1", "ES256")
    return key


@pytest.fixture
def sign(jwks: Jwks, ec_key: ec.EllipticCurvePrivateKey) -> Callable[..., str]:
    """Sign a user token; keyword arguments override claims, ``None`` removes one."""

    def make(
        *,
        key: Any = None,
        kid: str = "k1",
        alg: str = "ES256",
        typ: str | None = "vnd.backstage.user",
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": jwks.issuer,
            "sub": JANE,
            "ent": [JANE, "group:default/platform"],
            "aud": "backstage",
            "iat": now,
            "exp": now + 3600,
            "uip": "not-checked",
        }
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        headers: dict[str, Any] = {"kid": kid}
        if typ is not None:
            headers["typ"] = typ
        return jwt.encode(payload, key or ec_key, algorithm=alg, headers=headers)

    return make


@pytest.fixture
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def user_entity_file(tmp_path: Path) -> Path:
    path = tmp_path / "users.yaml"
    path.write_text(
        "apiVersion: backstage.io/v1alpha1\nkind: User\nmetadata:\n  name: jane\n"
        "spec:\n  memberOf: [platform]\n"
    )
    return path


@pytest.fixture
def auth_settings(
    make_settings: Callable[..., Settings], jwks: Jwks, user_entity_file: Path
) -> Callable[..., Settings]:
    """Settings with auth on: Backstage tokens from `jwks` and one static token."""

    def make(extra: dict[str, Any] | None = None, **auth: Any) -> Settings:
        config = {
            "catalog": {
                "locations": [
                    {"type": "file", "target": f"{FIXTURE_TEMPLATES}/*/template.yaml"},
                    {"type": "file", "target": str(user_entity_file)},
                ]
            },
            **(extra or {}),
        }
        return make_settings(
            config,
            auth={
                "backstage": {"baseUrl": jwks.base_url},
                "externalAccess": [
                    {"type": "static", "options": {"token": STATIC_TOKEN, "subject": "ci-bot"}}
                ],
                **auth,
            },
        )

    return make


@pytest.fixture
def auth_app(auth_settings: Callable[..., Settings]) -> Iterator[Callable[..., FlaskClient]]:
    """Build a test client from `auth_settings` arguments; services are closed afterwards."""
    built: list[Services] = []

    def make(extra: dict[str, Any] | None = None, **auth: Any) -> FlaskClient:
        services = build_services(auth_settings(extra, **auth))
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
