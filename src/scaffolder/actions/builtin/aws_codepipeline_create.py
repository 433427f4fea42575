"""``aws:codepipeline:create``: CodeBuild + CodePipeline, for teams without GitHub Actions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scaffolder.actions.base import ActionContext, ActionExample, TemplateAction
from scaffolder.actions.builtin.aws_common import (
    REGION_SCHEMA,
    TAGS_SCHEMA,
    client,
    pretty,
    region_of,
    skipped,
    tag_list,
)
from scaffolder.integrations.aws import AwsClient, AwsClients
from scaffolder.integrations.aws_errors import AwsConflictError, AwsNotFoundError

ACTION_ID = "aws:codepipeline:create"
DEFAULT_IMAGE = "aws/codebuild/standard:7.0"
DEFAULT_COMPUTE = "BUILD_GENERAL1_SMALL"

DESCRIPTION = (
    "Creates a CodeBuild project and a CodePipeline (V2) whose source is a GitHub repository "
    "reached through an AWS CodeConnections connection, and whose build runs the repository's "
    "buildspec. Existing ones of the same names are reused as they are."
)

_ROLE_ARN = {"type": "string", "pattern": "^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$"}

INPUT_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "required": [
        "name",
        "repository",
        "connectionArn",
        "artifactBucket",
        "pipelineRoleArn",
        "buildRoleArn",
    ],
    "additionalProperties": False,
    "properties": {
        "name": {
            "title": "Name",
            "description": "Of the pipeline and of the CodeBuild project.",
            "type": "string",
            "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]{1,99}$",
        },
        "repository": {
            "title": "Repository",
            "description": "owner/repo, as the connection sees it.",
            "type": "string",
            "pattern": "^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$",
        },
        "branch": {"title": "Branch", "type": "string", "minLength": 1, "default": "main"},
        "connectionArn": {
            "title": "Connection",
            "description": "ARN of an available CodeConnections (CodeStar) connection.",
            "type": "string",
            "pattern": "^arn:aws[a-z-]*:(codeconnections|codestar-connections):.+:connection/.+$",
        },
        "artifactBucket": {
            "title": "Artifact bucket",
            "type": "string",
            "pattern": "^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        },
        "pipelineRoleArn": {"title": "Pipeline service role", **_ROLE_ARN},
        "buildRoleArn": {"title": "CodeBuild service role", **_ROLE_ARN},
        "buildspec": {
            "title": "Buildspec",
            "description": "Path of the buildspec in the repository.",
            "type": "string",
            "minLength": 1,
            "default": "buildspec.yml",
        },
        "image": {"title": "Build image", "type": "string", "default": DEFAULT_IMAGE},
        "computeType": {
            "title": "Compute type",
            "type": "string",
            "enum": [
                "BUILD_GENERAL1_SMALL",
                "BUILD_GENERAL1_MEDIUM",
                "BUILD_GENERAL1_LARGE",
                "BUILD_GENERAL1_XLARGE",
                "BUILD_GENERAL1_2XLARGE",
            ],
            "default": DEFAULT_COMPUTE,
        },
        "privilegedMode": {
            "title": "Privileged (docker builds)",
            "type": "boolean",
            "default": True,
        },
        "environmentVariables": {
            "title": "Build environment variables",
            "description": "Plain text; put secrets in SSM or Secrets Manager.",
            "type": "object",
            "additionalProperties": {"type": "string"},
        },
        "timeoutMinutes": {
            "title": "Build timeout (minutes)",
            "type": "integer",
            "minimum": 5,
            "maximum": 2160,
            "default": 60,
        },
        "tags": TAGS_SCHEMA,
        "region": REGION_SCHEMA,
    },
}

OUTPUT_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "properties": {
        "pipelineName": {"type": "string"},
        "pipelineArn": {"type": "string"},
        "projectArn": {"type": "string"},
        "pipelineUrl": {"type": "string", "description": "The pipeline in the AWS console"},
    },
}

_EXAMPLE = """\
steps:
  - id: pipeline
    name: Create the pipeline
    action: aws:codepipeline:create
    input:
      name: ${{ parameters.name }}
      repository: acme/${{ parameters.name }}
      connectionArn: arn:aws:codeconnections:us-east-1:123456789012:connection/abcd
      artifactBucket: acme-pipeline-artifacts
      pipelineRoleArn: arn:aws:iam::123456789012:role/platform-codepipeline
      buildRoleArn: arn:aws:iam::123456789012:role/platform-codebuild
