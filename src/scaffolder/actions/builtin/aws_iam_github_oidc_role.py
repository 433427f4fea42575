"""``aws:iam:github-oidc-role``: a deploy role that only one GitHub environment can assume."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scaffolder.actions.base import ActionContext, ActionExample, TemplateAction
from scaffolder.actions.builtin.aws_common import (
    REGION_SCHEMA,
    TAGS_SCHEMA,
    Identity,
    client,
    dumps,
    pretty,
    region_of,
    skipped,
    tag_list,
)
from scaffolder.integrations.aws import AwsClient, AwsClients
from scaffolder.integrations.aws_errors import AwsConflictError, AwsNotFoundError

ACTION_ID = "aws:iam:github-oidc-role"
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
AUDIENCE = "sts.amazonaws.com"
INLINE_POLICY_NAME = "github-deploy"
#: Marks a role this action made, and for which subject: only such a role is ever adopted.
SUBJECT_TAG = "scaffolder:github-subject"

#: What `docker push` needs on the one repository (no pull, no delete, no policy changes).
ECR_PUSH_ACTIONS = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:CompleteLayerUpload",
    "ecr:InitiateLayerUpload",
    "ecr:PutImage",
    "ecr:UploadLayerPart",
)

#: What a change-set deploy (``aws cloudformation deploy``) of the one stack calls.
STACK_ACTIONS = (
    "cloudformation:CreateChangeSet",
    "cloudformation:DescribeChangeSet",
    "cloudformation:DescribeStacks",
    "cloudformation:ExecuteChangeSet",
)

DESCRIPTION = (
    "Ensures the GitHub Actions OIDC identity provider exists and creates a deploy role that "
    "only one repository's environment (or ref) can assume, allowed to push to one ECR "
    "repository, register and read task definitions, pass its task and execution roles to ECS "
    "tasks, and deploy one ECS service or point one EventBridge schedule at a new revision "
    "(and run it once); optionally deploy its one CloudFormation stack through a "
    "CloudFormation service role."
)

_NAME = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[A-Za-z0-9_-]+$"}
_ROLE = {
    "type": "string",
    "minLength": 1,
    "description": (
        "A role ARN, or a role name in the account; a trailing * matches the names "
        "CloudFormation generates (<stack>-<LogicalId>-<suffix>)."
    ),
    "pattern": r"^(arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]+|[\w+=,.@-]{1,64})\*?$",
}

INPUT_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "required": [
        "roleName",
        "repository",
        "ecrRepository",
        "cluster",
        "taskRole",
        "executionRole",
    ],
    "oneOf": [{"required": ["environment"]}, {"required": ["ref"]}],
    # What is deployed: an ECS service, or a task EventBridge Scheduler runs (or both).
    "anyOf": [{"required": ["service"]}, {"required": ["schedule"]}],
    "dependencies": {
        "schedule": ["schedulerRole"],
        "schedulerRole": ["schedule"],
        "stack": ["cloudFormationRole"],
        "cloudFormationRole": ["stack"],
    },
    "additionalProperties": False,
    "properties": {
        "roleName": {
            "title": "Role name",
            "type": "string",
            "pattern": r"^[\w+=,.@-]{1,64}$",
        },
        "repository": {
            "title": "GitHub repository",
            "description": "owner/repo whose workflows may assume the role.",
            "type": "string",
            "pattern": "^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$",
        },
        "environment": {
            "title": "GitHub environment",
            "description": "Only jobs in this environment may assume the role.",
            "type": "string",
            "pattern": "^[^:*?\\s][^:*?]{0,254}$",
        },
        "ref": {
            "title": "Git ref",
            "description": "Instead of an environment: only runs on this ref (refs/heads/main).",
            "type": "string",
            "pattern": "^refs/(heads|tags)/[^:*?\\s]+$",
        },
        "ecrRepository": {
            "title": "ECR repository",
            "description": "Name or ARN of the repository the role may push to.",
            "type": "string",
            "minLength": 2,
        },
        "cluster": {"title": "ECS cluster name", **_NAME},
        "service": {"title": "ECS service name", **_NAME},
        "schedule": {
            "title": "EventBridge schedule",
            "description": (
                "Instead of (or with) a service: a schedule in the default group whose ECS "
                "target the role may point at a new revision; the role may also run the "
                "task family (taskFamily) once in the cluster."
            ),
            **_NAME,
        },
        "schedulerRole": {
            "title": "Scheduler role",
            "description": "The role the schedule runs tasks with (UpdateSchedule passes it).",
            **_ROLE,
        },
        "taskFamily": {
            "title": "Task definition family",
            "description": "The family a scheduled job runs (default: the schedule name).",
            **_NAME,
        },
        "stack": {
            "title": "CloudFormation stack",
            "description": (
                "The one stack the role may deploy with change sets, only through "
                "cloudFormationRole (the deploy role itself creates nothing the stack holds)."
            ),
            "type": "string",
            "pattern": "^[A-Za-z][A-Za-z0-9-]{0,127}$",
        },
        "cloudFormationRole": {
            "title": "CloudFormation service role",
            "description": "The role CloudFormation assumes for the stack's changes.",
            **_ROLE,
        },
        "taskRole": {"title": "Task role", **_ROLE},
        "executionRole": {"title": "Task execution role", **_ROLE},
        "region": REGION_SCHEMA,
        "permissionsBoundary": {
            "title": "Permissions boundary",
            "description": "ARN of a managed policy to set as the role's permissions boundary.",
            "type": "string",
            "pattern": "^arn:aws[a-z-]*:iam::([0-9]{12}|aws):policy/.+$",
        },
        "maxSessionDuration": {
            "title": "Maximum session (seconds)",
            "type": "integer",
            "minimum": 3600,
            "maximum": 43200,
            "default": 3600,
        },
        "tags": TAGS_SCHEMA,
    },
}

OUTPUT_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "properties": {"roleArn": {"type": "string", "description": "For AWS_DEPLOY_ROLE_ARN"}},
}

_EXAMPLE = """\
steps:
  - id: deploy-role
    name: Create the deploy role
    action: aws:iam:github-oidc-role
    input:
      roleName: ${{ parameters.name }}-github-deploy
      repository: acme/${{ parameters.name }}
      environment: production
      ecrRepository: ${{ parameters.name }}
      cluster: platform
      service: ${{ parameters.name }}
      taskRole: ${{ parameters.name }}-TaskRole-*
      executionRole: ${{ parameters.name }}-ExecutionRole-*
