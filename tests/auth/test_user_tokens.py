"""Backstage user tokens, verified against a JWKS served on loopback (CONTRACT §10)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask.testing import FlaskClient

from scaffolder.db.tables import tasks
from tests.auth.conftest import JANE, Jwks, bearer, services_of
from tests.conftest import HELLO_VALUES, wait_for_status

SCAFFOLDER = "/api/scaffolder"
HELLO = {"templateRef": "template:default/hello-template", "values": HELLO_VALUES}


def _error(res: Any) -> tuple[int, str, str]:
    body = res.json
    return res.status_code, body["error"]["name"], body["error"]["message"]


def test_user_token_makes_the_user_the_creator(
    auth_app: Callable[..., FlaskClient], sign: Callable[..., str]
) -> None:
    client = auth_app()
    token = sign()
    res = client.post(f"{SCAFFOLDER}/v2/tasks", json=HELLO, headers=bearer(token))
    assert res.status_code == 201, res.json
    task_id = res.json["id"]
    assert wait_for_status(services_of(client), task_id) == "completed"

    task = client.get(f"{SCAFFOLDER}/v2/tasks/{task_id}", headers=bearer(token)).json
    assert task["createdBy"] == JANE
    assert task["spec"]["user"]["ref"] == JANE
    assert task["spec"]["user"]["entity"]["metadata"]["name"] == "jane"
    assert task["spec"]["user"]["entity"]["kind"] == "User"

    mine = client.get(f"{SCAFFOLDER}/v2/tasks?createdBy={JANE}", headers=bearer(token)).json
    assert [t["id"] for t in mine["tasks"]] == [task_id]
    assert mine["totalTasks"] == 1
    others = client.get(
        f"{SCAFFOLDER}/v2/tasks?createdBy=user:default/bob", headers=bearer(token)
    ).json
    assert others == {"tasks": [], "totalTasks": 0}


def test_unknown_user_has_a_ref_but_no_entity(
    auth_app: Callable[..., FlaskClient], sign: Callable[..., str]
) -> None:
    client = auth_app()
    res = client.post(
        f"{SCAFFOLDER}/v2/tasks", json=HELLO, headers=bearer(sign(sub="user:default/ghost"))
    )
    task = services_of(client).broker.store.get_task(res.json["id"])
    assert task.created_by == "user:default/ghost"
    assert task.spec["user"] == {"ref": "user:default/ghost"}


def test_the_user_token_is_kept_as_the_backstage_token_secret(
    auth_app: Callable[..., FlaskClient], sign: Callable[..., str]
) -> None:
    client = auth_app({"scaffolder": {"concurrentTasksLimit": 0}})  # no worker claims it
    token = sign()
    res = client.post(
        f"{SCAFFOLDER}/v2/tasks",
        json={**HELLO, "secrets": {"mine": "s3cret"}},
        headers=bearer(token),
    )
    assert res.status_code == 201
    with services_of(client).engine.connect() as conn:
        row = conn.execute(sa.select(tasks.c.secrets)).scalar_one()
    assert json.loads(row) == {"mine": "s3cret", "backstageToken": token}


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"exp": int(time.time()) - 60, "iat": int(time.time()) - 3660}, "expired"),
        ({"aud": "somebody-else"}, "wrong audience"),
        ({"iss": "https://evil.example.com/api/auth"}, "wrong issuer"),
        ({"exp": None}, "no exp"),
        ({"iat": None}, "no iat"),
        ({"iat": int(time.time()) + 600}, "issued in the future"),
    ],
)
def test_bad_claims_fail_verification(
    auth_app: Callable[..., FlaskClient],
    sign: Callable[..., str],
    claims: dict[str, Any],
    message: str,
) -> None:
    client = auth_app()
    res = client.post(f"{SCAFFOLDER}/v2/tasks", json=HELLO, headers=bearer(sign(**claims)))
    assert _error(res) == (401, "AuthenticationError", "Failed user token verification"), message


def test_no_sub_is_refused(auth_app: Callable[..., FlaskClient], sign: Callable[..., str]) -> None:
    client = auth_app()
    res = client.get(f"{SCAFFOLDER}/v2/tasks", headers=bearer(sign(sub=None)))
    assert _error(res)[0] == 401


def test_wrong_key_fails_verification(
    auth_app: Callable[..., FlaskClient], sign: Callable[..., str]
) -> None:
    client = auth_app()
    other = ec.generate_private_key(ec.SECP256R1())
    res = client.get(f"{SCAFFOLDER}/v2/tasks", headers=bearer(sign(key=other)))
    assert _error(res) == (401, "AuthenticationError", "Failed user token verification")


def test_a_token_that_is_not_a_user_token_is_an_illegal_token(
    auth_app: Callable[..., FlaskClient], sign: Callable[..., str]
) -> None:
    client = auth_app()
    # A plugin token is judged as one (tests/actions_registry): this one's sub is no plugin id.
    plugin_token = sign(typ="vnd.backstage.plugin")
    res = client.get(f"{SCAFFOLDER}/v2/tasks", headers=bearer(plugin_token))
    assert _error(res) == (
        401,
        "AuthenticationError",
        "Invalid plugin token: forbidden subject format",
    )
    other_typ = sign(typ="vnd.example.other")
    res = client.get(f"{SCAFFOLDER}/v2/tasks", headers=bearer(other_typ))
    assert _error(res) == (401, "AuthenticationError", "Illegal token")
    # Upstream recognises a token without typ by its audience only.
    assert client.get(f"{SCAFFOLDER}/v2/tasks", headers=bearer(sign(typ=None))).status_code == 200
    no_typ_other_aud = sign(typ=None, aud="other")
    res = client.get(f"{SCAFFOLDER}/v2/tasks", headers=bearer(no_typ_other_aud))
    assert _error(res) == (401, "AuthenticationError", "Illegal token")
    res = client.get(f"{SCAFFOLDER}/v2/tasks", headers=bearer("not.a.jwt"))
    assert _error(res) == (401, "AuthenticationError", "Illegal token")


def test_limited_user_tokens_are_refused(
    auth_app: Callable[..., FlaskClient], sign: Callable[..., str], ec_key: Any
) -> None:
    client = auth_app()
    now = int(time.time())
    limited = jwt.encode(
        {"sub": JANE, "iat": now, "exp": now + 3600},
        ec_key,
        algorithm="ES256",
        headers={"typ": "vnd.backstage.limited-user", "kid": "k1"},
    )
    res = client.get(f"{SCAFFOLDER}/v2/tasks", headers=bearer(limited))
    assert _error(res) == (401, "AuthenticationError", "Illegal limited user token")
    forged = jwt.encode(
        {"sub": JANE, "iat": now, "exp": now + 3600},
        ec.generate_private_key(ec.SECP256R1()),
        algorithm="ES256",
        headers={"typ": "vnd.backstage.limited-user", "kid": "k1"},
    )
    res = client.get(f"{SCAFFOLDER}/v2/tasks", headers=bearer(forged))
    assert _error(res) == (401, "AuthenticationError", "Failed user token verification")


def test_rs256_keys_work_too(
    auth_app: Callable[..., FlaskClient],
    sign: Callable[..., str],
    jwks: Jwks,
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    jwks.publish(rsa_key, "r1", "RS256")
    client = auth_app()
    token = sign(key=rsa_key, kid="r1", alg="RS256")
    assert client.get(f"{SCAFFOLDER}/v2/tasks", headers=bearer(token)).status_code == 200
    # The key's algorithm binds: an RSA key cannot verify a token that claims ES256.
    mixed = sign(kid="r1")
    assert client.get(f"{SCAFFOLDER}/v2/tasks", headers=bearer(mixed)).status_code == 401


def test_symmetric_algorithms_are_never_accepted(
    auth_app: Callable[..., FlaskClient], jwks: Jwks, ec_key: Any
) -> None:
    client = auth_app()
    now = int(time.time())
    claims = {
        "sub": JANE,
        "aud": "backstage",
        "iss": jwks.issuer,
        "iat": now,
        "exp": now + 60,
    }
    forged = jwt.encode(
        claims, "k" * 32, algorithm="HS256", headers={"typ": "vnd.backstage.user", "kid": "k1"}
    )
    res = client.get(f"{SCAFFOLDER}/v2/tasks", headers=bearer(forged))
    assert _error(res) == (401, "AuthenticationError", "Failed user token verification")
    unsigned = jwt.encode(
        claims, None, algorithm="none", headers={"typ": "vnd.backstage.user", "kid": "k1"}
    )
    res = client.get(f"{SCAFFOLDER}/v2/tasks", headers=bearer(unsigned))
    assert _error(res) == (401, "AuthenticationError", "Failed user token verification")


def test_keys_are_cached_and_unknown_kids_refetch_at_most_once_per_cooldown(
    auth_app: Callable[..., FlaskClient],
    sign: Callable[..., str],
    jwks: Jwks,
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    client = auth_app()
    token = sign()
    for _ in range(5):
        assert client.get(f"{SCAFFOLDER}/v2/tasks", headers=bearer(token)).status_code == 200
    assert jwks.hits == 1

    # A rotated key appears: the first token signed with it refetches the JWKS.
    jwks.publish(rsa_key, "r2", "RS256")
    rotated = sign(key=rsa_key, kid="r2", alg="RS256")
    assert client.get(f"{SCAFFOLDER}/v2/tasks", headers=bearer(rotated)).status_code == 200
    assert jwks.hits == 2

    # Made-up kids do not make us hammer Backstage.
    for n in range(5):
        res = client.get(f"{SCAFFOLDER}/v2/tasks", headers=bearer(sign(kid=f"nope-{n}")))
        assert res.status_code == 401
    assert jwks.hits == 2


def test_an_unreachable_jwks_is_a_401(
    auth_app: Callable[..., FlaskClient], sign: Callable[..., str], jwks: Jwks
) -> None:
    jwks.down = True
    client = auth_app()
    res = client.get(f"{SCAFFOLDER}/v2/tasks", headers=bearer(sign()))
    assert _error(res) == (401, "AuthenticationError", "Failed user token verification")


def test_user_tokens_are_accepted_by_the_catalog_too(
    auth_app: Callable[..., FlaskClient], sign: Callable[..., str]
) -> None:
    client = auth_app()
    res = client.get("/api/catalog/entities/by-name/user/default/jane", headers=bearer(sign()))
    assert res.status_code == 200
    assert res.json["metadata"]["name"] == "jane"