"""


def create_aws_codepipeline_create_action(*, aws: AwsClients) -> TemplateAction:
    """Build ``aws:codepipeline:create``.

    The service roles, the artifact bucket and the connection belong to the platform (a
    connection is made once per GitHub organisation and approved by a person in the
    console); this action makes only the per-service project and pipeline, each once per
    task (checkpoints). Same-named ones that exist are reused untouched.
    """

    def handler(ctx: ActionContext) -> None:
        if skipped(ctx, aws, ACTION_ID):
            return
        name = str(ctx.input["name"])
        region = region_of(ctx, aws)
        project = _project(ctx.input)
        pipeline = _pipeline(ctx.input)
        if ctx.is_dry_run:
            ctx.logger.info(
                f"Would create (or reuse) CodeBuild project {name} and CodePipeline {name} in "
                f"{region}:\n{pretty(project)}\n{pretty(pipeline)}"
            )
            return
        build = client(ctx, aws, "codebuild", ACTION_ID)
        pipelines = client(ctx, aws, "codepipeline", ACTION_ID)
        project_arn = ctx.checkpoint(
            f"codebuild.project.{region}.{name}", lambda: _ensure_project(ctx, build, project)
        )
        pipeline_arn = ctx.checkpoint(
            f"codepipeline.pipeline.{region}.{name}",
            lambda: _ensure_pipeline(ctx, pipelines, pipeline),
        )
        ctx.output("pipelineName", name)
        ctx.output("pipelineArn", pipeline_arn)
        ctx.output("projectArn", project_arn)
        ctx.output(
            "pipelineUrl",
            f"https://{region}.console.aws.amazon.com/codesuite/codepipeline/pipelines/"
            f"{name}/view?region={region}",
        )

    return TemplateAction(
        id=ACTION_ID,
        handler=handler,
        description=DESCRIPTION,
        input_schema=INPUT_SCHEMA,
        output_schema=OUTPUT_SCHEMA,
        examples=(ActionExample(description="A pipeline for a service", example=_EXAMPLE),),
        supports_dry_run=True,
    )


def _project(values: Mapping[str, Any]) -> dict[str, Any]:
    variables = values.get("environmentVariables") or {}
    return {
        "name": values["name"],
        "description": f"Builds {values['repository']} for CodePipeline {values['name']}",
        # CodePipeline ignores these locations; they are given because some stand-ins
        # (moto) insist on one.
        "source": {
            "type": "CODEPIPELINE",
            "buildspec": values.get("buildspec", "buildspec.yml"),
            "location": f"https://github.com/{values['repository']}",
        },
        "artifacts": {"type": "CODEPIPELINE", "location": values["artifactBucket"]},
        "environment": {
            "type": "LINUX_CONTAINER",
            "image": values.get("image", DEFAULT_IMAGE),
            "computeType": values.get("computeType", DEFAULT_COMPUTE),
            "privilegedMode": bool(values.get("privilegedMode", True)),
            "environmentVariables": [
                {"name": k, "value": v, "type": "PLAINTEXT"} for k, v in sorted(variables.items())
            ],
        },
        "serviceRole": values["buildRoleArn"],
        "timeoutInMinutes": int(values.get("timeoutMinutes", 60)),
        "tags": tag_list(values.get("tags") or {}, key="key", value="value"),
    }


def _pipeline(values: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": values["name"],
        "roleArn": values["pipelineRoleArn"],
        "pipelineType": "V2",
        "artifactStore": {"type": "S3", "location": values["artifactBucket"]},
        "stages": [
            {
                "name": "Source",
                "actions": [
                    {
                        "name": "Source",
                        "actionTypeId": {
                            "category": "Source",
                            "owner": "AWS",
                            "provider": "CodeStarSourceConnection",
                            "version": "1",
                        },
                        "configuration": {
                            "ConnectionArn": values["connectionArn"],
                            "FullRepositoryId": values["repository"],
                            "BranchName": values.get("branch", "main"),
                            "OutputArtifactFormat": "CODE_ZIP",
                        },
                        "outputArtifacts": [{"name": "source"}],
                    }
                ],
            },
            {
                "name": "Build",
                "actions": [
                    {
                        "name": "Build",
                        "actionTypeId": {
                            "category": "Build",
                            "owner": "AWS",
                            "provider": "CodeBuild",
                            "version": "1",
                        },
                        "configuration": {"ProjectName": values["name"]},
                        "inputArtifacts": [{"name": "source"}],
                    }
                ],
            },
        ],
    }


def _ensure_project(ctx: ActionContext, build: AwsClient, project: Mapping[str, Any]) -> str:
    name = str(project["name"])
    found = build.batch_get_projects(names=[name]).get("projects") or []
    if found:
        ctx.logger.info(f"CodeBuild project {name} exists; reusing it as it is")
        return str(found[0]["arn"])
    try:
        arn = str(build.create_project(**project)["project"]["arn"])
    except AwsConflictError:
        ctx.logger.info(f"CodeBuild project {name} exists; reusing it as it is")
        return str(build.batch_get_projects(names=[name])["projects"][0]["arn"])
    ctx.logger.info(f"Created CodeBuild project {arn}")
    return arn


def _ensure_pipeline(ctx: ActionContext, pipelines: AwsClient, pipeline: Mapping[str, Any]) -> str:
    name = str(pipeline["name"])
    try:
        found = pipelines.get_pipeline(name=name)
    except AwsNotFoundError:
        tags = tag_list(ctx.input.get("tags") or {}, key="key", value="value")
        created = pipelines.create_pipeline(pipeline=pipeline, **({"tags": tags} if tags else {}))
        arn = _pipeline_arn(pipelines, name, created)
        ctx.logger.info(f"Created CodePipeline {arn}")
        return arn
    ctx.logger.info(f"CodePipeline {name} exists; reusing it as it is")
    return _pipeline_arn(pipelines, name, found)


def _pipeline_arn(pipelines: AwsClient, name: str, response: Mapping[str, Any]) -> str:
    arn = (response.get("metadata") or {}).get("pipelineArn")
    if arn:
        return str(arn)
    return str(pipelines.get_pipeline(name=name)["metadata"]["pipelineArn"])