"""

_SCHEDULED_EXAMPLE = """\
steps:
  - id: deploy-role
    name: Create the deploy role of a scheduled job and its stack
    action: aws:iam:github-oidc-role
    input:
      roleName: ${{ parameters.name }}-github-deploy
      repository: acme/${{ parameters.name }}
      environment: production
      ecrRepository: ${{ parameters.name }}
      cluster: platform
      schedule: ${{ parameters.name }}
      schedulerRole: ${{ parameters.name }}-SchedulerRole-*
      taskRole: ${{ parameters.name }}-TaskRole-*
      executionRole: ${{ parameters.name }}-ExecutionRole-*
      stack: ${{ parameters.name }}
      cloudFormationRole: platform-cloudformation
"""


def subject_of(repository: str, *, environment: str | None, ref: str | None) -> str:
    """The OIDC ``sub`` claim of the runs allowed to assume the role."""
    if environment:
        return f"repo:{repository}:environment:{environment}"
    return f"repo:{repository}:ref:{ref}"


def trust_policy(
    provider_arn: str, subject: str, *, host: str = GITHUB_OIDC_HOST
) -> dict[str, Any]:
    """Only GitHub's tokens for ``subject``, minted for STS, may assume the role."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {f"{host}:aud": AUDIENCE, f"{host}:sub": subject},
                },
            }
        ],
    }


