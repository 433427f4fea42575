"""``aws:secretsmanager:create-secret``: store a task secret in AWS Secrets Manager."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from scaffolder.actions.base import ActionContext, ActionExample, TemplateAction
from scaffolder.actions.builtin.aws_common import (
    REGION_SCHEMA,
    SECRET_KEY_SCHEMA,
    TAGS_SCHEMA,
    client,
    region_of,
    skipped,
    tag_list,
)
from scaffolder.errors import InputError
from scaffolder.integrations.aws import AwsClient, AwsClients
from scaffolder.integrations.aws_errors import AwsConflictError

ACTION_ID = "aws:secretsmanager:create-secret"
#: Namespace of the idempotency tokens (uuid5 of task, step and secret name).
_TOKEN_NAMESPACE = uuid.UUID("6f1d3f5e-2a7b-4c1e-9a55-3c0f4e0b7d21")

DESCRIPTION = (
    "Creates an AWS Secrets Manager secret holding the value of a task secret. The value is "
    "never logged and never output. A secret that already holds the same value is left as "
    "it is; one with another value gets a new version only with overwrite."
)

INPUT_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "required": ["name", "secret"],
    "additionalProperties": False,
    "properties": {
        "name": {
            "title": "Secret name",
            "type": "string",
            "pattern": "^[A-Za-z0-9/_+=.@-]{1,512}$",
        },
        "secret": SECRET_KEY_SCHEMA,
        "description": {"title": "Description", "type": "string", "maxLength": 2048},
        "kmsKeyId": {
            "title": "KMS key",
            "description": "Default: the account's aws/secretsmanager key.",
            "type": "string",
            "minLength": 1,
        },
        "overwrite": {
            "title": "Overwrite",
            "description": "Store a new version in a secret that holds another value.",
            "type": "boolean",
            "default": False,
        },
        "tags": TAGS_SCHEMA,
        "region": REGION_SCHEMA,
    },
}

OUTPUT_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "properties": {
        "arn": {"type": "string", "description": "For valueFrom in a task definition"},
        "name": {"type": "string"},
    },
}

_EXAMPLE = """\
steps:
  - id: db-password
    name: Store the database password
    action: aws:secretsmanager:create-secret
    input:
      name: ${{ parameters.name }}/db-password
      secret: dbPassword
"""


def create_aws_secretsmanager_create_secret_action(*, aws: AwsClients) -> TemplateAction:
    """Build ``aws:secretsmanager:create-secret``.

    The value comes from ``ctx.secrets[input.secret]`` and is in no input, log line, output
    or checkpoint. The create is a checkpoint, and its ``ClientRequestToken`` is derived from
    the task, step and name, so that Secrets Manager itself sees a repeated request as the
    same one.
    """

    def handler(ctx: ActionContext) -> None:
        if skipped(ctx, aws, ACTION_ID):
            return
        name = str(ctx.input["name"])
        secret_key = str(ctx.input["secret"])
        region = region_of(ctx, aws)
        value = ctx.secrets.get(secret_key)
        if not value:
            raise InputError(f"{ACTION_ID}: the task secret '{secret_key}' is not set")
        if ctx.is_dry_run:
            ctx.logger.info(
                f"Would create secret {name} in Secrets Manager ({region}) from the task "
                f"secret '{secret_key}' (value not shown), tags "
                f"{dict(ctx.input.get('tags') or {})}"
            )
            return
        sm = client(ctx, aws, "secretsmanager", ACTION_ID)
        token = str(uuid.uuid5(_TOKEN_NAMESPACE, f"{ctx.task_id}/{ctx.step_id}/{name}"))
        stored = ctx.checkpoint(
            f"secretsmanager.secret.{region}.{name}",
            lambda: _create(ctx, sm, name, value, token),
        )
        ctx.output("arn", stored["arn"])
        ctx.output("name", name)

    return TemplateAction(
        id=ACTION_ID,
        handler=handler,
        description=DESCRIPTION,
        input_schema=INPUT_SCHEMA,
        output_schema=OUTPUT_SCHEMA,
        examples=(ActionExample(description="Store a database password", example=_EXAMPLE),),
        supports_dry_run=True,
    )


def _create(ctx: ActionContext, sm: AwsClient, name: str, value: str, token: str) -> dict[str, Any]:
    request: dict[str, Any] = {
        "Name": name,
        "SecretString": value,
        "ClientRequestToken": token,
        "Tags": tag_list(dict(ctx.input.get("tags") or {})),
    }
    if ctx.input.get("description"):
        request["Description"] = str(ctx.input["description"])
    if ctx.input.get("kmsKeyId"):
        request["KmsKeyId"] = str(ctx.input["kmsKeyId"])
    try:
        arn = str(sm.create_secret(**request)["ARN"])
    except AwsConflictError:
        current = sm.get_secret_value(SecretId=name)
        arn = str(current["ARN"])
        if current.get("SecretString") == value:
            ctx.logger.info(f"Secret {name} already holds this value; left as it is")
            return {"arn": arn}
        if not ctx.input.get("overwrite", False):
            raise AwsConflictError(
                f"{ACTION_ID}: secret {name} exists with another value; set overwrite: true "
                "to store a new version",
                code="ResourceExistsException",
            ) from None
        sm.put_secret_value(SecretId=arn, SecretString=value, ClientRequestToken=token)
        ctx.logger.info(f"Stored a new version of secret {arn}")
        return {"arn": arn}
    ctx.logger.info(f"Created secret {arn}")
    return {"arn": arn}
