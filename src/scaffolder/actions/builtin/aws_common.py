"""What the ``aws:*`` actions share: the not-configured skip, schema pieces, identity, tags.

Each action is built by a factory that closes over the `AwsClients` factory. When AWS is not
configured the action is still registered (templates list it, and their ``if`` usually skips
the step first); it then logs why it does nothing and outputs nothing, never a made-up value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scaffolder.actions.base import ActionContext
from scaffolder.integrations.aws import NOT_CONFIGURED, AwsClient, AwsClients, partition_for

#: The ``region`` input every AWS action takes.
REGION_SCHEMA: Mapping[str, Any] = {
    "title": "AWS region",
    "description": "Region to work in (default: the template's aws override, then aws.region).",
    "type": "string",
    "pattern": "^[a-z]{2}(-[a-z]+)+-[0-9]$",
}

#: The ``tags`` input: AWS resource tags as a map.
TAGS_SCHEMA: Mapping[str, Any] = {
    "title": "Tags",
    "description": "Tags for what the action creates.",
    "type": "object",
    "additionalProperties": {"type": "string", "maxLength": 256},
    "propertyNames": {"minLength": 1, "maxLength": 128},
}

#: A key of the task secrets; its value is read in the handler and never logged or output.
SECRET_KEY_SCHEMA: Mapping[str, Any] = {
    "title": "Secret",
    "description": "Name of the task secret whose value is stored (never logged or output).",
    "type": "string",
    "minLength": 1,
}


def skipped(ctx: ActionContext, aws: AwsClients, action_id: str) -> bool:
    """Log the skip and return True when AWS is not configured."""
    if aws.configured:
        return False
    ctx.logger.info(f"Skipping {action_id}: {NOT_CONFIGURED}")
    return True


def template_ref(ctx: ActionContext) -> str | None:
    """The running template's entity ref (for ``aws.templates`` overrides)."""
    ref = (ctx.template_info or {}).get("entityRef")
    return str(ref) if ref else None


def client(ctx: ActionContext, aws: AwsClients, service: str, action_id: str) -> AwsClient:
    """A client for ``service`` in the step's region, for this template."""
    return aws.client(
        service,
        action=action_id,
        template_ref=template_ref(ctx),
        region=ctx.input.get("region"),
    )


def region_of(ctx: ActionContext, aws: AwsClients) -> str:
    """The region the step works in."""
    return aws.target(template_ref=template_ref(ctx), region=ctx.input.get("region")).region


@dataclass(frozen=True, kw_only=True)
class Identity:
    """Who the scaffolder is in AWS: account and partition, for building ARNs."""

    account: str
    partition: str

    @classmethod
    def of(cls, sts: AwsClient) -> Identity:
        """``sts:GetCallerIdentity``."""
        arn = str(sts.get_caller_identity()["Arn"])
        return cls(account=arn.split(":")[4], partition=arn.split(":")[1])

    @classmethod
    def placeholder(cls, region: str) -> Identity:
        """What a dry run shows instead of calling AWS."""
        return cls(account="<account-id>", partition=partition_for(region))


def tag_list(tags: Mapping[str, Any], *, key: str = "Key", value: str = "Value") -> list[Any]:
    """``{"a": "b"}`` as AWS's ``[{"Key": "a", "Value": "b"}]`` (names vary by service)."""
    return [{key: str(k), value: str(v)} for k, v in sorted(tags.items())]


def dumps(document: Any) -> str:
    """A policy or template document as AWS stores it (compact, keys in order)."""
    return json.dumps(document, separators=(",", ":"))


def pretty(document: Any) -> str:
    """A document for the task log."""
    return json.dumps(document, indent=2, sort_keys=False)