@dataclass(frozen=True, kw_only=True)
class DeployTarget:
    """The ARNs one deploy role is scoped to (see `deploy_policy`)."""

    repository_arn: str
    pass_role_arns: list[str]
    service_arn: str | None = None
    #: A scheduled job: its schedule, the role the schedule passes, the revisions it may run
    #: (``task-definition/<family>:*``), the cluster they run in and its tasks.
    schedule_arn: str | None = None
    scheduler_role_arn: str | None = None
    task_definitions_arn: str | None = None
    cluster_arn: str | None = None
    tasks_arn: str | None = None
    #: The one stack, and the service role CloudFormation must use for it.
    stack_arn: str | None = None
    cloudformation_role_arn: str | None = None


def deploy_policy(target: DeployTarget) -> dict[str, Any]:
    """What the generated ``deploy.yml`` calls, on its own resources and nothing more.

    ``ecr:GetAuthorizationToken``, ``ecs:RegisterTaskDefinition`` and
    ``ecs:DescribeTaskDefinition`` take no resource, so they are on ``*``; everything else
    names its one resource. The stack is deployed only through change sets that name the
    CloudFormation service role (``cloudformation:RoleArn``), so the deploy role never needs
    the rights to create what the stack holds.
    """
    statements: list[dict[str, Any]] = [
        {
            "Sid": "EcrLogin",
            "Effect": "Allow",
            "Action": "ecr:GetAuthorizationToken",
            "Resource": "*",
        },
        {
            "Sid": "PushImages",
            "Effect": "Allow",
            "Action": list(ECR_PUSH_ACTIONS),
            "Resource": target.repository_arn,
        },
        {
            # infra/deploy.sh reads the image of the revision running now, so that a stack
            # update keeps it; the deploy registers the next revision.
            "Sid": "TaskDefinitions",
            "Effect": "Allow",
            "Action": ["ecs:DescribeTaskDefinition", "ecs:RegisterTaskDefinition"],
            "Resource": "*",
        },
    ]
    if target.service_arn:
        statements.append(
            {
                "Sid": "DeployService",
                "Effect": "Allow",
                "Action": ["ecs:DescribeServices", "ecs:UpdateService"],
                "Resource": target.service_arn,
            }
        )
    if target.schedule_arn:
        statements += [
            {
                "Sid": "PointSchedule",
                "Effect": "Allow",
                "Action": ["scheduler:GetSchedule", "scheduler:UpdateSchedule"],
                "Resource": target.schedule_arn,
            },
            {
                "Sid": "PassSchedulerRole",
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": target.scheduler_role_arn,
                "Condition": {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}},
            },
            {
                "Sid": "RunJobOnce",
                "Effect": "Allow",
                "Action": "ecs:RunTask",
                "Resource": target.task_definitions_arn,
                "Condition": {"ArnEquals": {"ecs:cluster": target.cluster_arn}},
            },
            {
                "Sid": "WatchJob",
                "Effect": "Allow",
                "Action": "ecs:DescribeTasks",
                "Resource": target.tasks_arn,
            },
        ]
    statements.append(
        {
            "Sid": "PassTaskRoles",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": target.pass_role_arns,
            "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
        }
    )
    if target.stack_arn:
        statements += [
            {
                "Sid": "CreateStackChangeSets",
                "Effect": "Allow",
                "Action": "cloudformation:CreateChangeSet",
                "Resource": target.stack_arn,
                "Condition": {
                    "StringEquals": {"cloudformation:RoleArn": target.cloudformation_role_arn}
                },
            },
            {
                "Sid": "DeployStack",
                "Effect": "Allow",
                "Action": [a for a in STACK_ACTIONS if a != "cloudformation:CreateChangeSet"],
                "Resource": target.stack_arn,
            },
            {
                "Sid": "PassCloudFormationRole",
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": target.cloudformation_role_arn,
                "Condition": {
                    "StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}
                },
            },
        ]
    return {"Version": "2012-10-17", "Statement": statements}


