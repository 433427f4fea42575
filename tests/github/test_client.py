"""The REST client: retries, rate limits, error translation, pagination, sealing."""

from __future__ import annotations

import base64

import pytest
import requests
import responses
from nacl.public import PrivateKey, SealedBox

from scaffolder.actions.base import CancelSignal
from scaffolder.errors import (
    ConflictError,
    InputError,
    NotAllowedError,
    NotFoundError,
    TaskCancelledError,
)
from scaffolder.integrations.github import (
    GithubClient,
    GithubConflictError,
    GithubCredentialsError,
    GithubError,
    GithubInputError,
    GithubUnavailableError,
    RetryPolicy,
    cancellable_sleep,
    seal_secret,
)
from tests.github.conftest import API, TOKEN, FakeClock


def client(clock: FakeClock, **kwargs: object) -> GithubClient:
    return GithubClient(auth=f"token {TOKEN}", sleep=clock.sleep, clock=clock, **kwargs)  # type: ignore[arg-type]


def test_sends_the_token_in_the_header_only(
    gh_api: responses.RequestsMock, clock: FakeClock
) -> None:
    gh_api.get(f"{API}/repos/acme/svc", json={"id": 1})

    assert client(clock).get("/repos/acme/svc") == {"id": 1}

    sent = gh_api.calls[0].request
    assert sent.headers["Authorization"] == f"token {TOKEN}"
    assert sent.headers["Accept"] == "application/vnd.github+json"
    assert sent.headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert TOKEN not in sent.url


def test_rate_limit_waits_for_the_reset_then_retries(
    gh_api: responses.RequestsMock, clock: FakeClock
) -> None:
    reset = int(clock.now) + 30
    gh_api.get(
        f"{API}/user/orgs",
        status=403,
        json={"message": "API rate limit exceeded for user ID 1."},
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
    )
    gh_api.get(f"{API}/user/orgs", json=[{"login": "acme"}])

    assert client(clock).get("/user/orgs") == [{"login": "acme"}]
    assert clock.sleeps == [31.0]  # until the reset, plus a second for clock drift


def test_secondary_rate_limit_honours_retry_after(
    gh_api: responses.RequestsMock, clock: FakeClock
) -> None:
    gh_api.post(
        f"{API}/repos/acme/svc/hooks",
        status=429,
        json={"message": "You have exceeded a secondary rate limit."},
        headers={"retry-after": "7"},
    )
    gh_api.post(f"{API}/repos/acme/svc/hooks", status=201, json={"id": 5})

    assert client(clock).post("/repos/acme/svc/hooks", {"config": {}}) == {"id": 5}
    assert clock.sleeps == [7.0]


def test_rate_limit_that_resets_too_late_fails_at_once_with_the_reset_time(
    gh_api: responses.RequestsMock, clock: FakeClock
) -> None:
    reset = int(clock.now) + 3600
    gh_api.get(
        f"{API}/user/orgs",
        status=403,
        json={"message": "API rate limit exceeded for user ID 1."},
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
    )

    with pytest.raises(GithubUnavailableError) as caught:
        client(clock).get("/user/orgs")

    assert caught.value.name == "ServiceUnavailableError"
    assert "rate limit exceeded for api.github.com" in caught.value.message
    assert "resets at 2023-11-14T23:13:20Z" in caught.value.message
    assert clock.sleeps == []


def test_rate_limit_retries_are_bounded(gh_api: responses.RequestsMock, clock: FakeClock) -> None:
    for _ in range(3):
        gh_api.get(
            f"{API}/user/orgs",
            status=403,
            json={"message": "API rate limit exceeded"},
            headers={"retry-after": "2"},
        )

    with pytest.raises(GithubUnavailableError, match="rate limit"):
        client(clock, retry=RetryPolicy(attempts=3)).get("/user/orgs")
    assert clock.sleeps == [2.0, 2.0]
    assert len(gh_api.calls) == 3


def test_lost_connections_back_off_then_fail_clearly(
    gh_api: responses.RequestsMock, clock: FakeClock
) -> None:
    for _ in range(4):
        gh_api.get(f"{API}/repos/acme/svc", body=requests.ConnectionError("Connection refused"))

    with pytest.raises(GithubUnavailableError) as caught:
        client(clock).get("/repos/acme/svc")

    assert caught.value.message == (
        "Could not reach GitHub at https://api.github.com (GET /repos/acme/svc): Connection refused"
    )
    assert clock.sleeps == [1.0, 2.0, 4.0]


def test_a_lost_connection_then_success(gh_api: responses.RequestsMock, clock: FakeClock) -> None:
    gh_api.post(f"{API}/orgs/acme/repos", body=requests.ConnectionError("reset by peer"))
    gh_api.post(f"{API}/orgs/acme/repos", status=201, json={"id": 1})

    assert client(clock).post("/orgs/acme/repos", {"name": "svc"}) == {"id": 1}
    assert clock.sleeps == [1.0]


