"""The pipeline bootstrap of the bundled templates, against moto and a fake GitHub.

The done-when of issue 6: ``scaffolder run template:default/ecs-web-service`` (the CLI's own
code, in this process so that `responses` sees GitHub's calls) publishes the repository to
github.com, creates the ECR repository and the OIDC deploy role in moto, sets the GitHub
environment's variables, dispatches deploy.yml, and prints links to all of them. The other
three templates run through the task pipeline (catalog, task store, worker, runner).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import yaml
from click.testing import CliRunner

from scaffolder.cli import main
from scaffolder.services import Services, build_services
from scaffolder.settings import Settings
from scaffolder.tasks.service import Caller
from tests.aws.conftest import ACCOUNT, REGION, aws_config
from tests.conftest import wait_for_status
from tests.github.conftest import TOKEN
from tests.templates.fake_github import FakeGithub, fake_github, pushing_to_files

COOKIECUTTERS = Path(__file__).resolve().parents[2] / "cookiecutters"
CFN_ROLE = f"arn:aws:iam::{ACCOUNT}:role/platform-cloudformation"
#: What a platform team puts in scaffolder.defaultEnvironment.parameters.
PLATFORM = {
    "ecsClusterName": "platform",
    "vpcId": "vpc-0123456789abcdef0",
    "privateSubnetIds": ["subnet-0aaa", "subnet-0bbb"],
    "httpsListenerArn": (
        f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:listener/app/shared/50dc6c495c0c9188/"
        "f2f7dc8efc522ab2"
    ),
    "albSecurityGroupId": "sg-0alb",
    "alarmTopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:platform-alarms",
    "serviceConnectNamespace": "internal",
    "clientSecurityGroupId": "sg-0clients",
    "cloudFormationRoleArn": CFN_ROLE,
}
#: The variables every template sets (the service name only where there is a service).
COMMON_VARIABLES = {
    "AWS_REGION": REGION,
    "AWS_DEPLOY_ROLE_ARN": "arn:aws:iam::{account}:role/{name}-github-deploy",
    "ECR_REPOSITORY_URI": "{account}.dkr.ecr.{region}.amazonaws.com/{name}",
    "ECS_CLUSTER_NAME": "platform",
    "VPC_ID": "vpc-0123456789abcdef0",
    "PRIVATE_SUBNET_IDS": "subnet-0aaa,subnet-0bbb",
    "CLOUDFORMATION_ROLE_ARN": CFN_ROLE,
}
EXTRA_VARIABLES: dict[str, dict[str, str]] = {
    "ecs-web-service": {
        "ECS_SERVICE_NAME": "{name}",
        "HTTPS_LISTENER_ARN": str(PLATFORM["httpsListenerArn"]),
        "ALB_SECURITY_GROUP_ID": "sg-0alb",
    },
    "ecs-worker-service": {
        "ECS_SERVICE_NAME": "{name}",
        "ALARM_TOPIC_ARN": str(PLATFORM["alarmTopicArn"]),
    },
    "ecs-scheduled-task": {"ALARM_TOPIC_ARN": str(PLATFORM["alarmTopicArn"])},
    "ecs-grpc-service": {
        "ECS_SERVICE_NAME": "{name}",
        "SERVICE_CONNECT_NAMESPACE": "internal",
        "CLIENT_SECURITY_GROUP_ID": "sg-0clients",
    },
}


def expected_variables(template: str, name: str) -> dict[str, str]:
    fields = {"account": ACCOUNT, "region": REGION, "name": name}
    both = {**COMMON_VARIABLES, **EXTRA_VARIABLES[template]}
    return {key: value.format(**fields) for key, value in both.items()}


def config(tmp_path: Path, template: str, **extra: Any) -> dict[str, Any]:
    return {
        "backend": {
            "database": {"connection": f"sqlite:///{tmp_path / 'db.sqlite'}"},
            "workingDirectory": str(tmp_path / "work"),
            "auth": {"dangerouslyDisableDefaultAuthPolicy": True},
        },
        "catalog": {
            "locations": [
                {"type": "file", "target": str(COOKIECUTTERS / template / "template.yaml")}
            ]
        },
        "integrations": {"github": [{"host": "github.com", "token": TOKEN}]},
        "scaffolder": {"defaultEnvironment": {"parameters": PLATFORM}},
        **extra,
    }


@pytest.fixture
def github(tmp_path: Path) -> Iterator[FakeGithub]:
    with fake_github(tmp_path / "github") as fake, pushing_to_files():
        yield fake


def document(value: Any) -> Any:
    """A policy document as IAM returns it (moto: a dict, or URL-encoded JSON)."""
    return value if isinstance(value, dict) else json.loads(unquote(value))


def deploy_policy(boto: Callable[[str], Any], name: str) -> dict[str, dict[str, Any]]:
    policy = boto("iam").get_role_policy(
        RoleName=f"{name}-github-deploy", PolicyName="github-deploy"
    )
    return {s["Sid"]: s for s in document(policy["PolicyDocument"])["Statement"]}


# --- the done-when: the CLI ----------------------------------------------------------------


def test_scaffolder_run_bootstraps_ecs_web_service(
    tmp_path: Path, moto_endpoint: str, boto: Callable[[str], Any], github: FakeGithub
) -> None:
    path = tmp_path / "app-config.yaml"
    path.write_text(
        yaml.safe_dump(config(tmp_path, "ecs-web-service", **aws_config(moto_endpoint)))
    )
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--config",
            str(path),
            "template:default/ecs-web-service",
            "-v",
            "name=payments",
            "-v",
            "repoUrl=github.com?owner=acme&repo=payments",
            "-v",
            "bootstrapAws=true",
            "-v",
            "waitForDeploy=true",
        ],
    )
    assert result.exit_code == 0, result.output

    # GitHub: the repository, the environment with its variables, the first deploy.
    assert [(c["owner"], c["name"]) for c in github.created] == [("acme", "payments")]
    assert list(github.environments[("acme", "payments")]) == ["production"]
    assert github.variables[("acme", "payments", "production")] == expected_variables(
        "ecs-web-service", "payments"
    )
    assert len(github.dispatches) == 1
    dispatch = github.dispatches[0]
    assert (dispatch.owner, dispatch.repo, dispatch.workflow) == ("acme", "payments", "deploy.yml")
    assert dispatch.body == {"ref": "main", "return_run_details": True}

    # AWS: the repository and the deploy role (trusted by the environment, least privilege).
    repo = boto("ecr").describe_repositories(repositoryNames=["payments"])["repositories"][0]
    assert repo["repositoryUri"] == f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/payments"
    role = boto("iam").get_role(RoleName="payments-github-deploy")["Role"]
    trust = document(role["AssumeRolePolicyDocument"])
    assert trust["Statement"][0]["Condition"]["StringEquals"] == {
        "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
        "token.actions.githubusercontent.com:sub": "repo:acme/payments:environment:production",
    }
    providers = boto("iam").list_open_id_connect_providers()["OpenIDConnectProviderList"]
    assert [p["Arn"] for p in providers] == [
        f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
    ]
    statements = deploy_policy(boto, "payments")
    assert list(statements) == [
        "EcrLogin",
        "PushImages",
        "TaskDefinitions",
        "DeployService",
        "PassTaskRoles",
        "CreateStackChangeSets",
        "DeployStack",
        "PassCloudFormationRole",
    ]
    assert statements["PushImages"]["Resource"] == repo["repositoryArn"]
    assert statements["DeployService"]["Resource"] == (
        f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/platform/payments"
    )
    assert statements["CreateStackChangeSets"]["Resource"] == (
        f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/payments/*"
    )
    assert statements["CreateStackChangeSets"]["Condition"] == {
        "StringEquals": {"cloudformation:RoleArn": CFN_ROLE}
    }
    assert statements["PassCloudFormationRole"]["Resource"] == CFN_ROLE

    # The output links all of them (no stack: deployInfrastructure was off).
    links = [line for line in result.output.splitlines() if line.startswith("link: ")]
    assert links == [
        f"link: Repository {github.bare('acme', 'payments').as_uri()}",
        "link: Open in catalog component:default/payments",
        f"link: Pipeline run {github.run_url('acme', 'payments', dispatch.run_id)}",
        f"link: ECR repository https://console.aws.amazon.com/ecr/repositories/private/{ACCOUNT}"
        f"/payments?region={REGION}",
    ]
    assert "Workflow run 9100000 completed with conclusion success" in result.output


# --- the other templates: the task pipeline ------------------------------------------------


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Services]]:
    built: list[Services] = []

    def make(template: str, extra: dict[str, Any]) -> Services:
        services = build_services(Settings.from_config(config(tmp_path, template, **extra)))
        built.append(services)
        return services

    yield make
    for services in built:
        services.close()


def run_task(services: Services, template: str, values: dict[str, Any]) -> tuple[str, list[str]]:
    task_id = services.scaffolder.create_task(
        template_ref=f"template:default/{template}", values=values, secrets=None, caller=Caller()
    )
    status = wait_for_status(services, task_id, timeout=90)
    events = services.broker.store.list_events(task_id)
    log = [str(e.body.get("message", "")) for e in events]
    assert status == "completed", "\n".join(log)
    return task_id, log


def completion_links(services: Services, task_id: str) -> dict[str, str]:
    output = services.broker.store.list_events(task_id)[-1].body["output"]
    return {link["title"]: link.get("url", link.get("entityRef")) for link in output["links"]}


@pytest.mark.parametrize(
    "template", ["ecs-worker-service", "ecs-scheduled-task", "ecs-grpc-service"]
)
def test_each_template_bootstraps_its_pipeline(
    template: str,
    start: Callable[..., Services],
    moto_endpoint: str,
    boto: Callable[[str], Any],
    github: FakeGithub,
) -> None:
    name = f"orders-{template.split('-')[1]}"
    services = start(template, aws_config(moto_endpoint))
    values = {"name": name, "repoUrl": f"github.com?owner=acme&repo={name}", "bootstrapAws": True}
    task_id, _ = run_task(services, template, values)

    repo = boto("ecr").describe_repositories(repositoryNames=[name])["repositories"][0]
    assert repo["imageTagMutability"] == "IMMUTABLE"
    statements = deploy_policy(boto, name)
    assert statements["PushImages"]["Resource"] == repo["repositoryArn"]
    assert statements["PassTaskRoles"]["Resource"] == [
        f"arn:aws:iam::{ACCOUNT}:role/{name}-TaskRole-*",
        f"arn:aws:iam::{ACCOUNT}:role/{name}-ExecutionRole-*",
    ]
    if template == "ecs-scheduled-task":
        # No service to deploy: the schedule is pointed at each revision (point_schedule.sh).
        assert "DeployService" not in statements
        assert statements["PointSchedule"]["Resource"] == (
            f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/default/{name}"
        )
        assert statements["PassSchedulerRole"]["Resource"] == (
            f"arn:aws:iam::{ACCOUNT}:role/{name}-SchedulerRole-*"
        )
        assert statements["RunJobOnce"]["Resource"] == (
            f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{name}:*"
        )
        assert statements["RunJobOnce"]["Condition"] == {
            "ArnEquals": {"ecs:cluster": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/platform"}
        }
    else:
        assert "PointSchedule" not in statements
        assert statements["DeployService"]["Resource"] == (
            f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/platform/{name}"
        )

    assert github.variables[("acme", name, "production")] == expected_variables(template, name)
    assert [(d.repo, d.workflow) for d in github.dispatches] == [(name, "deploy.yml")]
    links = completion_links(services, task_id)
    assert list(links) == [
        "Repository",
        "Open in catalog",
        "Pipeline run",
        "ECR repository",
    ]
    assert links["Pipeline run"] == github.run_url("acme", name, github.dispatches[0].run_id)


def test_without_aws_configured_nothing_is_made_or_set(
    start: Callable[..., Services], github: FakeGithub
) -> None:
    services = start("ecs-worker-service", {})
    values = {
        "name": "orders",
        "repoUrl": "github.com?owner=acme&repo=orders",
        "bootstrapAws": True,
        "deployInfrastructure": True,
    }
    task_id, log = run_task(services, "ecs-worker-service", values)
    for action in ("aws:ecr:create", "aws:iam:github-oidc-role", "aws:cloudformation:deploy"):
        assert any(
            m.endswith(
                f"Skipping {action}: AWS is not configured (set aws.region, and "
                "aws.endpointUrl for a local stand-in)"
            )
            for m in log
        ), action
    # Without a role there is nothing to hand GitHub: no environment, no deploy.
    assert github.environments == {}
    assert github.dispatches == []
    assert list(completion_links(services, task_id)) == ["Repository", "Open in catalog"]


def test_not_on_github_the_aws_part_still_runs(
    start: Callable[..., Services],
    moto_endpoint: str,
    boto: Callable[[str], Any],
    github: FakeGithub,
    tmp_path: Path,
) -> None:
    """A repository on the local git host gets its ECR repository and role; the GitHub steps
    are skipped (there is no GitHub environment to set)."""
    extra = {
        **aws_config(moto_endpoint),
        "integrations": {
            "github": [{"host": "github.com", "token": TOKEN}],
            "git": [{"host": "localhost", "baseUrl": (tmp_path / "git").as_uri()}],
        },
    }
    services = start("ecs-scheduled-task", extra)
    values = {
        "name": "nightly",
        "repoUrl": "localhost?owner=acme&repo=nightly",
        "bootstrapAws": True,
    }
    task_id, _ = run_task(services, "ecs-scheduled-task", values)
    assert boto("ecr").describe_repositories(repositoryNames=["nightly"])["repositories"]
    assert "PointSchedule" in deploy_policy(boto, "nightly")
    assert github.environments == {}
    assert github.dispatches == []
    assert list(completion_links(services, task_id)) == [
        "Repository",
        "Open in catalog",
        "ECR repository",
    ]


def test_deploy_infrastructure_creates_the_stack_through_the_cloudformation_role(
    start: Callable[..., Services],
    moto_endpoint: str,
    boto: Callable[[str], Any],
    github: FakeGithub,
    cloudformation_rollbacks: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """deployInfrastructure: infra/service.yaml from the workspace, the platform's values as
    parameters, CloudFormation acting as the platform's role. moto cannot make every resource
    of the stack (AWS::CloudWatch::Alarm), so the stack rolls back, the step fails naming the
    resource, and the first deploy is not dispatched."""
    image = "public.ecr.aws/nginx/nginx:stable"
    monkeypatch.setitem(PLATFORM, "placeholderImageUri", image)
    services = start("ecs-worker-service", aws_config(moto_endpoint))
    values = {
        "name": "orders",
        "repoUrl": "github.com?owner=acme&repo=orders",
        "bootstrapAws": True,
        "deployInfrastructure": True,
    }
    task_id = services.scaffolder.create_task(
        template_ref="template:default/ecs-worker-service",
        values=values,
        secrets=None,
        caller=Caller(),
    )
    assert wait_for_status(services, task_id, timeout=90) == "failed"
    log = [str(e.body.get("message", "")) for e in services.broker.store.list_events(task_id)]
    assert any("DeadLetterAlarm (AWS::CloudWatch::Alarm) CREATE_FAILED" in m for m in log), log

    stack = boto("cloudformation").describe_stacks(StackName="orders")["Stacks"][0]
    assert stack["StackStatus"] == "ROLLBACK_COMPLETE"
    assert stack["RoleARN"] == CFN_ROLE
    assert stack["Tags"] == [{"Key": "component", "Value": "orders"}]
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert {k: parameters[k] for k in ("ServiceName", "ClusterName", "VpcId", "ImageUri")} == {
        "ServiceName": "orders",
        "ClusterName": "platform",
        "VpcId": "vpc-0123456789abcdef0",
        "ImageUri": image,
    }
    assert parameters["AlarmTopicArn"] == PLATFORM["alarmTopicArn"]
    assert "subnet-0aaa" in parameters["PrivateSubnetIds"]
    # The variables were set before the stack; the deploy is not started after a failure.
    assert github.variables[("acme", "orders", "production")]
    assert github.dispatches == []