def create_aws_iam_github_oidc_role_action(*, aws: AwsClients) -> TemplateAction:
    """Build ``aws:iam:github-oidc-role``.

    The OIDC provider is shared by the account: it is created when missing and otherwise
    only given the ``sts.amazonaws.com`` audience if it lacks it. The role is created once per
    task (a checkpoint); an existing role of that name is adopted only if this action made it
    for the same subject (its ``scaffolder:github-subject`` tag), and refused otherwise, so
    a name clash never rewrites someone else's trust policy. The inline policy is written on
    every run (``iam:PutRolePolicy`` replaces it), so a retry converges.
    """

    def handler(ctx: ActionContext) -> None:
        if skipped(ctx, aws, ACTION_ID):
            return
        region = region_of(ctx, aws)
        if ctx.is_dry_run:
            identity = Identity.placeholder(region)
        else:
            identity = Identity.of(client(ctx, aws, "sts", ACTION_ID))
        role_name = str(ctx.input["roleName"])
        subject = subject_of(
            str(ctx.input["repository"]),
            environment=ctx.input.get("environment"),
            ref=ctx.input.get("ref"),
        )
        provider_arn = (
            f"arn:{identity.partition}:iam::{identity.account}:oidc-provider/{GITHUB_OIDC_HOST}"
        )
        trust = trust_policy(provider_arn, subject)
        policy = deploy_policy(_target(ctx.input, identity, region))
        if ctx.is_dry_run:
            ctx.logger.info(
                f"Would ensure the OIDC identity provider https://{GITHUB_OIDC_HOST} (audience "
                f"{AUDIENCE}) and create IAM role {role_name} with this trust policy:\n"
                f"{pretty(trust)}\nand this inline policy ({INLINE_POLICY_NAME}):\n{pretty(policy)}"
            )
            return
        iam = client(ctx, aws, "iam", ACTION_ID)
        ctx.checkpoint(
            f"iam.oidc-provider.{GITHUB_OIDC_HOST}",
            lambda: _ensure_provider(ctx, iam, provider_arn),
        )
        role = ctx.checkpoint(
            f"iam.role.{role_name}",
            lambda: _create_or_adopt_role(ctx, iam, role_name, subject, trust),
        )
        iam.put_role_policy(
            RoleName=role_name, PolicyName=INLINE_POLICY_NAME, PolicyDocument=dumps(policy)
        )
        ctx.logger.info(f"Role {role['roleArn']} may be assumed by {subject}")
        ctx.output("roleArn", role["roleArn"])

    return TemplateAction(
        id=ACTION_ID,
        handler=handler,
        description=DESCRIPTION,
        input_schema=INPUT_SCHEMA,
        output_schema=OUTPUT_SCHEMA,
        examples=(
            ActionExample(description="A deploy role for one service", example=_EXAMPLE),
            ActionExample(
                description="A scheduled job's deploy role, with its stack",
                example=_SCHEDULED_EXAMPLE,
            ),
        ),
        supports_dry_run=True,
    )


