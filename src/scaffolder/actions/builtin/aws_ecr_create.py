"""``aws:ecr:create``: an ECR repository for a new service's images."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scaffolder.actions.base import ActionContext, ActionExample, TemplateAction
from scaffolder.actions.builtin.aws_common import (
    REGION_SCHEMA,
    TAGS_SCHEMA,
    client,
    dumps,
    region_of,
    skipped,
    tag_list,
)
from scaffolder.integrations.aws import AwsClient, AwsClients
from scaffolder.integrations.aws_errors import AwsConflictError

ACTION_ID = "aws:ecr:create"
DEFAULT_KEEP_IMAGES = 30

DESCRIPTION = (
    "Creates an Amazon ECR repository with scan on push, immutable tags, encryption and a "
    "lifecycle policy that keeps the last N images. A repository that already exists is left "
    "as it is and gives the same outputs."
)

INPUT_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "required": ["repositoryName"],
    "additionalProperties": False,
    "properties": {
        "repositoryName": {
            "title": "Repository name",
            "type": "string",
            "minLength": 2,
            "maxLength": 256,
            "pattern": "^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$",
        },
        "region": REGION_SCHEMA,
        "keepImages": {
            "title": "Images to keep",
            "description": "The lifecycle policy expires all but the most recent N images.",
            "type": "integer",
            "minimum": 1,
            "maximum": 10000,
            "default": DEFAULT_KEEP_IMAGES,
        },
        "imageTagMutability": {
            "title": "Tag mutability",
            "type": "string",
            "enum": ["IMMUTABLE", "MUTABLE"],
            "default": "IMMUTABLE",
        },
        "scanOnPush": {"title": "Scan on push", "type": "boolean", "default": True},
        "kmsKey": {
            "title": "KMS key",
            "description": "Encrypt with this KMS key (ARN or id); default AES-256.",
            "type": "string",
            "minLength": 1,
        },
        "tags": TAGS_SCHEMA,
    },
}

OUTPUT_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "properties": {
        "repositoryUri": {"type": "string", "description": "<registry>/<name>, for docker push"},
        "repositoryArn": {"type": "string"},
    },
}

_EXAMPLE = """\
steps:
  - id: ecr
    name: Create the image repository
    action: aws:ecr:create
    input:
      repositoryName: ${{ parameters.name }}
      keepImages: 50
"""


def lifecycle_policy(keep: int) -> dict[str, Any]:
    """Expire every image but the ``keep`` most recent ones."""
    return {
        "rules": [
            {
                "rulePriority": 1,
                "description": f"Keep the last {keep} images",
                "selection": {
                    "tagStatus": "any",
                    "countType": "imageCountMoreThan",
                    "countNumber": keep,
                },
                "action": {"type": "expire"},
            }
        ]
    }


def create_aws_ecr_create_action(*, aws: AwsClients) -> TemplateAction:
    """Build ``aws:ecr:create``.

    The repository is created once per task (a checkpoint): a retry after a later failure
    does not try again, and finishes what is left (the lifecycle policy). A repository that
    exists already, made by someone else or by an earlier task, is reused untouched: its
    outputs are returned and settings that differ from the input are reported as warnings.
    """

    def handler(ctx: ActionContext) -> None:
        if skipped(ctx, aws, ACTION_ID):
            return
        name = str(ctx.input["repositoryName"])
        region = region_of(ctx, aws)
        wanted = _settings(ctx.input)
        keep = int(ctx.input.get("keepImages", DEFAULT_KEEP_IMAGES))
        if ctx.is_dry_run:
            ctx.logger.info(
                f"Would create ECR repository {name} in {region} (or reuse it if it exists): "
                f"tags {wanted['imageTagMutability']}, scan on push "
                f"{'on' if wanted['scanOnPush'] else 'off'}, encryption "
                f"{wanted['encryption']['encryptionType']}, lifecycle policy keeping the last "
                f"{keep} images, resource tags {dict(ctx.input.get('tags') or {})}"
            )
            return
        ecr = client(ctx, aws, "ecr", ACTION_ID)
        repo = ctx.checkpoint(
            f"ecr.repository.{region}.{name}",
            lambda: _create_or_reuse(ctx, ecr, name, wanted),
        )
        if repo["created"]:

            def put_lifecycle() -> None:
                ecr.put_lifecycle_policy(
                    repositoryName=name, lifecyclePolicyText=dumps(lifecycle_policy(keep))
                )
                ctx.logger.info(f"Lifecycle policy set on {name}: keep the last {keep} images")

            ctx.checkpoint(f"ecr.lifecycle.{region}.{name}", put_lifecycle)
        ctx.output("repositoryUri", repo["repositoryUri"])
        ctx.output("repositoryArn", repo["repositoryArn"])

    return TemplateAction(
        id=ACTION_ID,
        handler=handler,
        description=DESCRIPTION,
        input_schema=INPUT_SCHEMA,
        output_schema=OUTPUT_SCHEMA,
        examples=(ActionExample(description="Create a repository", example=_EXAMPLE),),
        supports_dry_run=True,
    )


def _settings(values: Mapping[str, Any]) -> dict[str, Any]:
    kms_key = values.get("kmsKey")
    encryption: dict[str, str] = (
        {"encryptionType": "KMS", "kmsKey": str(kms_key)}
        if kms_key
        else {"encryptionType": "AES256"}
    )
    return {
        "imageTagMutability": str(values.get("imageTagMutability", "IMMUTABLE")),
        "scanOnPush": bool(values.get("scanOnPush", True)),
        "encryption": encryption,
        "tags": dict(values.get("tags") or {}),
    }


def _create_or_reuse(
    ctx: ActionContext, ecr: AwsClient, name: str, wanted: Mapping[str, Any]
) -> dict[str, Any]:
    try:
        repo = ecr.create_repository(
            repositoryName=name,
            imageTagMutability=wanted["imageTagMutability"],
            imageScanningConfiguration={"scanOnPush": wanted["scanOnPush"]},
            encryptionConfiguration=wanted["encryption"],
            tags=tag_list(wanted["tags"]),
        )["repository"]
    except AwsConflictError:
        repo = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
        ctx.logger.info(f"ECR repository {name} already exists; reusing it as it is")
        _warn_on_differences(ctx, repo, wanted)
        return _outputs(repo, created=False)
    ctx.logger.info(f"Created ECR repository {repo['repositoryUri']}")
    return _outputs(repo, created=True)


def _warn_on_differences(
    ctx: ActionContext, repo: Mapping[str, Any], wanted: Mapping[str, Any]
) -> None:
    found = {
        "imageTagMutability": repo.get("imageTagMutability"),
        "scanOnPush": (repo.get("imageScanningConfiguration") or {}).get("scanOnPush"),
        "encryptionType": (repo.get("encryptionConfiguration") or {}).get("encryptionType"),
    }
    expected = {
        "imageTagMutability": wanted["imageTagMutability"],
        "scanOnPush": wanted["scanOnPush"],
        "encryptionType": wanted["encryption"]["encryptionType"],
    }
    for key, value in expected.items():
        if found[key] != value:
            ctx.logger.warn(
                f"Existing repository {repo['repositoryName']} has {key} {found[key]}, "
                f"not {value}; it was not changed"
            )


def _outputs(repo: Mapping[str, Any], *, created: bool) -> dict[str, Any]:
    return {
        "repositoryUri": str(repo["repositoryUri"]),
        "repositoryArn": str(repo["repositoryArn"]),
        "created": created,
    }
