"""aws:ecr:create against moto."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest

from scaffolder.actions.builtin.aws_ecr_create import create_aws_ecr_create_action
from scaffolder.errors import NotAllowedError
from scaffolder.integrations.aws import AwsClients
from tests.aws.conftest import ACCOUNT, REGION, Checkpoints, aws_config, relax_iam

URI = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/payments"
ARN = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/payments"


def test_creates_the_repository(aws: AwsClients, run_aws: Any, boto: Callable[[str], Any]) -> None:
    run = run_aws(
        create_aws_ecr_create_action(aws=aws),
        {"repositoryName": "payments", "keepImages": 20, "tags": {"component": "payments"}},
    )

    assert run.outputs == {"repositoryUri": URI, "repositoryArn": ARN}
    ecr = boto("ecr")
    repo = ecr.describe_repositories(repositoryNames=["payments"])["repositories"][0]
    assert repo["imageTagMutability"] == "IMMUTABLE"
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repo["encryptionConfiguration"] == {"encryptionType": "AES256"}
    assert ecr.list_tags_for_resource(resourceArn=ARN)["tags"] == [
        {"Key": "component", "Value": "payments"}
    ]
    policy = json.loads(ecr.get_lifecycle_policy(repositoryName="payments")["lifecyclePolicyText"])
    assert policy == {
        "rules": [
            {
                "rulePriority": 1,
                "description": "Keep the last 20 images",
                "selection": {
                    "tagStatus": "any",
                    "countType": "imageCountMoreThan",
                    "countNumber": 20,
                },
                "action": {"type": "expire"},
            }
        ]
    }
    assert run.messages == [
        f"Created ECR repository {URI}",
        "Lifecycle policy set on payments: keep the last 20 images",
    ]


def test_kms_encryption(aws: AwsClients, run_aws: Any, boto: Callable[[str], Any]) -> None:
    key = "arn:aws:kms:us-east-1:123456789012:key/abcd"
    run_aws(create_aws_ecr_create_action(aws=aws), {"repositoryName": "payments", "kmsKey": key})
    repo = boto("ecr").describe_repositories()["repositories"][0]
    assert repo["encryptionConfiguration"] == {"encryptionType": "KMS", "kmsKey": key}


def test_rerun_in_the_same_task_creates_nothing_again(aws: AwsClients, run_aws: Any) -> None:
    action = create_aws_ecr_create_action(aws=aws)
    checkpoints = Checkpoints()
    first = run_aws(action, {"repositoryName": "payments"}, checkpoints=checkpoints)
    second = run_aws(action, {"repositoryName": "payments"}, checkpoints=checkpoints)

    assert second.outputs == first.outputs
    assert second.messages == []
    assert checkpoints.ran == [
        f"ecr.repository.{REGION}.payments",
        f"ecr.lifecycle.{REGION}.payments",
    ]


def test_an_existing_repository_gives_the_same_outputs_and_is_left_alone(
    aws: AwsClients, run_aws: Any, boto: Callable[[str], Any]
) -> None:
    ecr = boto("ecr")
    ecr.create_repository(repositoryName="payments", imageTagMutability="MUTABLE")
    theirs = json.dumps(
        {
            "rules": [
                {
                    "rulePriority": 1,
                    "selection": {
                        "tagStatus": "untagged",
                        "countType": "sinceImagePushed",
                        "countUnit": "days",
                        "countNumber": 7,
                    },
                    "action": {"type": "expire"},
                }
            ]
        }
    )
    ecr.put_lifecycle_policy(repositoryName="payments", lifecyclePolicyText=theirs)

    run = run_aws(create_aws_ecr_create_action(aws=aws), {"repositoryName": "payments"})

    assert run.outputs == {"repositoryUri": URI, "repositoryArn": ARN}
    assert run.messages == [
        "ECR repository payments already exists; reusing it as it is",
        "Existing repository payments has imageTagMutability MUTABLE, not IMMUTABLE; "
        "it was not changed",
        "Existing repository payments has scanOnPush False, not True; it was not changed",
    ]
    assert run.levels() == ["info", "warn", "warn"]
    repo = ecr.describe_repositories()["repositories"][0]
    assert repo["imageTagMutability"] == "MUTABLE"
    assert ecr.get_lifecycle_policy(repositoryName="payments")["lifecyclePolicyText"] == theirs


def test_retry_after_a_failure_in_the_middle(
    moto_endpoint: str,
    enforce_iam: Callable[..., Any],
    run_aws: Any,
    boto: Callable[[str], Any],
) -> None:
    user = enforce_iam(["ecr:CreateRepository"])
    action = create_aws_ecr_create_action(aws=AwsClients.from_config(aws_config(moto_endpoint)))
    checkpoints = Checkpoints()

    with pytest.raises(NotAllowedError) as denied:
        run_aws(action, {"repositoryName": "payments"}, checkpoints=checkpoints)
    assert denied.value.message.startswith(
        "aws:ecr:create is not allowed to call ecr:PutLifecyclePolicy: User: "
        f"arn:aws:iam::{ACCOUNT}:user/scaffolder is not authorized to perform: "
        "ecr:PutLifecyclePolicy"
    )
    assert checkpoints.stored[f"ecr.repository.{REGION}.payments"]["status"] == "success"

    enforce_iam.grant(user, ["ecr:CreateRepository", "ecr:PutLifecyclePolicy"])  # type: ignore[attr-defined]
    retried = run_aws(action, {"repositoryName": "payments"}, checkpoints=checkpoints)

    assert retried.outputs == {"repositoryUri": URI, "repositoryArn": ARN}
    # The repository came from the checkpoint: only the lifecycle policy was done again.
    assert checkpoints.ran == [
        f"ecr.repository.{REGION}.payments",
        f"ecr.lifecycle.{REGION}.payments",
        f"ecr.lifecycle.{REGION}.payments",
    ]
    relax_iam(moto_endpoint)
    assert boto("ecr").get_lifecycle_policy(repositoryName="payments")["lifecyclePolicyText"]


def test_dry_run_logs_the_plan_and_calls_nothing(
    aws: AwsClients, run_aws: Any, boto: Callable[[str], Any]
) -> None:
    run = run_aws(
        create_aws_ecr_create_action(aws=aws),
        {"repositoryName": "payments", "region": "eu-west-1", "tags": {"team": "payments"}},
        is_dry_run=True,
    )
    assert run.messages == [
        "Would create ECR repository payments in eu-west-1 (or reuse it if it exists): tags "
        "IMMUTABLE, scan on push on, encryption AES256, lifecycle policy keeping the last 30 "
        "images, resource tags {'team': 'payments'}"
    ]
    assert run.outputs == {}
    assert boto("ecr").describe_repositories()["repositories"] == []


def test_skipped_when_aws_is_not_configured(run_aws: Any) -> None:
    run = run_aws(create_aws_ecr_create_action(aws=AwsClients(None)), {"repositoryName": "x1"})
    assert run.messages == [
        "Skipping aws:ecr:create: AWS is not configured (set aws.region, and aws.endpointUrl "
        "for a local stand-in)"
    ]
    assert run.outputs == {}


def test_the_region_input_and_template_overrides(
    moto_endpoint: str, run_aws: Any, boto: Callable[[str], Any]
) -> None:
    clients = AwsClients.from_config(
        aws_config(moto_endpoint, templates={"ecs-web-service": {"region": "eu-west-1"}})
    )
    action = create_aws_ecr_create_action(aws=clients)
    web = run_aws(
        action, {"repositoryName": "web"}, template_ref="template:default/ecs-web-service"
    )
    other = run_aws(action, {"repositoryName": "api", "region": "ap-south-1"})
    assert web.outputs["repositoryArn"] == f"arn:aws:ecr:eu-west-1:{ACCOUNT}:repository/web"
    assert other.outputs["repositoryArn"] == f"arn:aws:ecr:ap-south-1:{ACCOUNT}:repository/api"


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"repositoryName": "Payments"},
        {"repositoryName": "payments", "keepImages": 0},
        {"repositoryName": "payments", "imageTagMutability": "SOMETIMES"},
        {"repositoryName": "payments", "unknown": True},
    ],
)
def test_input_schema_refuses(bad: dict[str, Any]) -> None:
    schema = create_aws_ecr_create_action(aws=AwsClients(None)).input_schema
    assert schema is not None
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema).validate(bad)