def _target(inputs: Mapping[str, Any], identity: Identity, region: str) -> DeployTarget:
    ecs = f"arn:{identity.partition}:ecs:{region}:{identity.account}"
    cluster = str(inputs["cluster"])
    service, schedule, stack = inputs.get("service"), inputs.get("schedule"), inputs.get("stack")
    family = inputs.get("taskFamily") or schedule
    return DeployTarget(
        repository_arn=_ecr_arn(str(inputs["ecrRepository"]), identity, region),
        pass_role_arns=[
            _role_arn(str(inputs["taskRole"]), identity),
            _role_arn(str(inputs["executionRole"]), identity),
        ],
        service_arn=f"{ecs}:service/{cluster}/{service}" if service else None,
        schedule_arn=(
            f"arn:{identity.partition}:scheduler:{region}:{identity.account}:schedule/default/"
            f"{schedule}"
            if schedule
            else None
        ),
        scheduler_role_arn=(
            _role_arn(str(inputs["schedulerRole"]), identity) if schedule else None
        ),
        task_definitions_arn=f"{ecs}:task-definition/{family}:*" if schedule else None,
        cluster_arn=f"{ecs}:cluster/{cluster}" if schedule else None,
        tasks_arn=f"{ecs}:task/{cluster}/*" if schedule else None,
        stack_arn=(
            f"arn:{identity.partition}:cloudformation:{region}:{identity.account}:stack/{stack}/*"
            if stack
            else None
        ),
        cloudformation_role_arn=(
            _role_arn(str(inputs["cloudFormationRole"]), identity) if stack else None
        ),
    )


def _ecr_arn(value: str, identity: Identity, region: str) -> str:
    if value.startswith("arn:"):
        return value
    return f"arn:{identity.partition}:ecr:{region}:{identity.account}:repository/{value}"


def _role_arn(value: str, identity: Identity) -> str:
    if value.startswith("arn:"):
        return value
    return f"arn:{identity.partition}:iam::{identity.account}:role/{value}"


def _ensure_provider(ctx: ActionContext, iam: AwsClient, provider_arn: str) -> str:
    try:
        found = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=provider_arn)
    except AwsNotFoundError:
        try:
            iam.create_open_id_connect_provider(
                Url=f"https://{GITHUB_OIDC_HOST}", ClientIDList=[AUDIENCE]
            )
            ctx.logger.info(f"Created the OIDC identity provider {provider_arn}")
        except AwsConflictError:
            ctx.logger.info(f"OIDC identity provider {provider_arn} exists")
        return provider_arn
    if AUDIENCE not in found.get("ClientIDList", []):
        iam.add_client_id_to_open_id_connect_provider(
            OpenIDConnectProviderArn=provider_arn, ClientID=AUDIENCE
        )
        ctx.logger.info(f"Added the audience {AUDIENCE} to {provider_arn}")
    else:
        ctx.logger.info(f"OIDC identity provider {provider_arn} exists")
    return provider_arn


def _create_or_adopt_role(
    ctx: ActionContext,
    iam: AwsClient,
    role_name: str,
    subject: str,
    trust: Mapping[str, Any],
) -> dict[str, str]:
    tags = {**(ctx.input.get("tags") or {}), SUBJECT_TAG: subject}
    params: dict[str, Any] = {
        "RoleName": role_name,
        "AssumeRolePolicyDocument": dumps(trust),
        "Description": f"GitHub Actions deploys of {subject}"[:1000],
        "MaxSessionDuration": int(ctx.input.get("maxSessionDuration", 3600)),
        "Tags": tag_list(tags),
    }
    if ctx.input.get("permissionsBoundary"):
        params["PermissionsBoundary"] = str(ctx.input["permissionsBoundary"])
    try:
        role = iam.create_role(**params)["Role"]
    except AwsConflictError:
        role = iam.get_role(RoleName=role_name)["Role"]
        owner = {t["Key"]: t["Value"] for t in role.get("Tags", [])}.get(SUBJECT_TAG)
        if owner != subject:
            raise AwsConflictError(
                f"{ACTION_ID}: IAM role {role_name} exists and was not made by the scaffolder "
                f"for {subject} (its {SUBJECT_TAG} tag is {owner!r}); choose another roleName",
                code="EntityAlreadyExists",
            ) from None
        iam.update_assume_role_policy(RoleName=role_name, PolicyDocument=dumps(trust))
        ctx.logger.info(f"IAM role {role_name} exists (made for {subject}); trust policy updated")
        return {"roleArn": str(role["Arn"])}
    ctx.logger.info(f"Created IAM role {role['Arn']}")
    return {"roleArn": str(role["Arn"])}
