"""CORS as upstream's root router (npm cors with backend.cors), before the auth gate."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask.testing import FlaskClient

from scaffolder.api.cors import CorsPolicy, glob_pattern
from scaffolder.errors import InputError
from tests.auth.conftest import STATIC_TOKEN, bearer

SCAFFOLDER = "/api/scaffolder"
CREATE_APP_CORS = {
    "origin": "http://localhost:3000",
    "methods": ["GET", "HEAD", "PATCH", "POST", "PUT", "DELETE"],
    "credentials": True,
}


def test_preflight_is_answered_before_auth(auth_app: Callable[..., FlaskClient]) -> None:
    client = auth_app({"backend": {"cors": CREATE_APP_CORS}})
    res = client.options(
        f"{SCAFFOLDER}/v2/tasks",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert res.status_code == 204
    assert res.data == b""
    assert res.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert res.headers["Access-Control-Allow-Credentials"] == "true"
    assert res.headers["Access-Control-Allow-Methods"] == "GET,HEAD,PATCH,POST,PUT,DELETE"
    # allowedHeaders unset: the requested headers are reflected, as npm cors does.
    assert res.headers["Access-Control-Allow-Headers"] == "authorization,content-type"
    assert res.headers.getlist("Vary") == ["Origin", "Access-Control-Request-Headers"]
    assert "Access-Control-Max-Age" not in res.headers


def test_simple_requests_get_the_origin_only_when_it_matches(
    auth_app: Callable[..., FlaskClient],
) -> None:
    client = auth_app(
        {
            "backend": {
                "cors": {
                    "origin": ["https://*.example.com", "http://localhost:{3000,3001}"],
                    "exposedHeaders": ["Link", "X-Total"],
                }
            }
        }
    )
    ok = client.get(
        f"{SCAFFOLDER}/v2/tasks",
        headers={"Origin": "https://portal.example.com", **bearer(STATIC_TOKEN)},
    )
    assert ok.status_code == 200
    assert ok.headers["Access-Control-Allow-Origin"] == "https://portal.example.com"
    assert ok.headers["Access-Control-Expose-Headers"] == "Link,X-Total"
    assert "Access-Control-Allow-Credentials" not in ok.headers
    # The auth gate's 401 carries the CORS headers too, so the browser can read it.
    denied = client.get(f"{SCAFFOLDER}/v2/tasks", headers={"Origin": "http://localhost:3001"})
    assert denied.status_code == 401
    assert denied.headers["Access-Control-Allow-Origin"] == "http://localhost:3001"
    for origin in ("https://example.com.evil.org", "http://localhost:3002", "https://example.com"):
        res = client.get(
            f"{SCAFFOLDER}/v2/tasks", headers={"Origin": origin, **bearer(STATIC_TOKEN)}
        )
        assert "Access-Control-Allow-Origin" not in res.headers, origin
        assert res.headers["Vary"] == "Origin"


def test_options_allowed_headers_and_max_age(auth_app: Callable[..., FlaskClient]) -> None:
    client = auth_app(
        {
            "backend": {
                "cors": {
                    "origin": "http://localhost:3000",
                    "allowedHeaders": ["Authorization", "Content-Type"],
                    "maxAge": 600,
                }
            }
        }
    )
    res = client.options(
        "/api/catalog/entities",
        headers={"Origin": "http://evil.test", "Access-Control-Request-Headers": "x-evil"},
    )
    assert res.status_code == 204
    assert "Access-Control-Allow-Origin" not in res.headers
    assert res.headers["Access-Control-Allow-Headers"] == "Authorization,Content-Type"
    assert res.headers["Access-Control-Allow-Methods"] == "GET,HEAD,PUT,PATCH,POST,DELETE"
    assert res.headers["Access-Control-Max-Age"] == "600"


def test_no_cors_config_means_no_cors(auth_app: Callable[..., FlaskClient]) -> None:
    client = auth_app()
    res = client.get(
        f"{SCAFFOLDER}/v2/tasks",
        headers={"Origin": "http://localhost:3000", **bearer(STATIC_TOKEN)},
    )
    assert res.status_code == 200
    assert not [h for h, _ in res.headers.items() if h.startswith("Access-Control-")]
    preflight = client.options(f"{SCAFFOLDER}/v2/tasks", headers={"Origin": "http://x"})
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_cors_without_origin_allows_any() -> None:
    policy = CorsPolicy.from_config({"backend": {"cors": {"credentials": True}}})
    assert policy is not None
    assert policy.headers({"HTTP_ORIGIN": "http://a"}, preflight=False) == [
        ("Access-Control-Allow-Origin", "*"),
        ("Access-Control-Allow-Credentials", "true"),
    ]


@pytest.mark.parametrize(
    ("glob", "origin", "matches"),
    [
        ("https://*.example.com", "https://a.example.com", True),
        ("https://*.example.com", "HTTPS://A.EXAMPLE.COM", True),
        ("https://*.example.com", "https://a.b.example.com", True),
        ("https://*.example.com", "https://example.com", False),
        ("https://*.example.com", "https://x/.example.com", False),
        ("http://localhost:300?", "http://localhost:3001", True),
        ("http://localhost:300[0-2]", "http://localhost:3003", False),
        ("http://localhost:300[!0]", "http://localhost:3001", True),
        ("http://{a,b}.test", "http://b.test", True),
        ("http://{a,b}.test", "http://c.test", False),
        ("http://a.test", "http://a+test", False),
    ],
)
def test_origin_globs(glob: str, origin: str, matches: bool) -> None:
    assert (glob_pattern(glob).fullmatch(origin) is not None) is matches


def test_bad_cors_config_is_refused() -> None:
    with pytest.raises(InputError, match="maxAge"):
        CorsPolicy.from_config({"backend": {"cors": {"maxAge": "soon"}}})
    with pytest.raises(InputError, match="origin"):
        CorsPolicy.from_config({"backend": {"cors": {"origin": [1]}}})
    with pytest.raises(InputError, match="brace"):
        CorsPolicy.from_config({"backend": {"cors": {"origin": "http://{a,b"}}})
