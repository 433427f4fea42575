"""aws:ssm:put-parameter and aws:secretsmanager:create-secret: values from task secrets only."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest

from scaffolder.actions.base import TemplateAction
from scaffolder.actions.builtin.aws_secretsmanager_create_secret import (
    create_aws_secretsmanager_create_secret_action,
)
from scaffolder.actions.builtin.aws_ssm_put_parameter import create_aws_ssm_put_parameter_action
from scaffolder.errors import ConflictError, InputError
from scaffolder.integrations.aws import AwsClients
from tests.aws.conftest import ACCOUNT, REGION, Checkpoints

VALUE = "s3cr3t-Value-9f8e"
SECRETS = {"appSecret": VALUE}


def assert_never_shown(run: Any, checkpoints: Checkpoints) -> None:
    shown = json.dumps([run.lines, run.outputs, checkpoints.stored, run.ctx.input])
    assert VALUE not in shown


# --- SSM --------------------------------------------------------------------------------------


def test_puts_a_secure_string(aws: AwsClients, run_aws: Any, boto: Callable[[str], Any]) -> None:
    checkpoints = Checkpoints()
    run = run_aws(
        create_aws_ssm_put_parameter_action(aws=aws),
        {"name": "/payments/app-secret", "secret": "appSecret", "tags": {"component": "payments"}},
        secrets=SECRETS,
        checkpoints=checkpoints,
    )
    ssm = boto("ssm")
    found = ssm.get_parameter(Name="/payments/app-secret", WithDecryption=True)["Parameter"]
    assert found["Type"] == "SecureString"
    assert found["Value"] == VALUE
    tags = ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId="/payments/app-secret")
    assert tags["TagList"] == [{"Key": "component", "Value": "payments"}]
    assert run.outputs == {"name": "/payments/app-secret", "version": 1}
    assert run.messages == ["Put SSM parameter /payments/app-secret (SecureString), version 1"]
    assert_never_shown(run, checkpoints)


def test_ssm_same_value_is_left_and_another_value_needs_overwrite(
    aws: AwsClients, run_aws: Any, boto: Callable[[str], Any]
) -> None:
    action = create_aws_ssm_put_parameter_action(aws=aws)
    values = {"name": "/payments/app-secret", "secret": "appSecret"}
    run_aws(action, values, secrets=SECRETS)

    again = run_aws(action, values, secrets=SECRETS)  # another task, the same value
    assert again.messages == [
        "SSM parameter /payments/app-secret already holds this value; left as it is"
    ]
    assert again.outputs["version"] == 1

    other = {"appSecret": "another-value"}
    with pytest.raises(ConflictError, match="exists with another value; set overwrite: true"):
        run_aws(action, values, secrets=other)
    replaced = run_aws(action, {**values, "overwrite": True, "tags": {"a": "b"}}, secrets=other)
    assert replaced.outputs["version"] == 2
    found = boto("ssm").get_parameter(Name="/payments/app-secret", WithDecryption=True)
    assert found["Parameter"]["Value"] == "another-value"


def test_ssm_rerun_in_the_same_task_puts_once(aws: AwsClients, run_aws: Any) -> None:
    action = create_aws_ssm_put_parameter_action(aws=aws)
    checkpoints = Checkpoints()
    values = {"name": "/payments/app-secret", "secret": "appSecret"}
    run_aws(action, values, secrets=SECRETS, checkpoints=checkpoints)
    again = run_aws(action, values, secrets=SECRETS, checkpoints=checkpoints)
    assert again.messages == []
    assert checkpoints.ran == [f"ssm.parameter.{REGION}./payments/app-secret"]


# --- Secrets Manager ------------------------------------------------------------------------


def test_creates_a_secret(aws: AwsClients, run_aws: Any, boto: Callable[[str], Any]) -> None:
    checkpoints = Checkpoints()
    run = run_aws(
        create_aws_secretsmanager_create_secret_action(aws=aws),
        {"name": "payments/db", "secret": "appSecret", "description": "DB password"},
        secrets=SECRETS,
        checkpoints=checkpoints,
    )
    sm = boto("secretsmanager")
    found = sm.get_secret_value(SecretId="payments/db")
    assert found["SecretString"] == VALUE
    assert sm.describe_secret(SecretId="payments/db")["Description"] == "DB password"
    assert run.outputs == {"arn": found["ARN"], "name": "payments/db"}
    assert found["ARN"].startswith(f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:payments/db-")
    assert run.messages == [f"Created secret {found['ARN']}"]
    assert_never_shown(run, checkpoints)


def test_secret_same_value_is_left_and_another_value_needs_overwrite(
    aws: AwsClients, run_aws: Any, boto: Callable[[str], Any]
) -> None:
    action = create_aws_secretsmanager_create_secret_action(aws=aws)
    values = {"name": "payments/db", "secret": "appSecret"}
    first = run_aws(action, values, secrets=SECRETS)
    boto("secretsmanager").put_secret_value(SecretId="payments/db", SecretString="changed")

    # Other tasks: the same task would repeat its own idempotent request.
    with pytest.raises(ConflictError, match="exists with another value; set overwrite: true"):
        run_aws(action, values, secrets=SECRETS, task_id="task-2")
    replaced = run_aws(action, {**values, "overwrite": True}, secrets=SECRETS, task_id="task-3")
    assert replaced.outputs == first.outputs
    assert replaced.messages == [f"Stored a new version of secret {first.outputs['arn']}"]
    assert boto("secretsmanager").get_secret_value(SecretId="payments/db")["SecretString"] == VALUE
    same = run_aws(action, values, secrets=SECRETS, task_id="task-4")
    assert same.messages == ["Secret payments/db already holds this value; left as it is"]


# --- both -------------------------------------------------------------------------------------

BOTH = [
    (create_aws_ssm_put_parameter_action, {"name": "/payments/app-secret", "secret": "appSecret"}),
    (
        create_aws_secretsmanager_create_secret_action,
        {"name": "payments/db", "secret": "appSecret"},
    ),
]


@pytest.mark.parametrize(("factory", "values"), BOTH)
def test_a_missing_task_secret_is_an_input_error(
    factory: Callable[..., TemplateAction], values: dict[str, Any], aws: AwsClients, run_aws: Any
) -> None:
    with pytest.raises(InputError, match="the task secret 'appSecret' is not set"):
        run_aws(factory(aws=aws), values, secrets={})


@pytest.mark.parametrize(("factory", "values"), BOTH)
def test_dry_run_names_the_secret_not_its_value(
    factory: Callable[..., TemplateAction],
    values: dict[str, Any],
    aws: AwsClients,
    run_aws: Any,
    boto: Callable[[str], Any],
) -> None:
    checkpoints = Checkpoints()
    run = run_aws(
        factory(aws=aws), values, secrets=SECRETS, is_dry_run=True, checkpoints=checkpoints
    )
    (message,) = run.messages
    assert message.startswith("Would ")
    assert "from the task secret 'appSecret' (value not shown)" in message
    assert_never_shown(run, checkpoints)
    assert run.outputs == {}
    assert boto("ssm").describe_parameters()["Parameters"] == []
    assert boto("secretsmanager").list_secrets()["SecretList"] == []


@pytest.mark.parametrize(("factory", "values"), BOTH)
def test_skipped_when_aws_is_not_configured(
    factory: Callable[..., TemplateAction], values: dict[str, Any], run_aws: Any
) -> None:
    action = factory(aws=AwsClients(None))
    run = run_aws(action, values, secrets=SECRETS)
    assert run.messages == [
        f"Skipping {action.id}: AWS is not configured (set aws.region, and aws.endpointUrl "
        "for a local stand-in)"
    ]
    assert run.outputs == {}


@pytest.mark.parametrize(("factory", "values"), BOTH)
def test_a_value_is_never_an_input(
    factory: Callable[..., TemplateAction], values: dict[str, Any]
) -> None:
    schema = factory(aws=AwsClients(None)).input_schema
    assert schema is not None
    with pytest.raises(jsonschema.ValidationError, match="Additional properties"):
        jsonschema.Draft7Validator(schema).validate({**values, "value": VALUE})
