"""The bundled ecs-web-service template bootstraps AWS through the whole task pipeline.

Catalog, task store, worker, runner (its checkpoints in the task state) and the retry route's
service method, against moto; and the same template without AWS configured.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from scaffolder.services import Services, build_services
from scaffolder.settings import Settings
from scaffolder.tasks.service import Caller
from tests.aws.conftest import ACCOUNT, REGION, aws_config, relax_iam
from tests.conftest import wait_for_status

WEB_SERVICE = Path(__file__).resolve().parents[2] / "cookiecutters" / "ecs-web-service"
VALUES = {
    "name": "payments",
    # Published to the local git host (the GitHub side has its own tests in tests/github).
    "repoUrl": "localhost?owner=acme&repo=payments",
    "bootstrapAws": True,
}
SKIP_ECR = (
    "Skipping aws:ecr:create: AWS is not configured (set aws.region, and aws.endpointUrl "
    "for a local stand-in)"
)


@pytest.fixture
def start(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Services]]:
    built: list[Services] = []

    def make(extra: dict[str, Any]) -> Services:
        catalog = {"locations": [{"type": "file", "target": str(WEB_SERVICE / "template.yaml")}]}
        services = build_services(make_settings({"catalog": catalog, **extra}))
        built.append(services)
        return services

    yield make
    for services in built:
        services.close()


def run_task(services: Services, values: dict[str, Any]) -> tuple[str, str]:
    task_id = services.scaffolder.create_task(
        template_ref="template:default/ecs-web-service",
        values=values,
        secrets=None,
        caller=Caller(),
    )
    return task_id, wait_for_status(services, task_id, timeout=60)


def messages(services: Services, task_id: str) -> list[str]:
    return [str(e.body.get("message", "")) for e in services.broker.store.list_events(task_id)]


def test_creates_the_repository_and_the_deploy_role(
    start: Callable[..., Services], moto_endpoint: str, boto: Callable[[str], Any]
) -> None:
    services = start(aws_config(moto_endpoint))
    task_id, status = run_task(services, VALUES)
    log = messages(services, task_id)
    assert status == "completed", "\n".join(log)

    repo = boto("ecr").describe_repositories(repositoryNames=["payments"])["repositories"][0]
    assert repo["imageTagMutability"] == "IMMUTABLE"
    role = boto("iam").get_role(RoleName="payments-github-deploy")["Role"]
    trust = role["AssumeRolePolicyDocument"]
    trust = trust if isinstance(trust, dict) else json.loads(unquote(trust))
    assert trust["Statement"][0]["Condition"]["StringEquals"] == {
        "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
        "token.actions.githubusercontent.com:sub": "repo:acme/payments:environment:production",
    }
    policy = boto("iam").get_role_policy(RoleName=role["RoleName"], PolicyName="github-deploy")
    document = policy["PolicyDocument"]
    document = document if isinstance(document, dict) else json.loads(unquote(document))
    resources = {s["Sid"]: s["Resource"] for s in document["Statement"]}
    assert resources["DeployService"] == f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/default/payments"
    assert resources["PassTaskRoles"] == [
        f"arn:aws:iam::{ACCOUNT}:role/payments-TaskRole-*",
        f"arn:aws:iam::{ACCOUNT}:role/payments-ExecutionRole-*",
    ]

    output = services.broker.store.get_task(task_id)
    completion = [e.body for e in services.broker.store.list_events(task_id) if "output" in e.body][
        -1
    ]["output"]
    texts = {t["title"]: t["content"] for t in completion["text"]}
    assert repo["repositoryUri"] in texts["ECR repository"]
    assert role["Arn"] in texts["Deploy role"]
    assert output.status.value == "completed"


def test_a_retry_after_access_denied_finishes_without_creating_twice(
    start: Callable[..., Services],
    moto_endpoint: str,
    enforce_iam: Callable[..., Any],
    boto: Callable[[str], Any],
) -> None:
    allowed = [
        "ecr:CreateRepository",
        "ecr:PutLifecyclePolicy",
        "sts:GetCallerIdentity",
        "iam:GetOpenIDConnectProvider",
        "iam:CreateOpenIDConnectProvider",
        "iam:CreateRole",
    ]
    user = enforce_iam(allowed)
    services = start(aws_config(moto_endpoint))
    task_id, status = run_task(services, VALUES)
    assert status == "failed"
    first = messages(services, task_id)
    assert any(
        m.startswith(
            "NotAllowedError: aws:iam:github-oidc-role is not allowed to call iam:PutRolePolicy"
        )
        for m in first
    ), first

    enforce_iam.grant(user, [*allowed, "iam:PutRolePolicy"])  # type: ignore[attr-defined]
    services.scaffolder.retry_task(task_id, secrets=None, caller=Caller())
    status = wait_for_status(services, task_id, timeout=60)
    log = messages(services, task_id)
    assert status == "completed", "\n".join(log)
    retried = log[len(first) :]
    # The repository, the provider and the role came from the task's checkpoints.
    created = ("Created ECR repository", "Created IAM role", "Created the OIDC identity provider")
    assert [c for c in created if any(c in m for m in first)] == list(created)
    assert not [m for m in retried if any(c in m for c in created)]
    assert any("Role arn:aws:iam::" in m for m in retried)
    relax_iam(moto_endpoint)
    assert boto("iam").list_role_policies(RoleName="payments-github-deploy")["PolicyNames"] == [
        "github-deploy"
    ]


def test_without_aws_configured_the_steps_say_they_skip(start: Callable[..., Services]) -> None:
    services = start({})
    task_id, status = run_task(services, VALUES)
    log = messages(services, task_id)
    assert status == "completed", "\n".join(log)
    assert any(m.endswith(SKIP_ECR) for m in log), log
    assert any(
        m.endswith("Skipping aws:iam:github-oidc-role: " + SKIP_ECR.split(": ", 1)[1]) for m in log
    )
