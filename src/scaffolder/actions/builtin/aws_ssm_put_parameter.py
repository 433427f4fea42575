"""``aws:ssm:put-parameter``: store a task secret as an SSM parameter (SecureString)."""

from __future__ import annotations

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

ACTION_ID = "aws:ssm:put-parameter"

DESCRIPTION = (
    "Stores the value of a task secret as an SSM Parameter Store parameter (SecureString by "
    "default). The value is never logged and never output. A parameter that already holds "
    "the same value is left as it is; one with another value is replaced only with overwrite."
)

INPUT_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "required": ["name", "secret"],
    "additionalProperties": False,
    "properties": {
        "name": {
            "title": "Parameter name",
            "description": "Such as /<service>/app-secret (what the task definition reads).",
            "type": "string",
            "pattern": "^/?[A-Za-z0-9_.\\-/]{1,1011}$",
        },
        "secret": SECRET_KEY_SCHEMA,
        "type": {
            "title": "Type",
            "type": "string",
            "enum": ["SecureString", "String"],
            "default": "SecureString",
        },
        "kmsKeyId": {
            "title": "KMS key",
            "description": "For SecureString (default: the account's aws/ssm key).",
            "type": "string",
            "minLength": 1,
        },
        "description": {"title": "Description", "type": "string", "maxLength": 1024},
        "overwrite": {
            "title": "Overwrite",
            "description": "Replace a parameter that holds another value.",
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
        "name": {"type": "string"},
        "version": {"type": "integer"},
    },
}

_EXAMPLE = """\
steps:
  - id: app-secret
    name: Store the app secret
    action: aws:ssm:put-parameter
    input:
      name: /${{ parameters.name }}/app-secret
      secret: appSecret
"""


def create_aws_ssm_put_parameter_action(*, aws: AwsClients) -> TemplateAction:
    """Build ``aws:ssm:put-parameter``.

    The value comes from ``ctx.secrets[input.secret]``; inputs hold only the secret's name,
    so the value is in no input, log line, output or checkpoint. The put happens once per
    task (a checkpoint holding the name and version).
    """

    def handler(ctx: ActionContext) -> None:
        if skipped(ctx, aws, ACTION_ID):
            return
        name = str(ctx.input["name"])
        secret_key = str(ctx.input["secret"])
        kind = str(ctx.input.get("type", "SecureString"))
        region = region_of(ctx, aws)
        value = ctx.secrets.get(secret_key)
        if not value:
            raise InputError(f"{ACTION_ID}: the task secret '{secret_key}' is not set")
        if ctx.is_dry_run:
            ctx.logger.info(
                f"Would put SSM parameter {name} ({kind}) in {region} from the task secret "
                f"'{secret_key}' (value not shown), tags {dict(ctx.input.get('tags') or {})}"
            )
            return
        ssm = client(ctx, aws, "ssm", ACTION_ID)
        stored = ctx.checkpoint(
            f"ssm.parameter.{region}.{name}", lambda: _put(ctx, ssm, name, kind, value)
        )
        ctx.output("name", name)
        ctx.output("version", stored["version"])

    return TemplateAction(
        id=ACTION_ID,
        handler=handler,
        description=DESCRIPTION,
        input_schema=INPUT_SCHEMA,
        output_schema=OUTPUT_SCHEMA,
        examples=(ActionExample(description="Store a secret for ECS", example=_EXAMPLE),),
        supports_dry_run=True,
    )


def _put(ctx: ActionContext, ssm: AwsClient, name: str, kind: str, value: str) -> dict[str, Any]:
    overwrite = bool(ctx.input.get("overwrite", False))
    tags = dict(ctx.input.get("tags") or {})
    request: dict[str, Any] = {"Name": name, "Value": value, "Type": kind}
    if ctx.input.get("kmsKeyId") and kind == "SecureString":
        request["KeyId"] = str(ctx.input["kmsKeyId"])
    if ctx.input.get("description"):
        request["Description"] = str(ctx.input["description"])
    if tags and not overwrite:  # PutParameter refuses Tags together with Overwrite
        request["Tags"] = tag_list(tags)
    try:
        version = int(ssm.put_parameter(Overwrite=overwrite, **request)["Version"])
    except AwsConflictError:
        current = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
        if current.get("Value") != value:
            raise AwsConflictError(
                f"{ACTION_ID}: SSM parameter {name} exists with another value; set overwrite: "
                "true to replace it",
                code="ParameterAlreadyExists",
            ) from None
        ctx.logger.info(f"SSM parameter {name} already holds this value; left as it is")
        return {"version": int(current["Version"])}
    if tags and overwrite:
        ssm.add_tags_to_resource(ResourceType="Parameter", ResourceId=name, Tags=tag_list(tags))
    ctx.logger.info(f"Put SSM parameter {name} ({kind}), version {version}")
    return {"version": version}
