"""Which token a GitHub call uses (CONTRACT §7.6), and GitHub App installation tokens."""

from __future__ import annotations

import jwt
import pytest
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from scaffolder.errors import InputError
from scaffolder.integrations.github_auth import GithubConnector
from scaffolder.integrations.scm import ScmIntegrations
from tests.github.conftest import API, TOKEN, USER_TOKEN, FakeClock, make_connector

GHE_API = "https://ghe.example.com/api/v3"


@pytest.fixture(scope="module")
def app_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def test_input_token_wins(connector: GithubConnector) -> None:
    token = connector.token_for("github.com", "acme", "svc", USER_TOKEN)
    assert (token.token, token.source) == (USER_TOKEN, "input")


def test_integration_token_next(connector: GithubConnector) -> None:
    token = connector.token_for("github.com", "acme", "svc", None)
    assert (token.token, token.source) == (TOKEN, "integration")
    assert TOKEN not in repr(token)


def test_required_user_credentials(clock: FakeClock) -> None:
    github = make_connector(clock, require_user_credentials=True)
    with pytest.raises(InputError) as caught:
        github.token_for("github.com", "acme", "svc", None)
    assert caught.value.message == (
        "No user credentials provided for host github.com, but "
        "scaffolder.requireScmUserCredentials is enabled"
    )
    assert github.token_for("github.com", "acme", "svc", USER_TOKEN).token == USER_TOKEN


def test_from_config_reads_require_scm_user_credentials() -> None:
    scm = ScmIntegrations.from_config({})
    config = {"scaffolder": {"requireScmUserCredentials": True}}
    assert GithubConnector.from_config(scm, config).require_user_credentials is True
    assert GithubConnector.from_config(scm, {}).require_user_credentials is False


def test_unknown_host_and_missing_credentials(clock: FakeClock) -> None:
    github = make_connector(clock, github=[{"host": "github.com"}])
    with pytest.raises(InputError, match=r"^No integration for host gitlab\.com$"):
        github.token_for("gitlab.com", "acme", "svc", USER_TOKEN)
    with pytest.raises(InputError) as caught:
        github.token_for("github.com", "acme", "svc", None)
    assert caught.value.message.startswith(
        "No token available for host: github.com, with owner acme, and repo svc."
    )
    with pytest.raises(InputError, match="No owner and/or repo provided"):
        github.token_for("github.com", None, None, None)


def test_enterprise_host_needs_an_api_base_url(clock: FakeClock) -> None:
    github = make_connector(clock, github=[{"host": "ghe.example.com", "token": TOKEN}])
    with pytest.raises(InputError, match="has no apiBaseUrl"):
        github.connect("ghe.example.com", "acme", "svc", None)


def test_app_installation_token(
    gh_api: responses.RequestsMock, clock: FakeClock, app_key: rsa.RSAPrivateKey
) -> None:
    github = make_connector(
        clock,
        github=[
            {
                "host": "ghe.example.com",
                "apiBaseUrl": GHE_API,
                "apps": [{"appId": 1234, "privateKey": pem(app_key)}],
            }
        ],
    )
    gh_api.get(
        f"{GHE_API}/app/installations",
        json=[
            {"id": 1, "account": {"login": "other", "type": "Organization"}},
            {"id": 77, "account": {"login": "ACME", "type": "Organization"}},
        ],
    )
    gh_api.post(
        f"{GHE_API}/app/installations/77/access_tokens",
        status=201,
        json={"token": "ghs_installation", "expires_at": "2023-11-14T23:13:20Z"},
    )

    first = github.token_for("ghe.example.com", "acme", "svc", None)
    second = github.token_for("ghe.example.com", "acme", "other-repo", None)

    assert (first.token, first.source) == ("ghs_installation", "app")
    assert second.token == "ghs_installation"
    assert len(gh_api.calls) == 3  # the token is cached; the installation is looked up again
    bearer = gh_api.calls[1].request.headers["Authorization"]
    assert bearer.startswith("Bearer ")
    claims = jwt.decode(
        bearer[len("Bearer ") :],
        app_key.public_key(),
        algorithms=["RS256"],
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims == {"iat": 1_700_000_000 - 60, "exp": 1_700_000_000 + 540, "iss": "1234"}

    clock.now += 3600  # past expiry: a new token
    gh_api.post(
        f"{GHE_API}/app/installations/77/access_tokens",
        status=201,
        json={"token": "ghs_renewed", "expires_at": "2023-11-15T00:13:20Z"},
    )
    assert github.token_for("ghe.example.com", "acme", "svc", None).token == "ghs_renewed"


def test_app_with_installation_id_and_allowed_owners(
    gh_api: responses.RequestsMock, clock: FakeClock, app_key: rsa.RSAPrivateKey
) -> None:
    github = make_connector(
        clock,
        github=[
            {
                "host": "github.com",
                "apps": [
                    {
                        "appId": "9",
                        "privateKey": pem(app_key),
                        "installationId": 5,
                        "allowedInstallationOwners": ["acme"],
                    }
                ],
            }
        ],
    )
    gh_api.post(
        f"{API}/app/installations/5/access_tokens", status=201, json={"token": "ghs_direct"}
    )

    assert github.token_for("github.com", "acme", "svc", None).token == "ghs_direct"
    with pytest.raises(InputError, match=r"No token available for host: github\.com, with owner"):
        github.token_for("github.com", "someone-else", "svc", None)


def test_app_not_installed_for_owner(
    gh_api: responses.RequestsMock, clock: FakeClock, app_key: rsa.RSAPrivateKey
) -> None:
    github = make_connector(
        clock,
        github=[{"host": "github.com", "apps": [{"appId": 3, "privateKey": pem(app_key)}]}],
    )
    gh_api.get(f"{API}/app/installations", json=[])
    with pytest.raises(InputError, match="No token available"):
        github.token_for("github.com", "acme", "svc", None)


def test_app_token_refused(
    gh_api: responses.RequestsMock, clock: FakeClock, app_key: rsa.RSAPrivateKey
) -> None:
    github = make_connector(
        clock,
        github=[
            {
                "host": "github.com",
                "apps": [{"appId": 3, "privateKey": pem(app_key), "installationId": 8}],
            }
        ],
    )
    gh_api.post(
        f"{API}/app/installations/8/access_tokens",
        status=401,
        json={"message": "A JSON web token could not be decoded"},
    )
    with pytest.raises(InputError) as caught:
        github.token_for("github.com", "acme", "svc", None)
    assert caught.value.message.startswith(
        "GitHub App 3 could not get an installation token for acme: GitHub at api.github.com "
        "rejected the credentials (401 A JSON web token could not be decoded)"
    )


def test_a_key_that_cannot_sign(clock: FakeClock) -> None:
    github = make_connector(
        clock,
        github=[
            {
                "host": "github.com",
                "apps": [{"appId": 3, "privateKey": "nope", "installationId": 1}],
            }
        ],
    )
    with pytest.raises(InputError, match="The private key of GitHub App 3 cannot sign a JWT"):
        github.token_for("github.com", "acme", "svc", None)
