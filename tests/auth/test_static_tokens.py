"""Static tokens, access restrictions, the 401 bodies, and the loopback rule."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from flask.testing import FlaskClient

from scaffolder.cli import main
from scaffolder.errors import InputError
from scaffolder.server import check_listen_policy, is_loopback
from scaffolder.settings import Settings, load_settings
from tests.auth.conftest import STATIC_TOKEN, bearer, services_of
from tests.conftest import HELLO_VALUES

SCAFFOLDER = "/api/scaffolder"
HELLO = {"templateRef": "template:default/hello-template", "values": HELLO_VALUES}


def test_static_token_is_a_service_principal(auth_app: Callable[..., FlaskClient]) -> None:
    client = auth_app()
    res = client.post(f"{SCAFFOLDER}/v2/tasks", json=HELLO, headers=bearer(STATIC_TOKEN))
    assert res.status_code == 201
    task = services_of(client).broker.store.get_task(res.json["id"])
    assert task.created_by is None
    assert task.spec["user"] == {}
    assert "createdBy" not in task.to_json()


def test_missing_and_illegal_tokens_have_upstream_bodies(
    auth_app: Callable[..., FlaskClient],
) -> None:
    client = auth_app()
    res = client.get(f"{SCAFFOLDER}/v2/tasks?limit=1")
    assert res.status_code == 401
    assert res.json == {
        "error": {"name": "AuthenticationError", "message": "Missing credentials"},
        "request": {"method": "GET", "url": "/v2/tasks?limit=1"},
        "response": {"statusCode": 401},
    }
    for header in ("Bearer nope-nope-nope", "bearer   " + STATIC_TOKEN + "x"):
        res = client.get(f"{SCAFFOLDER}/v2/tasks", headers={"Authorization": header})
        assert res.json["error"] == {"name": "AuthenticationError", "message": "Illegal token"}
    # Case-insensitive scheme, several spaces: still the token.
    ok = client.get(f"{SCAFFOLDER}/v2/tasks", headers={"Authorization": f"bEaReR   {STATIC_TOKEN}"})
    assert ok.status_code == 200
    # Not a bearer header at all: no credentials.
    res = client.get(f"{SCAFFOLDER}/v2/tasks", headers={"Authorization": f"Basic {STATIC_TOKEN}"})
    assert res.json["error"]["message"] == "Missing credentials"
    # Health and the OpenAPI document need nothing.
    assert client.get("/.backstage/health/v1/readiness").status_code == 200
    assert client.get(f"{SCAFFOLDER}/openapi.json").status_code == 200


def test_access_restrictions_limit_a_token_to_plugins(
    auth_app: Callable[..., FlaskClient],
) -> None:
    client = auth_app(
        externalAccess=[
            {
                "type": "static",
                "options": {"token": "catalog-only-token", "subject": "indexer"},
                "accessRestrictions": [{"plugin": "catalog"}, {"plugin": "search"}],
            },
            {
                "type": "static",
                "options": {"token": "scaffolder-token", "subject": "ci"},
                "accessRestrictions": [{"plugin": "scaffolder"}],
            },
        ]
    )
    res = client.get(f"{SCAFFOLDER}/v2/tasks", headers=bearer("catalog-only-token"))
    assert res.status_code == 403
    assert res.json == {
        "error": {
            "name": "NotAllowedError",
            "message": "This token's access is restricted to plugin(s) 'catalog', 'search'",
        },
        "request": {"method": "GET", "url": "/v2/tasks"},
        "response": {"statusCode": 403},
    }
    # The autocomplete routes belong to the scaffolder plugin.
    res = client.post(
        f"{SCAFFOLDER}/v2/autocomplete/github/owners",
        json={"token": "t", "context": {}},
        headers=bearer("catalog-only-token"),
    )
    assert res.status_code == 403
    assert client.get(
        "/api/catalog/entities", headers=bearer("catalog-only-token")
    ).status_code == (200)
    assert (
        client.get(f"{SCAFFOLDER}/v2/tasks", headers=bearer("scaffolder-token")).status_code == 200
    )
    res = client.get("/api/catalog/entities", headers=bearer("scaffolder-token"))
    assert res.json["error"]["message"] == (
        "This token's access is restricted to plugin(s) 'scaffolder'"
    )


def _config(tmp_path: Path, auth: dict[str, object], name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"backend": {"auth": auth}}))
    return path


def test_permission_restrictions_are_refused_at_startup(tmp_path: Path) -> None:
    path = _config(
        tmp_path,
        {
            "externalAccess": [
                {
                    "type": "static",
                    "options": {"token": "abcdefgh12", "subject": "s"},
                    "accessRestrictions": [
                        {"plugin": "scaffolder", "permission": ["scaffolder.task.read"]}
                    ],
                }
            ]
        },
    )
    with pytest.raises(InputError, match="permission and permissionAttribute"):
        load_settings([path], environ={})


def test_backstage_identity_settings(tmp_path: Path) -> None:
    settings = load_settings(
        [_config(tmp_path, {"backstage": {"baseUrl": "https://backstage.example.com/"}})],
        environ={},
    )
    identity = settings.backstage_identity
    assert identity is not None
    assert identity.jwks_url == "https://backstage.example.com/api/auth/.well-known/jwks.json"
    assert identity.issuer == "https://backstage.example.com/api/auth"
    assert identity.audience == "backstage"
    assert identity.algorithms == ("ES256", "RS256")
    bad = _config(tmp_path, {"backstage": {"baseUrl": "x", "algorithms": ["HS256"]}}, "b.yaml")
    with pytest.raises(InputError):
        load_settings([bad], environ={})
    hs = _config(
        tmp_path, {"backstage": {"baseUrl": "https://b", "algorithms": ["HS256"]}}, "h.yaml"
    )
    with pytest.raises(InputError, match="algorithms"):
        load_settings([hs], environ={})


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("scaffolder.internal", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_auth_off_is_refused_off_loopback() -> None:
    off = Settings.from_config({"backend": {"auth": {"dangerouslyDisableDefaultAuthPolicy": True}}})
    check_listen_policy(off, "127.0.0.1")
    with pytest.raises(InputError, match="allowInsecureNonLoopback"):
        check_listen_policy(off, "0.0.0.0")
    insecure = Settings.from_config(
        {
            "backend": {
                "auth": {
                    "dangerouslyDisableDefaultAuthPolicy": True,
                    "allowInsecureNonLoopback": True,
                }
            }
        }
    )
    check_listen_policy(insecure, "0.0.0.0")
    check_listen_policy(Settings.from_config({}), "0.0.0.0")


def test_serve_exits_before_listening_when_auth_is_off_on_a_public_address(
    tmp_path: Path,
) -> None:
    path = tmp_path / "app-config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "backend": {
                    "auth": {"dangerouslyDisableDefaultAuthPolicy": True},
                    "database": {"connection": f"sqlite:///{tmp_path / 'db.sqlite'}"},
                }
            }
        )
    )
    result = CliRunner().invoke(main, ["serve", "-c", str(path), "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "only allowed when listening on loopback" in result.output
    assert not (tmp_path / "db.sqlite").exists()
