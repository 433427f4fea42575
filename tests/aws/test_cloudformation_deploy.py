"""aws:cloudformation:deploy against moto: create, update, no changes, failure and rollback."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from scaffolder.actions.base import CancelSignal, TemplateAction
from scaffolder.actions.builtin.aws_cloudformation_deploy import (
    create_aws_cloudformation_deploy_action,
)
from scaffolder.errors import InputError, NotAllowedError, ScaffolderError, TaskCancelledError
from scaffolder.integrations.aws import AwsClients
from tests.aws.conftest import ACCOUNT, REGION, Checkpoints, aws_config

STACK = "payments"
USER_INITIATED = f"{STACK} (AWS::CloudFormation::Stack): CREATE_IN_PROGRESS - User Initiated"
PARAMETER_TEMPLATE = {
    "AWSTemplateFormatVersion": "2010-09-09",
    "Parameters": {"Greeting": {"Type": "String"}, "Subnets": {"Type": "CommaDelimitedList"}},
    "Resources": {
        "Config": {
            "Type": "AWS::SSM::Parameter",
            "Properties": {
                "Name": "/payments/greeting",
                "Type": "String",
                "Value": {"Ref": "Greeting"},
            },
        }
    },
    "Outputs": {
        "ParameterName": {"Value": {"Ref": "Config"}},
        "FirstSubnet": {"Value": {"Fn::Select": [0, {"Ref": "Subnets"}]}},
    },
}


@pytest.fixture
def deploy(aws: AwsClients) -> TemplateAction:
    return create_aws_cloudformation_deploy_action(aws=aws, poll_seconds=0.01)


def write(workspace: Path, template: dict[str, Any], path: str = "infra/stack.json") -> None:
    target = workspace / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(template))


INPUT: dict[str, Any] = {
    "stackName": STACK,
    "templatePath": "infra/stack.json",
    "parameters": {"Greeting": "hello", "Subnets": ["subnet-1", "subnet-2"]},
    "tags": {"component": "payments"},
}


def test_creates_the_stack_and_outputs_its_outputs(
    deploy: TemplateAction, run_aws: Any, aws_workspace: Path, boto: Callable[[str], Any]
) -> None:
    write(aws_workspace, PARAMETER_TEMPLATE)
    run = run_aws(deploy, INPUT)

    stack = boto("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert stack["Tags"] == [{"Key": "component", "Value": "payments"}]
    # (Subnets is checked through FirstSubnet: moto shows a list parameter as a Python list.)
    assert {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}["Greeting"] == (
        "hello"
    )
    assert boto("ssm").get_parameter(Name="/payments/greeting")["Parameter"]["Value"] == "hello"
    assert run.outputs == {
        "stackId": stack["StackId"],
        "outputs": {"ParameterName": "/payments/greeting", "FirstSubnet": "subnet-1"},
    }
    assert run.messages == [
        f"Creating stack {stack['StackId']}",
        USER_INITIATED,
        f"{STACK} (AWS::CloudFormation::Stack): CREATE_COMPLETE",
        f"Stack {STACK} is CREATE_COMPLETE",
    ]


def test_updates_an_existing_stack_and_streams_only_new_events(
    deploy: TemplateAction, run_aws: Any, aws_workspace: Path, boto: Callable[[str], Any]
) -> None:
    write(aws_workspace, PARAMETER_TEMPLATE)
    run_aws(deploy, INPUT)
    update = run_aws(deploy, {**INPUT, "parameters": {**INPUT["parameters"], "Greeting": "hi"}})

    stack = boto("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]
    assert stack["StackStatus"] == "UPDATE_COMPLETE"
    assert boto("ssm").get_parameter(Name="/payments/greeting")["Parameter"]["Value"] == "hi"
    assert update.messages == [
        f"Updating stack {stack['StackId']}",
        f"{STACK} (AWS::CloudFormation::Stack): UPDATE_IN_PROGRESS - User Initiated",
        f"{STACK} (AWS::CloudFormation::Stack): UPDATE_COMPLETE",
        f"Stack {STACK} is UPDATE_COMPLETE",
    ]


def test_no_changes_is_success(deploy: TemplateAction, run_aws: Any, aws_workspace: Path) -> None:
    # Without the list parameter, which moto takes for a change every time.
    template = {**PARAMETER_TEMPLATE, "Parameters": {"Greeting": {"Type": "String"}}}
    template["Outputs"] = {"ParameterName": {"Value": {"Ref": "Config"}}}
    write(aws_workspace, template)
    values = {**INPUT, "parameters": {"Greeting": "hello"}}
    first = run_aws(deploy, values)
    again = run_aws(deploy, values)
    assert again.messages == [f"Stack {STACK} is up to date: no changes"]
    assert again.outputs == first.outputs


def test_rerun_in_the_same_task_deploys_once(
    deploy: TemplateAction, run_aws: Any, aws_workspace: Path
) -> None:
    write(aws_workspace, PARAMETER_TEMPLATE)
    checkpoints = Checkpoints()
    first = run_aws(deploy, INPUT, checkpoints=checkpoints)
    again = run_aws(deploy, INPUT, checkpoints=checkpoints)
    assert again.outputs == first.outputs
    assert again.messages == []
    assert checkpoints.ran == [f"cloudformation.stack.us-east-1.{STACK}"]


FAILING_TEMPLATE = {
    "Resources": {
        "Config": {
            "Type": "AWS::SSM::Parameter",
            "Properties": {"Name": "/payments/config", "Type": "String", "Value": "x"},
        },
        "Images": {
            "Type": "AWS::ECR::Repository",
            "DependsOn": "Config",
            "Properties": {"RepositoryName": "taken"},
        },
    },
    "Outputs": {"Repository": {"Value": {"Ref": "Images"}}},
}


@pytest.mark.usefixtures("cloudformation_rollbacks")
def test_a_failing_stack_rolls_back_and_names_the_failing_resource(
    deploy: TemplateAction, run_aws: Any, aws_workspace: Path, boto: Callable[[str], Any]
) -> None:
    boto("ecr").create_repository(repositoryName="taken")
    write(aws_workspace, FAILING_TEMPLATE)
    checkpoints = Checkpoints()

    with pytest.raises(ScaffolderError) as failed:
        run_aws(
            deploy,
            {"stackName": STACK, "templatePath": "infra/stack.json"},
            checkpoints=checkpoints,
        )

    assert failed.value.message == (
        f"Stack {STACK} failed and was rolled back (ROLLBACK_COMPLETE):\n"
        "- Images (AWS::ECR::Repository) CREATE_FAILED: The repository with name 'taken' "
        "already exists in the registry with id '123456789012'"
    )
    stack = boto("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]
    assert stack["StackStatus"] == "ROLLBACK_COMPLETE"
    # Not half made: the parameter created before the failure is gone again.
    assert boto("ssm").describe_parameters()["Parameters"] == []

    # The retry after the cause is fixed replaces the empty rolled-back stack.
    boto("ecr").delete_repository(repositoryName="taken")
    retried = run_aws(
        deploy, {"stackName": STACK, "templatePath": "infra/stack.json"}, checkpoints=checkpoints
    )
    assert retried.messages[0] == (
        f"Stack {STACK} is ROLLBACK_COMPLETE after a failed create and holds no resources; "
        "deleting it to create it again"
    )
    assert retried.outputs["outputs"] == {"Repository": "taken"}
    stack = boto("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert retried.outputs["stackId"] == stack["StackId"]


@pytest.mark.usefixtures("cloudformation_rollbacks")
def test_the_events_of_a_failure_are_streamed(
    deploy: TemplateAction, aws_context: Any, aws_workspace: Path, boto: Callable[[str], Any]
) -> None:
    boto("ecr").create_repository(repositoryName="taken")
    write(aws_workspace, FAILING_TEMPLATE)
    run = aws_context(deploy, {"stackName": STACK, "templatePath": "infra/stack.json"})
    with pytest.raises(ScaffolderError):
        deploy.handler(run.ctx)
    reason = (
        "The repository with name 'taken' already exists in the registry with id '123456789012'"
    )
    assert list(zip(run.levels(), run.messages, strict=True))[1:] == [
        ("info", USER_INITIATED),
        ("info", "Config (AWS::SSM::Parameter): CREATE_COMPLETE"),
        ("error", f"Images (AWS::ECR::Repository): CREATE_FAILED - {reason}"),
        (
            "info",
            f"{STACK} (AWS::CloudFormation::Stack): ROLLBACK_IN_PROGRESS - The following "
            "resource(s) failed to create: [Images]. ",
        ),
        ("info", "Config (AWS::SSM::Parameter): DELETE_COMPLETE"),
        ("info", f"{STACK} (AWS::CloudFormation::Stack): ROLLBACK_COMPLETE"),
    ]


def test_access_denied_on_create(
    moto_endpoint: str, enforce_iam: Callable[..., Any], run_aws: Any, aws_workspace: Path
) -> None:
    write(aws_workspace, PARAMETER_TEMPLATE)
    enforce_iam(["cloudformation:DescribeStacks"])
    deploy = create_aws_cloudformation_deploy_action(
        aws=AwsClients.from_config(aws_config(moto_endpoint)), poll_seconds=0.01
    )
    with pytest.raises(
        NotAllowedError,
        match=r"^aws:cloudformation:deploy is not allowed to call cloudformation:CreateStack",
    ):
        run_aws(deploy, INPUT)


def test_template_path_must_stay_in_the_workspace(deploy: TemplateAction, run_aws: Any) -> None:
    with pytest.raises(InputError, match="templatePath"):
        run_aws(deploy, {**INPUT, "templatePath": "../outside.json"})


def test_template_too_large_for_an_inline_body(
    deploy: TemplateAction, run_aws: Any, aws_workspace: Path
) -> None:
    big = {**PARAMETER_TEMPLATE, "Description": "x" * 52_000}
    write(aws_workspace, big)
    with pytest.raises(InputError, match="CloudFormation takes at most 51200 bytes inline"):
        run_aws(deploy, INPUT)


def test_dry_run_logs_the_plan_and_calls_nothing(
    deploy: TemplateAction, run_aws: Any, aws_workspace: Path, boto: Callable[[str], Any]
) -> None:
    write(aws_workspace, PARAMETER_TEMPLATE)
    run = run_aws(deploy, INPUT, is_dry_run=True)
    size = len(json.dumps(PARAMETER_TEMPLATE).encode())
    assert run.messages == [
        f"Would create or update CloudFormation stack {STACK} in us-east-1 from "
        f"infra/stack.json ({size} bytes) with parameters {{'Greeting': 'hello', 'Subnets': "
        "'subnet-1,subnet-2'}, tags {'component': 'payments'} and capabilities "
        "['CAPABILITY_IAM'], then wait for it and output its outputs"
    ]
    assert boto("cloudformation").describe_stacks()["Stacks"] == []


def test_skipped_when_aws_is_not_configured(run_aws: Any) -> None:
    run = run_aws(create_aws_cloudformation_deploy_action(aws=AwsClients(None)), INPUT)
    assert run.messages == [
        "Skipping aws:cloudformation:deploy: AWS is not configured (set aws.region, and "
        "aws.endpointUrl for a local stand-in)"
    ]
    assert run.outputs == {}


def test_a_busy_stack_is_waited_for_and_a_cancel_ends_the_wait(
    deploy: TemplateAction, run_aws: Any, aws_context: Any, aws_workspace: Path
) -> None:
    from moto.cloudformation.models import cloudformation_backends

    write(aws_workspace, PARAMETER_TEMPLATE)
    run_aws(deploy, INPUT)
    (stack,) = cloudformation_backends[ACCOUNT][REGION].stacks.values()
    stack.status = "UPDATE_IN_PROGRESS"  # someone else's update, still running
    signal = CancelSignal()
    timer = threading.Timer(0.2, signal.cancel)
    timer.start()
    run = aws_context(deploy, INPUT, signal=signal)
    with pytest.raises(TaskCancelledError):
        deploy.handler(run.ctx)
    timer.join()
    assert run.messages == [
        f"Stack {STACK} is UPDATE_IN_PROGRESS; waiting for it to settle",
        f"Cancelled while stack {STACK} is UPDATE_IN_PROGRESS; CloudFormation finishes it "
        "(a failed create rolls back on its own)",
    ]
