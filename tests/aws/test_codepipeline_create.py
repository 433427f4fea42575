"""aws:codepipeline:create against moto."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from scaffolder.actions.builtin.aws_codepipeline_create import (
    create_aws_codepipeline_create_action,
)
from scaffolder.integrations.aws import AwsClients
from tests.aws.conftest import ACCOUNT, REGION, Checkpoints

CONNECTION = f"arn:aws:codeconnections:{REGION}:{ACCOUNT}:connection/0a1b2c3d"


@pytest.fixture
def inputs(boto: Callable[[str], Any]) -> dict[str, Any]:
    """The platform's pieces (roles made here in moto; bucket and connection by name)."""
    roles = {}
    for name, service in (("codepipeline", "codepipeline"), ("codebuild", "codebuild")):
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": f"{service}.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        role = boto("iam").create_role(
            RoleName=f"platform-{name}", AssumeRolePolicyDocument=json.dumps(trust)
        )
        roles[name] = role["Role"]["Arn"]
    return {
        "name": "payments",
        "repository": "acme/payments",
        "connectionArn": CONNECTION,
        "artifactBucket": "acme-pipeline-artifacts",
        "pipelineRoleArn": roles["codepipeline"],
        "buildRoleArn": roles["codebuild"],
        "environmentVariables": {"SERVICE_NAME": "payments"},
        "tags": {"component": "payments"},
    }


def test_creates_the_project_and_the_pipeline(
    aws: AwsClients, run_aws: Any, boto: Callable[[str], Any], inputs: dict[str, Any]
) -> None:
    run = run_aws(create_aws_codepipeline_create_action(aws=aws), inputs)

    project = boto("codebuild").batch_get_projects(names=["payments"])["projects"][0]
    assert project["source"]["type"] == "CODEPIPELINE"
    assert project["source"]["buildspec"] == "buildspec.yml"
    assert project["environment"]["image"] == "aws/codebuild/standard:7.0"
    assert project["environment"]["privilegedMode"] is True
    assert project["environment"]["environmentVariables"] == [
        {"name": "SERVICE_NAME", "value": "payments", "type": "PLAINTEXT"}
    ]
    assert project["serviceRole"] == inputs["buildRoleArn"]

    found = boto("codepipeline").get_pipeline(name="payments")
    pipeline = found["pipeline"]
    assert pipeline["roleArn"] == inputs["pipelineRoleArn"]
    assert pipeline["artifactStore"] == {"type": "S3", "location": "acme-pipeline-artifacts"}
    source, build = pipeline["stages"]
    assert source["actions"][0]["actionTypeId"]["provider"] == "CodeStarSourceConnection"
    assert source["actions"][0]["configuration"] == {
        "ConnectionArn": CONNECTION,
        "FullRepositoryId": "acme/payments",
        "BranchName": "main",
        "OutputArtifactFormat": "CODE_ZIP",
    }
    assert build["actions"][0]["configuration"] == {"ProjectName": "payments"}
    assert build["actions"][0]["inputArtifacts"] == [{"name": "source"}]

    assert run.outputs == {
        "pipelineName": "payments",
        "pipelineArn": found["metadata"]["pipelineArn"],
        "projectArn": project["arn"],
        "pipelineUrl": f"https://{REGION}.console.aws.amazon.com/codesuite/codepipeline/"
        f"pipelines/payments/view?region={REGION}",
    }


def test_existing_ones_are_reused(aws: AwsClients, run_aws: Any, inputs: dict[str, Any]) -> None:
    action = create_aws_codepipeline_create_action(aws=aws)
    first = run_aws(action, inputs)
    again = run_aws(action, inputs)  # another task
    assert again.outputs == first.outputs
    assert again.messages == [
        "CodeBuild project payments exists; reusing it as it is",
        "CodePipeline payments exists; reusing it as it is",
    ]


def test_rerun_in_the_same_task_creates_once(
    aws: AwsClients, run_aws: Any, inputs: dict[str, Any]
) -> None:
    action = create_aws_codepipeline_create_action(aws=aws)
    checkpoints = Checkpoints()
    run_aws(action, inputs, checkpoints=checkpoints)
    again = run_aws(action, inputs, checkpoints=checkpoints)
    assert again.messages == []
    assert checkpoints.ran == [
        f"codebuild.project.{REGION}.payments",
        f"codepipeline.pipeline.{REGION}.payments",
    ]


def test_dry_run_shows_both_and_creates_nothing(
    aws: AwsClients, run_aws: Any, boto: Callable[[str], Any], inputs: dict[str, Any]
) -> None:
    run = run_aws(create_aws_codepipeline_create_action(aws=aws), inputs, is_dry_run=True)
    (message,) = run.messages
    assert message.startswith(
        f"Would create (or reuse) CodeBuild project payments and CodePipeline payments in {REGION}:"
    )
    assert '"FullRepositoryId": "acme/payments"' in message
    assert boto("codebuild").list_projects()["projects"] == []
    assert boto("codepipeline").list_pipelines()["pipelines"] == []


def test_skipped_when_aws_is_not_configured(run_aws: Any, inputs: dict[str, Any]) -> None:
    run = run_aws(create_aws_codepipeline_create_action(aws=AwsClients(None)), inputs)
    assert run.messages == [
        "Skipping aws:codepipeline:create: AWS is not configured (set aws.region, and "
        "aws.endpointUrl for a local stand-in)"
    ]
