"""aws:iam:github-oidc-role against moto: least privilege, asserted field by field."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import jsonschema
import pytest

from scaffolder.actions.builtin.aws_iam_github_oidc_role import (
    create_aws_iam_github_oidc_role_action,
)
from scaffolder.errors import ConflictError, NotAllowedError
from scaffolder.integrations.aws import AwsClients
from tests.aws.conftest import ACCOUNT, REGION, Checkpoints, aws_config, relax_iam

PROVIDER = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
INPUT = {
    "roleName": "payments-github-deploy",
    "repository": "acme/payments",
    "environment": "production",
    "ecrRepository": "payments",
    "cluster": "platform",
    "service": "payments",
    "taskRole": "payments-TaskRole-*",
    "executionRole": f"arn:aws:iam::{ACCOUNT}:role/payments-execution",
}
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/payments-github-deploy"


def document(value: Any) -> Any:
    """A policy document as IAM returns it (moto: a dict, or URL-encoded JSON)."""
    return value if isinstance(value, dict) else json.loads(unquote(value))


def role_documents(boto: Callable[[str], Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    iam = boto("iam")
    role = iam.get_role(RoleName="payments-github-deploy")["Role"]
    names = iam.list_role_policies(RoleName="payments-github-deploy")["PolicyNames"]
    assert names == ["github-deploy"]
    inline = iam.get_role_policy(RoleName="payments-github-deploy", PolicyName="github-deploy")
    return document(role["AssumeRolePolicyDocument"]), document(inline["PolicyDocument"])


def test_trust_policy_admits_one_environment_of_one_repository(
    aws: AwsClients, run_aws: Any, boto: Callable[[str], Any]
) -> None:
    run = run_aws(create_aws_iam_github_oidc_role_action(aws=aws), INPUT)

    assert run.outputs == {"roleArn": ROLE_ARN}
    trust, _ = role_documents(boto)
    assert trust["Version"] == "2012-10-17"
    assert len(trust["Statement"]) == 1
    statement = trust["Statement"][0]
    assert set(statement) == {"Effect", "Principal", "Action", "Condition"}
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Federated": PROVIDER}
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Condition"] == {
        "StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": "repo:acme/payments:environment:production",
        }
    }


def test_inline_policy_is_least_privilege(
    aws: AwsClients, run_aws: Any, boto: Callable[[str], Any]
) -> None:
    run_aws(create_aws_iam_github_oidc_role_action(aws=aws), INPUT)

    _, policy = role_documents(boto)
    assert policy["Version"] == "2012-10-17"
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert list(statements) == [
        "EcrLogin",
        "PushImages",
        "TaskDefinitions",
        "DeployService",
        "PassTaskRoles",
    ]
    assert all(s["Effect"] == "Allow" for s in statements.values())
    assert not any("NotAction" in s or "NotResource" in s for s in statements.values())

    assert statements["EcrLogin"]["Action"] == "ecr:GetAuthorizationToken"
    assert statements["EcrLogin"]["Resource"] == "*"
    assert "Condition" not in statements["EcrLogin"]

    assert statements["PushImages"]["Action"] == [
        "ecr:BatchCheckLayerAvailability",
        "ecr:CompleteLayerUpload",
        "ecr:InitiateLayerUpload",
        "ecr:PutImage",
        "ecr:UploadLayerPart",
    ]
    assert statements["PushImages"]["Resource"] == (
        f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/payments"
    )

    # deploy.sh reads the running revision's image; the deploy registers the next one.
    assert statements["TaskDefinitions"]["Action"] == [
        "ecs:DescribeTaskDefinition",
        "ecs:RegisterTaskDefinition",
    ]
    assert statements["TaskDefinitions"]["Resource"] == "*"

    assert statements["DeployService"]["Action"] == ["ecs:DescribeServices", "ecs:UpdateService"]
    assert statements["DeployService"]["Resource"] == (
        f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/platform/payments"
    )

    assert statements["PassTaskRoles"]["Action"] == "iam:PassRole"
    assert statements["PassTaskRoles"]["Resource"] == [
        f"arn:aws:iam::{ACCOUNT}:role/payments-TaskRole-*",
        f"arn:aws:iam::{ACCOUNT}:role/payments-execution",
    ]
    assert statements["PassTaskRoles"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    }
    # Only the two *:* resources AWS requires; nothing else is a wildcard.
    wildcards = [s["Sid"] for s in statements.values() if s["Resource"] == "*"]
    assert wildcards == ["EcrLogin", "TaskDefinitions"]


SCHEDULED = {
    **{k: v for k, v in INPUT.items() if k != "service"},
    "schedule": "nightly",
    "schedulerRole": "nightly-SchedulerRole-*",
}


def test_a_scheduled_job_may_point_its_schedule_and_run_once(
    aws: AwsClients, run_aws: Any, boto: Callable[[str], Any]
) -> None:
    """What infra/deploy.sh and infra/point_schedule.sh of ecs-scheduled-task call."""
    run_aws(create_aws_iam_github_oidc_role_action(aws=aws), SCHEDULED)

    _, policy = role_documents(boto)
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert list(statements) == [
        "EcrLogin",
        "PushImages",
        "TaskDefinitions",
        "PointSchedule",
        "PassSchedulerRole",
        "RunJobOnce",
        "WatchJob",
        "PassTaskRoles",
    ]  # no DeployService: there is no service
    assert statements["PointSchedule"] == {
        "Sid": "PointSchedule",
        "Effect": "Allow",
        "Action": ["scheduler:GetSchedule", "scheduler:UpdateSchedule"],
        "Resource": f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/default/nightly",
    }
    assert statements["PassSchedulerRole"] == {
        "Sid": "PassSchedulerRole",
        "Effect": "Allow",
        "Action": "iam:PassRole",
        "Resource": f"arn:aws:iam::{ACCOUNT}:role/nightly-SchedulerRole-*",
        "Condition": {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}},
    }
    assert statements["RunJobOnce"] == {
        "Sid": "RunJobOnce",
        "Effect": "Allow",
        "Action": "ecs:RunTask",
        "Resource": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/nightly:*",
        "Condition": {
            "ArnEquals": {"ecs:cluster": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/platform"}
        },
    }
    assert statements["WatchJob"] == {
        "Sid": "WatchJob",
        "Effect": "Allow",
        "Action": "ecs:DescribeTasks",
        "Resource": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/platform/*",
    }
    # RunTask passes the task and execution roles to ECS, as a service deploy does.
    assert statements["PassTaskRoles"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    }
    wildcards = [s["Sid"] for s in statements.values() if s["Resource"] == "*"]
    assert wildcards == ["EcrLogin", "TaskDefinitions"]


def test_a_stack_is_deployed_only_through_the_cloudformation_role(
    aws: AwsClients, run_aws: Any, boto: Callable[[str], Any]
) -> None:
    """infra/deploy.sh: `aws cloudformation deploy --role-arn` on the service's own stack."""
    cfn_role = f"arn:aws:iam::{ACCOUNT}:role/platform-cloudformation"
    run_aws(
        create_aws_iam_github_oidc_role_action(aws=aws),
        {**INPUT, "stack": "payments", "cloudFormationRole": cfn_role},
    )

    _, policy = role_documents(boto)
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert list(statements)[-3:] == [
        "CreateStackChangeSets",
        "DeployStack",
        "PassCloudFormationRole",
    ]
    stack = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/payments/*"
    assert statements["CreateStackChangeSets"] == {
        "Sid": "CreateStackChangeSets",
        "Effect": "Allow",
        "Action": "cloudformation:CreateChangeSet",
        "Resource": stack,
        "Condition": {"StringEquals": {"cloudformation:RoleArn": cfn_role}},
    }
    assert statements["DeployStack"] == {
        "Sid": "DeployStack",
        "Effect": "Allow",
        "Action": [
            "cloudformation:DescribeChangeSet",
            "cloudformation:DescribeStacks",
            "cloudformation:ExecuteChangeSet",
        ],
        "Resource": stack,
    }
    assert statements["PassCloudFormationRole"] == {
        "Sid": "PassCloudFormationRole",
        "Effect": "Allow",
        "Action": "iam:PassRole",
        "Resource": cfn_role,
        "Condition": {"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}},
    }
    # Nothing else: no iam:CreateRole, ec2:*, elasticloadbalancing:* for the stack's resources.
    actions = {
        a
        for s in statements.values()
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert not {
        a for a in actions if a.split(":")[0] not in ("ecr", "ecs", "iam", "cloudformation")
    }
    assert {a for a in actions if a.startswith("iam:")} == {"iam:PassRole"}


def test_the_oidc_provider_is_created_with_the_sts_audience(
    aws: AwsClients, run_aws: Any, boto: Callable[[str], Any]
) -> None:
    run = run_aws(create_aws_iam_github_oidc_role_action(aws=aws), INPUT)
    provider = boto("iam").get_open_id_connect_provider(OpenIDConnectProviderArn=PROVIDER)
    assert provider["Url"] == "token.actions.githubusercontent.com"
    assert provider["ClientIDList"] == ["sts.amazonaws.com"]
    assert run.messages == [
        f"Created the OIDC identity provider {PROVIDER}",
        f"Created IAM role {ROLE_ARN}",
        f"Role {ROLE_ARN} may be assumed by repo:acme/payments:environment:production",
    ]


def test_an_existing_provider_is_reused(
    aws: AwsClients, run_aws: Any, boto: Callable[[str], Any]
) -> None:
    # (Adding a missing audience to an existing provider is not covered: moto does not
    # implement iam:AddClientIDToOpenIDConnectProvider.)
    iam = boto("iam")
    iam.create_open_id_connect_provider(
        Url="https://token.actions.githubusercontent.com", ClientIDList=["sts.amazonaws.com"]
    )
    run = run_aws(create_aws_iam_github_oidc_role_action(aws=aws), INPUT)
    assert run.messages[0] == f"OIDC identity provider {PROVIDER} exists"
    assert len(iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]) == 1


def test_a_ref_instead_of_an_environment(
    aws: AwsClients, run_aws: Any, boto: Callable[[str], Any]
) -> None:
    values = {**INPUT, "ref": "refs/heads/main"}
    del values["environment"]
    run_aws(create_aws_iam_github_oidc_role_action(aws=aws), values)
    trust, _ = role_documents(boto)
    condition = trust["Statement"][0]["Condition"]["StringEquals"]
    assert (
        condition["token.actions.githubusercontent.com:sub"]
        == "repo:acme/payments:ref:refs/heads/main"
    )


def test_rerun_adopts_its_own_role(
    aws: AwsClients, run_aws: Any, boto: Callable[[str], Any]
) -> None:
    action = create_aws_iam_github_oidc_role_action(aws=aws)
    run_aws(action, INPUT)
    again = run_aws(action, {**INPUT, "service": "payments-v2"})  # another task, same role

    assert again.outputs == {"roleArn": ROLE_ARN}
    assert (
        "IAM role payments-github-deploy exists (made for "
        "repo:acme/payments:environment:production); trust policy updated"
    ) in again.messages
    _, policy = role_documents(boto)
    deploy = next(s for s in policy["Statement"] if s["Sid"] == "DeployService")
    assert deploy["Resource"].endswith(":service/platform/payments-v2")


def test_someone_elses_role_is_never_rewritten(
    aws: AwsClients, run_aws: Any, boto: Callable[[str], Any]
) -> None:
    theirs = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"}
        ],
    }
    boto("iam").create_role(
        RoleName="payments-github-deploy", AssumeRolePolicyDocument=json.dumps(theirs)
    )
    with pytest.raises(ConflictError, match="exists and was not made by the scaffolder"):
        run_aws(create_aws_iam_github_oidc_role_action(aws=aws), INPUT)
    role = boto("iam").get_role(RoleName="payments-github-deploy")["Role"]
    assert document(role["AssumeRolePolicyDocument"]) == theirs
    assert boto("iam").list_role_policies(RoleName="payments-github-deploy")["PolicyNames"] == []


def test_retry_after_a_failure_in_the_middle(
    moto_endpoint: str, enforce_iam: Callable[..., Any], run_aws: Any, boto: Callable[[str], Any]
) -> None:
    allowed = [
        "sts:GetCallerIdentity",
        "iam:GetOpenIDConnectProvider",
        "iam:CreateOpenIDConnectProvider",
        "iam:CreateRole",
    ]
    user = enforce_iam(allowed)
    action = create_aws_iam_github_oidc_role_action(
        aws=AwsClients.from_config(aws_config(moto_endpoint))
    )
    checkpoints = Checkpoints()
    with pytest.raises(NotAllowedError, match="not allowed to call iam:PutRolePolicy"):
        run_aws(action, INPUT, checkpoints=checkpoints)

    enforce_iam.grant(user, [*allowed, "iam:PutRolePolicy"])  # type: ignore[attr-defined]
    retried = run_aws(action, INPUT, checkpoints=checkpoints)

    assert retried.outputs == {"roleArn": ROLE_ARN}
    assert checkpoints.ran == [
        "iam.oidc-provider.token.actions.githubusercontent.com",
        "iam.role.payments-github-deploy",
    ]
    relax_iam(moto_endpoint)
    _, policy = role_documents(boto)
    assert len(policy["Statement"]) == 5


def test_dry_run_shows_both_documents_and_creates_nothing(
    aws: AwsClients, run_aws: Any, boto: Callable[[str], Any]
) -> None:
    run = run_aws(create_aws_iam_github_oidc_role_action(aws=aws), INPUT, is_dry_run=True)
    assert run.outputs == {}
    (message,) = run.messages
    assert message.startswith(
        "Would ensure the OIDC identity provider https://token.actions.githubusercontent.com "
        "(audience sts.amazonaws.com) and create IAM role payments-github-deploy with this "
        "trust policy:\n"
    )
    assert '"Federated": "arn:aws:iam::<account-id>:oidc-provider/token.actions.' in message
    assert "arn:aws:ecs:us-east-1:<account-id>:service/platform/payments" in message
    assert boto("iam").list_roles()["Roles"] == []
    assert boto("iam").list_open_id_connect_providers()["OpenIDConnectProviderList"] == []


def test_skipped_when_aws_is_not_configured(run_aws: Any) -> None:
    run = run_aws(create_aws_iam_github_oidc_role_action(aws=AwsClients(None)), INPUT)
    assert run.messages == [
        "Skipping aws:iam:github-oidc-role: AWS is not configured (set aws.region, and "
        "aws.endpointUrl for a local stand-in)"
    ]
    assert run.outputs == {}


@pytest.mark.parametrize(
    "change",
    [
        {"ref": "refs/heads/main"},  # environment and ref: exactly one
        {"environment": None},  # neither
        {"environment": "prod*"},  # no wildcards in the subject
        {"repository": "acme"},
        {"repository": "acme/pay:ments"},
        {"taskRole": "*"},
        {"cluster": "a/b"},
        {"extra": 1},
        {"service": None},  # neither a service nor a schedule
        {"schedule": "nightly"},  # a schedule without the role it passes
        {"stack": "payments"},  # a stack without the CloudFormation role
        {"cloudFormationRole": "platform-cloudformation"},  # and the other way round
    ],
)
def test_input_schema_refuses(change: dict[str, Any]) -> None:
    values = {**INPUT, **change}
    values = {k: v for k, v in values.items() if v is not None}
    schema = create_aws_iam_github_oidc_role_action(aws=AwsClients(None)).input_schema
    assert schema is not None
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema).validate(values)