def test_bad_gateway_is_retried_for_reads_only(
    gh_api: responses.RequestsMock, clock: FakeClock
) -> None:
    gh_api.get(f"{API}/repos/acme/svc", status=502, body="bad gateway")
    gh_api.get(f"{API}/repos/acme/svc", json={"id": 1})
    gh_api.post(f"{API}/orgs/acme/repos", status=502, body="bad gateway")

    assert client(clock).get("/repos/acme/svc") == {"id": 1}
    with pytest.raises(GithubUnavailableError, match="failed with 502"):
        client(clock).post("/orgs/acme/repos", {"name": "svc"})


@pytest.mark.parametrize(
    ("status", "body", "kind", "message"),
    [
        (
            401,
            {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"},
            InputError,
            "GitHub at api.github.com rejected the credentials (401 Bad credentials) for "
            "GET /repos/acme/svc; check the token input or the integrations.github credentials",
        ),
        (
            403,
            {"message": "Resource not accessible by integration"},
            NotAllowedError,
            "GitHub GET /repos/acme/svc failed with 403: Resource not accessible by integration",
        ),
        (
            404,
            {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"},
            NotFoundError,
            "GitHub GET /repos/acme/svc failed with 404: Not Found",
        ),
        (
            409,
            {"message": "Already exists"},
            ConflictError,
            "GitHub GET /repos/acme/svc failed with 409: Already exists",
        ),
        (
            422,
            {
                "message": "Validation Failed",
                "errors": [{"resource": "Repository", "code": "invalid", "field": "name"}],
            },
            InputError,
            "GitHub GET /repos/acme/svc failed with 422: Validation Failed "
            "(Repository name invalid)",
        ),
    ],
)
def test_errors_are_ours(
    gh_api: responses.RequestsMock,
    clock: FakeClock,
    status: int,
    body: dict[str, object],
    kind: type[Exception],
    message: str,
) -> None:
    gh_api.get(f"{API}/repos/acme/svc", status=status, json=body)

    with pytest.raises(kind) as caught:
        client(clock).get("/repos/acme/svc")

    error = caught.value
    assert isinstance(error, GithubError)
    assert error.message == message
    assert error.github_status == status
    assert TOKEN not in error.message
    assert clock.sleeps == []


def test_name_already_exists_is_a_conflict(
    gh_api: responses.RequestsMock, clock: FakeClock
) -> None:
    gh_api.post(
        f"{API}/orgs/acme/repos",
        status=422,
        json={
            "message": "Repository creation failed.",
            "errors": [
                {
                    "resource": "Repository",
                    "code": "custom",
                    "field": "name",
                    "message": "name already exists on this account",
                }
            ],
            "documentation_url": "https://docs.github.com/rest/repos/repos#create-an-organization-repository",
        },
    )

    with pytest.raises(GithubConflictError) as caught:
        client(clock).post("/orgs/acme/repos", {"name": "svc"})
    assert caught.value.name == "ConflictError"
    assert caught.value.github_message == (
        "Repository creation failed. (name already exists on this account)"
    )


def test_credentials_error_is_an_input_error(
    gh_api: responses.RequestsMock, clock: FakeClock
) -> None:
    gh_api.get(f"{API}/user", status=401, json={"message": "Bad credentials"})
    with pytest.raises(GithubCredentialsError) as caught:
        client(clock).get("/user")
    assert caught.value.name == "InputError"


def test_paginate_follows_next_links_and_unwraps(
    gh_api: responses.RequestsMock, clock: FakeClock
) -> None:
    gh_api.get(
        f"{API}/user/repos",
        json=[{"full_name": "acme/a"}],
        headers={"link": f'<{API}/user/repos?per_page=100&page=2>; rel="next"'},
        match=[responses.matchers.query_param_matcher({"per_page": "100"})],
    )
    gh_api.get(
        f"{API}/user/repos",
        json=[{"full_name": "acme/b"}],
        match=[responses.matchers.query_param_matcher({"per_page": "100", "page": "2"})],
    )
    gh_api.get(
        f"{API}/repos/acme/svc/actions/workflows/ci.yaml/runs",
        json={"total_count": 1, "workflow_runs": [{"id": 3}]},
    )

    assert [r["full_name"] for r in client(clock).paginate("/user/repos")] == ["acme/a", "acme/b"]
    assert client(clock).paginate("/repos/acme/svc/actions/workflows/ci.yaml/runs") == [{"id": 3}]


def test_sealed_secret_opens_with_the_private_key() -> None:
    private = PrivateKey.generate()
    public = base64.b64encode(bytes(private.public_key)).decode()

    sealed = seal_secret(public, "s3cr3t-value")

    assert SealedBox(private).decrypt(base64.b64decode(sealed)) == b"s3cr3t-value"
    assert seal_secret(public, "s3cr3t-value") != sealed  # a fresh ephemeral key each time


def test_a_bad_public_key_is_a_clear_error() -> None:
    with pytest.raises(GithubInputError, match="public key that cannot seal"):
        seal_secret("not base64!", "x")


def test_cancel_ends_a_wait() -> None:
    signal = CancelSignal()
    signal.cancel()
    with pytest.raises(TaskCancelledError):
        cancellable_sleep(signal.wait)(3600)
