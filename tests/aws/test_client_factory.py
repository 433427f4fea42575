"""integrations/aws: the ``aws`` section, the client factory, retries and error translation."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

import pytest

from scaffolder.errors import AuthenticationError, InputError, NotAllowedError, ScaffolderError
from scaffolder.integrations.aws import NOT_CONFIGURED, AwsClients, AwsConfig, AwsTarget
from scaffolder.integrations.aws_errors import (
    AwsConflictError,
    AwsError,
    AwsInputError,
    AwsNotFoundError,
)
from scaffolder.settings import load_config
from tests.aws.conftest import ACCOUNT, REGION, FaultProxy, aws_config

# --- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [{}, {"aws": None}, {"aws": {}}, {"aws": {"templates": {}}}])
def test_no_region_means_not_configured(raw: dict[str, Any]) -> None:
    assert AwsConfig.from_config(raw) is None
    clients = AwsClients.from_config(raw)
    assert not clients.configured
    with pytest.raises(ScaffolderError, match=r"AWS is not configured \(set aws.region"):
        clients.client("ecr", action="aws:ecr:create")


def test_region_from_an_unset_environment_variable_means_not_configured(tmp_path: Any) -> None:
    path = tmp_path / "app-config.yaml"
    path.write_text("aws:\n  region: ${AWS_REGION}\n")
    assert AwsConfig.from_config(load_config([path], environ={})) is None
    configured = AwsConfig.from_config(load_config([path], environ={"AWS_REGION": "eu-west-1"}))
    assert configured is not None
    assert configured.default.region == "eu-west-1"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"endpointUrl": "http://127.0.0.1:5000"}, "'aws.region' is required"),
        ({"region": "us-east-1", "regoin": "x"}, "Unknown config keys under aws: regoin"),
        ({"region": "us-east-1", "retryMode": "fast"}, "must be standard or adaptive"),
        ({"region": "us-east-1", "maxAttempts": 0}, "at least 1"),
        ({"region": "us-east-1", "endpointUrl": 5000}, "'aws.endpointUrl' must be a string"),
        ({"region": "us-east-1", "templates": ["x"]}, "'aws.templates' must map"),
        (
            {"region": "us-east-1", "templates": {"svc": {"retryMode": "adaptive"}}},
            r"Unknown config keys under aws.templates\[svc\]: retryMode",
        ),
    ],
)
def test_malformed_sections_are_refused(section: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        AwsConfig.from_config({"aws": section})


def test_template_overrides_by_ref_or_name_and_an_explicit_region() -> None:
    config = AwsConfig.from_config(
        {
            "aws": {
                "region": "us-east-1",
                "endpointUrl": "http://127.0.0.1:5000",
                "assumeRoleArn": "arn:aws:iam::111111111111:role/scaffolder",
                "templates": {
                    "template:default/ecs-web-service": {"region": "eu-west-1"},
                    "ecs-worker-service": {
                        "assumeRoleArn": "arn:aws:iam::222222222222:role/scaffolder",
                        "externalId": "platform",
                    },
                },
            }
        }
    )
    assert config is not None
    default = AwsTarget(
        region="us-east-1",
        endpoint_url="http://127.0.0.1:5000",
        assume_role_arn="arn:aws:iam::111111111111:role/scaffolder",
    )
    assert config.target() == default
    assert config.target(template_ref="template:default/other") == default
    web = config.target(template_ref="template:default/ecs-web-service")
    assert web.region == "eu-west-1"
    assert web.assume_role_arn == default.assume_role_arn
    worker = config.target(template_ref="template:default/ecs-worker-service", region="ap-south-1")
    assert worker.assume_role_arn == "arn:aws:iam::222222222222:role/scaffolder"
    assert worker.external_id == "platform"
    assert worker.region == "ap-south-1"
    assert worker.endpoint_url == "http://127.0.0.1:5000"


# --- the factory against moto ----------------------------------------------------------------


def test_clients_reach_moto_in_the_configured_region(aws: AwsClients) -> None:
    sts = aws.client("sts", action="test")
    assert sts.get_caller_identity()["Account"] == ACCOUNT
    ecr = aws.client("ecr", action="test", region="eu-west-1")
    assert ecr.region == "eu-west-1"
    assert aws.client("ecr", action="test").region == REGION


def test_assumed_role_credentials(moto_endpoint: str, boto: Callable[[str], Any]) -> None:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"}
        ],
    }
    role = boto("iam").create_role(
        RoleName="scaffolder", AssumeRolePolicyDocument=json.dumps(trust)
    )
    clients = AwsClients.from_config(
        aws_config(moto_endpoint, assumeRoleArn=role["Role"]["Arn"], sessionName="task-1")
    )
    identity = clients.client("sts", action="test").get_caller_identity()
    assert identity["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/scaffolder/task-1"


# --- errors -----------------------------------------------------------------------------------


def test_missing_and_existing_resources_are_our_errors(aws: AwsClients) -> None:
    ecr = aws.client("ecr", action="aws:ecr:create")
    with pytest.raises(AwsNotFoundError) as missing:
        ecr.describe_repositories(repositoryNames=["nope"])
    assert missing.value.code == "RepositoryNotFoundException"
    assert missing.value.operation == "DescribeRepositories"
    assert str(missing.value).startswith("aws:ecr:create: ecr:DescribeRepositories failed: ")
    ecr.create_repository(repositoryName="svc")
    with pytest.raises(AwsConflictError):
        ecr.create_repository(repositoryName="svc")


def test_validation_errors_are_input_errors(aws: AwsClients) -> None:
    cfn = aws.client("cloudformation", action="aws:cloudformation:deploy")
    with pytest.raises(AwsNotFoundError, match="does not exist"):
        cfn.describe_stacks(StackName="missing")  # CloudFormation says so with a ValidationError
    template = {
        "Resources": {"Q": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {"X": {"Value": {"Fn::GetAtt": ["Q", "Nope"]}}},
    }
    with pytest.raises(AwsInputError) as invalid:
        cfn.create_stack(StackName="bad", TemplateBody=json.dumps(template))
    assert invalid.value.code == "ValidationError"
    assert isinstance(invalid.value, InputError)
    with pytest.raises(AwsInputError, match="invalid ecr request"):
        aws.client("ecr", action="x").create_repository(repositoryName=7)


def test_access_denied_names_the_action_and_the_iam_action(
    aws: AwsClients, enforce_iam: Callable[..., Any]
) -> None:
    enforce_iam(["ecr:DescribeRepositories"])
    ecr = AwsClients(aws.config).client("ecr", action="aws:ecr:create")
    assert ecr.describe_repositories()["repositories"] == []
    with pytest.raises(NotAllowedError) as denied:
        ecr.create_repository(repositoryName="svc")
    assert denied.value.name == "NotAllowedError"
    # moto answers with an XML body even for ECR (JSON): the code is recovered from it.
    assert denied.value.code == "AccessDenied"
    assert denied.value.message.startswith(
        "aws:ecr:create is not allowed to call ecr:CreateRepository: "
    )
    assert "Pipeline bootstrap on AWS" in denied.value.message


def test_unknown_credentials_are_an_authentication_error(
    aws: AwsClients, enforce_iam: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    enforce_iam(["ecr:DescribeRepositories"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIANOTAUSERINMOTO00")
    with pytest.raises(AuthenticationError, match="did not accept the scaffolder's credentials"):
        AwsClients(aws.config).client("sts", action="x").get_caller_identity()


def test_no_credentials_at_all(aws: AwsClients, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    with pytest.raises(AuthenticationError, match="no usable AWS credentials"):
        AwsClients(aws.config).client("ecr", action="x").describe_repositories()


def test_an_unreachable_endpoint_is_reported() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    clients = AwsClients.from_config(aws_config(f"http://127.0.0.1:{port}", maxAttempts=1))
    with pytest.raises(AwsError, match=r"x: cannot reach AWS \(ecr\)"):
        clients.client("ecr", action="x").describe_repositories()


# --- throttling -------------------------------------------------------------------------------


def test_throttling_is_retried_with_backoff(fault_proxy: FaultProxy) -> None:
    clients = AwsClients.from_config(aws_config(fault_proxy.url, maxAttempts=3))
    fault_proxy.throttle("CreateRepository", times=2)
    created = clients.client("ecr", action="x").create_repository(repositoryName="svc")
    assert created["repository"]["repositoryName"] == "svc"
    assert created["ResponseMetadata"]["RetryAttempts"] == 2
    assert fault_proxy.seen["CreateRepository"] == 3


def test_throttling_past_max_attempts_fails_clearly(fault_proxy: FaultProxy) -> None:
    clients = AwsClients.from_config(aws_config(fault_proxy.url, maxAttempts=2))
    fault_proxy.throttle("DescribeRepositories", times=5)
    with pytest.raises(AwsError) as throttled:
        clients.client("ecr", action="aws:ecr:create").describe_repositories()
    assert throttled.value.code == "ThrottlingException"
    assert str(throttled.value) == (
        "aws:ecr:create: AWS kept throttling ecr:DescribeRepositories after 2 attempts "
        "(ThrottlingException); try again later or raise aws.maxAttempts"
    )
    assert fault_proxy.seen["DescribeRepositories"] == 2


def test_not_configured_message() -> None:
    assert NOT_CONFIGURED == (
        "AWS is not configured (set aws.region, and aws.endpointUrl for a local stand-in)"
    )
