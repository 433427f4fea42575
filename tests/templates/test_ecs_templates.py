"""Every bundled template (``cookiecutters/*/template.yaml``), end to end.

For each template: the entity validates and its form maps onto its cookiecutter; it renders
with its defaults and with a set of non-default values (one of them hostile text); the
rendered repository passes the quality gate and its own tests; GitHub expressions in its
workflows survive cookiecutter, and user values come out literally.

Rendering goes through the real pipeline (catalog, task, worker, ``fetch:cookiecutter``) when
that action is registered, and otherwise through cookiecutter directly, with the step's
``values`` rendered by our templater from the validated parameters, as the pipeline would.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from scaffolder.catalog.validation import validate_entity
from scaffolder.services import Services, build_services
from scaffolder.settings import Settings
from scaffolder.tasks.service import Caller, parameter_steps
from tests.github.conftest import TOKEN
from tests.templates.fake_github import GIT_ENV, FakeGithub, fake_github, pushing_to_files

REPO = Path(__file__).resolve().parents[2]
COOKIECUTTERS = REPO / "cookiecutters"
TEMPLATE_FILES = sorted(COOKIECUTTERS.glob("*/template.yaml"))
TEMPLATES = [path.parent.name for path in TEMPLATE_FILES]

#: Form fields that are not cookiecutter variables.
FORM_ONLY = frozenset(
    {"repoUrl", "runQualityGate", "bootstrapAws", "deployInfrastructure", "waitForDeploy"}
)
#: Cookiecutter variables the form fills indirectly (from repoUrl) or never (derived).
INDIRECT = frozenset({"repo_owner", "repo_name"})
DERIVED = frozenset({"slug"})

#: Text a user may type: quotes, a colon, Jinja syntax that must not be evaluated.
HOSTILE_TEXT = 'Pays the "ops" team: {{ 7*7 }} times {% if x %}'

#: Non-default values for the variables every template shares (used where declared).
CUSTOM_COMMON: dict[str, Any] = {
    "name": "payments-api",
    "description": HOSTILE_TEXT,
    "owner": "group:default/payments-team",
    "system": "system:default/payments",
    "lifecycle": "production",
    "repoUrl": "github.com?owner=acme-corp&repo=payments-api-repo",
    "aws_region": "eu-west-1",
    "cpu": 512,
    "memory": 1024,
    "desired_count": 3,
    "min_capacity": 3,
    "max_capacity": 9,
    "python_version": "3.13",
    "health_check_path": "/healthz",
    "host_header": "payments.example.org",
    "path_pattern": "/api/*",
}

CASES = ("defaults", "custom")
#: What the publish step publishes to without a repoUrl: the local git host.
DEFAULT_REPO_URL = "parameters.repoUrl or ('localhost?owner=platform&repo=' + parameters.name)"
GITHUB_EXPRESSION = re.compile(r"\$\{\{.*?\}\}")
RAW_TAGS = re.compile(r"\{%-?\s*(?:raw|endraw)\s*-?%\}")
PINNED_USES = re.compile(r"^\s*(?:-\s+)?uses:\s+[\w.-]+/[\w./-]+@[0-9a-f]{40}(?:\s|$)")
TASK_TIMEOUT = 60.0


# --- reading templates ---------------------------------------------------------------------


@functools.cache
def load_template(name: str) -> dict[str, Any]:
    entity: dict[str, Any] = yaml.safe_load((COOKIECUTTERS / name / "template.yaml").read_text())
    return entity


@functools.cache
def load_cookiecutter_json(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (COOKIECUTTERS / name / "cookiecutter" / "cookiecutter.json").read_text()
    )
    return data


def form_properties(name: str) -> dict[str, dict[str, Any]]:
    props: dict[str, dict[str, Any]] = {}
    for step in parameter_steps(load_template(name)["spec"]):
        props.update(step.get("properties") or {})
    return props


def fetch_step(name: str) -> dict[str, Any]:
    steps = load_template(name)["spec"]["steps"]
    found = [s for s in steps if s.get("action") == "fetch:cookiecutter"]
    assert len(found) == 1, f"{name}: expected one fetch:cookiecutter step"
    return dict(found[0])


def cookiecutter_default(value: Any) -> Any:
    return value[0] if isinstance(value, list) else value


def case_values(name: str, case: str) -> dict[str, Any]:
    """What a user submits: the name only, or a non-default value for every field."""
    if case == "defaults":
        # One name per template: with no repoUrl each publishes to localhost/platform/<name>.
        return {"name": f"svc-{name.split('-')[1]}"}
    values: dict[str, Any] = {}
    for key, prop in form_properties(name).items():
        if key == "runQualityGate":
            continue
        if key in CUSTOM_COMMON:
            values[key] = CUSTOM_COMMON[key]
        elif prop.get("type") == "boolean":
            values[key] = not prop.get("default", False)
        elif "enum" in prop:
            others = [v for v in prop["enum"] if v != prop.get("default")]
            values[key] = others[0] if others else prop["enum"][0]
        elif prop.get("type") == "integer" and "default" in prop:
            values[key] = min(int(prop["default"]) + 1, int(prop.get("maximum", 10**9)))
    # One repository and component per template: each publishes to GitHub and registers.
    kind = name.split("-")[1]
    values["name"] = f"{CUSTOM_COMMON['name']}-{kind}"
    values["repoUrl"] = f"{CUSTOM_COMMON['repoUrl']}-{kind}"
    return values


# --- rendering -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def github(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGithub]:
    """GitHub for the module: every github.com repoUrl publishes to a local bare repository."""
    root = tmp_path_factory.mktemp("github")
    with fake_github(root) as github:
        yield github


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory, github: FakeGithub) -> Iterator[Services]:
    root = tmp_path_factory.mktemp("scaffolder")
    settings = Settings.from_config(
        {
            "backend": {
                "database": {"connection": f"sqlite:///{root / 'db.sqlite'}"},
                "workingDirectory": str(root / "work"),
                "auth": {"dangerouslyDisableDefaultAuthPolicy": True},
            },
            "scaffolder": {"keepWorkspaces": True, "concurrentTasksLimit": 4},
            "catalog": {
                "locations": [{"type": "file", "target": f"{COOKIECUTTERS}/*/template.yaml"}]
            },
            # Where the publish step of a task without repoUrl pushes (the local git host).
            "integrations": {
                "git": [{"host": "localhost", "baseUrl": (root / "git").as_uri()}],
                # A github.com repoUrl: publish:github, against `github` above.
                "github": [{"host": "github.com", "token": TOKEN}],
            },
        }
    )
    with pushing_to_files():
        built = build_services(settings)
    yield built
    built.close()


@pytest.fixture(scope="module")
def rendered(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``rendered(template, case)``: the generated repository, rendered once per module."""
    out = tmp_path_factory.mktemp("rendered")

    @functools.cache
    def render(name: str, case: str) -> Path:
        values = case_values(name, case)
        if "fetch:cookiecutter" in services.registry:
            return render_through_pipeline(services, name, values)
        return render_directly(services, name, values, out / f"{name}-{case}")

    return render


def render_through_pipeline(services: Services, name: str, values: dict[str, Any]) -> Path:
    task_id = services.scaffolder.create_task(
        template_ref=f"template:default/{name}", values=values, secrets=None, caller=Caller()
    )
    deadline = time.monotonic() + TASK_TIMEOUT
    while (status := services.broker.store.get_task(task_id).status.value) in (
        "open",
        "processing",
    ):
        assert time.monotonic() < deadline, f"{name}: task {task_id} still {status}"
        time.sleep(0.02)
    log = [e.body.get("message", "") for e in services.broker.store.list_events(task_id)]
    assert status == "completed", f"{name}: task {status}:\n" + "\n".join(map(str, log))
    return services.settings.working_directory / task_id


def render_directly(services: Services, name: str, values: dict[str, Any], out: Path) -> Path:
    from cookiecutter.main import cookiecutter

    spec = load_template(name)["spec"]
    parameters = services.scaffolder.validate_values(spec, values)
    step_values = services.templater.render_value(
        fetch_step(name)["input"]["values"], {"parameters": parameters}
    )
    # cookiecutter renders every context string again; fetch:cookiecutter passes values as
    # data, and so does this stand-in.
    extra = {key: as_jinja_literal(value) for key, value in step_values.items()}
    project = cookiecutter(
        str(COOKIECUTTERS / name / "cookiecutter"),
        no_input=True,
        extra_context=extra,
        output_dir=str(out),
    )
    return Path(project)


def as_jinja_literal(value: Any) -> Any:
    if isinstance(value, str) and re.search(r"\{[{%#]", value):
        return "{% raw %}" + value + "{% endraw %}"
    return value


# --- (a) the template entity -----------------------------------------------------------


@pytest.mark.parametrize("name", TEMPLATES)
def test_template_entity_is_valid_and_in_the_catalog(name: str, services: Services) -> None:
    entity = load_template(name)
    validate_entity(entity)
    assert entity["apiVersion"] == "scaffolder.backstage.io/v1beta3"
    assert entity["kind"] == "Template"
    assert entity["metadata"]["name"] == name
    assert entity["metadata"].get("title")
    assert entity["metadata"].get("description")
    assert entity["metadata"].get("tags")
    assert entity["spec"]["owner"] == "group:default/platform"
    assert entity["spec"]["type"] == "service"
    assert (
        services.scaffolder.find_template("default", "template", name)["metadata"]["name"] == name
    )


@pytest.mark.parametrize("name", TEMPLATES)
def test_form_maps_onto_the_cookiecutter(name: str) -> None:
    variables = load_cookiecutter_json(name)
    public = {k for k in variables if not k.startswith("_")}
    props = form_properties(name)
    for key, prop in props.items():
        if key in FORM_ONLY:
            continue
        assert key in public, f"{name}: form field {key} is not a cookiecutter variable"
        if "default" in prop:
            expected = cookiecutter_default(variables[key])
            assert str(prop["default"]) == str(expected), (
                f"{name}: {key} defaults to {prop['default']!r} in the form, "
                f"{expected!r} in cookiecutter.json"
            )
    passed = set(fetch_step(name)["input"]["values"])
    assert passed == (set(props) - FORM_ONLY) | INDIRECT, f"{name}: values passed != form fields"
    assert public - DERIVED == passed, f"{name}: cookiecutter variables the form cannot set"


@pytest.mark.parametrize("name", TEMPLATES)
def test_form_fields_and_steps_follow_the_conventions(name: str) -> None:
    props = form_properties(name)
    assert props["name"]["ui:field"] == "EntityNamePicker"
    assert props["owner"]["ui:field"] == "OwnerPicker"
    assert props["owner"]["ui:options"]["catalogFilter"]["kind"] == "Group"
    assert props["system"]["ui:field"] == "EntityPicker"
    assert props["system"]["ui:options"]["catalogFilter"]["kind"] == "System"
    assert props["repoUrl"]["ui:field"] == "RepoUrlPicker"
    assert props["repoUrl"]["ui:options"]["allowedHosts"] == ["localhost", "github.com"]
    assert props["runQualityGate"]["type"] == "boolean"
    assert props["runQualityGate"]["default"] is False
    required = {
        key
        for step in parameter_steps(load_template(name)["spec"])
        for key in step.get("required", [])
    }
    assert "repoUrl" not in required  # empty: the local git host

    steps = load_template(name)["spec"]["steps"]
    assert [s["action"] for s in steps[:6]] == [
        "fetch:cookiecutter",
        "quality:lint",
        "debug:log",
        "publish:git",
        "publish:github",
        "catalog:register",
    ]
    assert [s["id"] for s in steps[6:]] == list(BOOTSTRAP)  # the pipeline bootstrap
    publish = steps[3]
    assert publish["id"] == "publish"
    assert publish["input"]["repoUrl"] == f"${{{{ {DEFAULT_REPO_URL} }}}}"
    assert publish["if"] == f"${{{{ (({DEFAULT_REPO_URL}) | parseRepoUrl).host != 'github.com' }}}}"
    assert publish["input"]["defaultBranch"] == "main"
    # Its mirror: exactly one of the two runs.
    publish_github = steps[4]
    assert publish_github["id"] == "publish-github"
    assert publish_github["if"] == publish["if"].replace("!= 'github.com'", "== 'github.com'")
    assert publish_github["input"] == {
        "repoUrl": publish["input"]["repoUrl"],
        "description": publish["input"]["description"],
        "defaultBranch": "main",
        "repoVisibility": "private",
    }
    either = "steps.publish.output.{0} or steps['publish-github'].output.{0}"
    register = steps[5]
    assert register["id"] == "register"
    assert "if" not in register  # after whichever publish step ran
    assert register["input"] == {
        "repoContentsUrl": f"${{{{ {either.format('repoContentsUrl')} }}}}",
        "catalogInfoPath": "/catalog-info.yaml",
    }
    links = load_template(name)["spec"]["output"]["links"]
    assert links[:2] == [
        {
            "title": "Repository",
            "url": f"${{{{ {either.format('remoteUrl')} }}}}",
            "if": f"${{{{ {either.format('remoteUrl')} }}}}",
        },
        {
            "title": "Open in catalog",
            "icon": "catalog",
            "entityRef": "${{ steps.register.output.entityRef }}",
            "if": "${{ steps.register.output.entityRef }}",
        },
    ]
    assert steps[0]["input"]["url"] == "./cookiecutter"
    assert steps[1]["if"] == "${{ parameters.runQualityGate }}"
    assert steps[1]["input"] == {"path": "./"}
    assert load_template(name)["spec"]["output"]["text"]


#: The pipeline bootstrap steps after register, in every template: id -> action.
BOOTSTRAP = {
    "ecr": "aws:ecr:create",
    "deploy-role": "aws:iam:github-oidc-role",
    "github-environment": "github:environment:create",
    "stack": "aws:cloudformation:deploy",
    "first-deploy": "github:actions:dispatch",
}
ON_GITHUB_WITH_A_ROLE = (
    "${{ parameters.bootstrapAws and steps['deploy-role'].output.roleArn and "
    "(parameters.repoUrl | parseRepoUrl).host == 'github.com' }}"
)


@pytest.mark.parametrize("name", TEMPLATES)
def test_bootstraps_the_pipeline_only_when_asked(name: str) -> None:
    props = form_properties(name)
    for switch in ("bootstrapAws", "deployInfrastructure", "waitForDeploy"):
        assert props[switch]["type"] == "boolean"
        assert props[switch]["default"] is False
    steps = {s["id"]: s for s in load_template(name)["spec"]["steps"]}
    assert {key: steps[key]["action"] for key in BOOTSTRAP} == BOOTSTRAP
    assert steps["ecr"]["if"] == steps["deploy-role"]["if"] == "${{ parameters.bootstrapAws }}"
    assert steps["stack"]["if"] == (
        "${{ parameters.bootstrapAws and parameters.deployInfrastructure }}"
    )
    # GitHub only with a role to hand it (AWS configured) and a github.com repository.
    assert steps["github-environment"]["if"] == ON_GITHUB_WITH_A_ROLE
    assert steps["first-deploy"]["if"] == ON_GITHUB_WITH_A_ROLE
    role = steps["deploy-role"]["input"]
    assert role["environment"] == steps["github-environment"]["input"]["name"] == "production"
    assert role["ecrRepository"] == steps["ecr"]["input"]["repositoryName"]
    assert steps["first-deploy"]["input"]["workflowId"] == "deploy.yml"
    assert steps["stack"]["input"]["templatePath"] == "infra/service.yaml"
    # Every link and text of the bootstrap shows only when its step produced it.
    output = load_template(name)["spec"]["output"]
    assert all("if" in item for item in output["links"])
    assert [link["title"] for link in output["links"]] == [
        "Repository",
        "Open in catalog",
        "Pipeline run",
        "ECR repository",
        "CloudFormation stack",
    ]


@pytest.mark.parametrize("name", TEMPLATES)
def test_the_environment_variables_are_the_ones_deploy_yml_reads(name: str) -> None:
    """Each variable the bootstrap sets is read by the rendered deploy.yml, and each
    ``vars.*`` deploy.yml needs is set (the optional overrides of the platform may be unset)."""
    source = (
        COOKIECUTTERS / name / "cookiecutter" / "{{cookiecutter.slug}}" / ".github" / "workflows"
    )
    read = set(re.findall(r"\bvars\.([A-Z_]+)", (source / "deploy.yml").read_text()))
    steps = {s["id"]: s for s in load_template(name)["spec"]["steps"]}
    written = set(steps["github-environment"]["input"]["environmentVariables"])
    assert written <= read, f"{name}: set but never read: {written - read}"
    optional = {"LISTENER_RULE_PRIORITY", "HOST_HEADER"}  # the form's values are rendered
    assert read - written <= optional, f"{name}: read but never set: {read - written}"


# --- (b) rendering, (e) values as data ------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name", TEMPLATES)
def test_renders_the_service_repository(name: str, case: str, rendered: Any) -> None:
    root: Path = rendered(name, case)
    values = case_values(name, case)
    variables = load_cookiecutter_json(name)
    slug = values["name"]
    for path in (
        "README.md", "CODEOWNERS", "catalog-info.yaml", "mkdocs.yml", "docs/index.md",
        ".cruft.json", "Dockerfile", ".aws/task-definition.json", "infra/service.yaml",
        "infra/overrides/README.md", ".github/workflows/ci.yml", ".github/workflows/deploy.yml",
    ):  # fmt: skip
        assert (root / path).is_file(), f"{name}/{case}: {path} missing"

    catalog = yaml.safe_load((root / "catalog-info.yaml").read_text())
    validate_entity(catalog)
    annotations = catalog["metadata"]["annotations"]
    owner = values.get("owner", cookiecutter_default(variables["owner"]))
    repo = (
        f"acme-corp/payments-api-repo-{name.split('-')[1]}"
        if "repoUrl" in values
        else f"{variables['repo_owner']}/{slug}"
    )
    assert catalog["kind"] == "Component"
    assert catalog["metadata"]["name"] == slug
    assert catalog["spec"]["owner"] == owner
    assert catalog["spec"]["lifecycle"] == values.get("lifecycle", "experimental")
    assert catalog["spec"].get("system") == values.get("system")
    assert annotations["github.com/project-slug"] == repo
    assert annotations["backstage.io/techdocs-ref"] == "dir:."
    assert annotations["backstage.io/source-template"] == f"template:default/{name}"
    assert annotations["aws.amazon.com/amazon-ecs-service-tags"] == f"component={slug}"

    cruft = json.loads((root / ".cruft.json").read_text())
    assert cruft["checkout"] is None
    assert cruft["commit"]
    assert cruft["directory"] == f"cookiecutters/{name}/cookiecutter"
    context = cruft["context"]["cookiecutter"]
    assert {k for k in variables if not k.startswith("_")} <= set(context)
    assert context["name"] == slug

    task = json.loads((root / ".aws" / "task-definition.json").read_text())
    assert task["requiresCompatibilities"] == ["FARGATE"]
    assert task["networkMode"] == "awsvpc"
    assert task["cpu"] == str(values.get("cpu", variables["cpu"]))
    assert task["memory"] == str(values.get("memory", variables["memory"]))
    assert task["executionRoleArn"] != task["taskRoleArn"]
    for container in task["containerDefinitions"]:
        assert container["logConfiguration"]["logDriver"] == "awslogs"
        assert all("valueFrom" in s for s in container.get("secrets", []))

    dockerfile = (root / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", dockerfile, re.MULTILINE)) >= 2, "multi-stage"
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    assert users
    assert users[-1].split(":")[0] not in ("root", "0")
    assert ":latest" not in dockerfile
    if "container_port" in variables:
        assert "HEALTHCHECK" in dockerfile

    for script in (root / "infra").glob("*.sh"):
        assert os.access(script, os.X_OK), f"{name}/{case}: {script.name} is not executable"

    if case == "custom":
        assert catalog["metadata"]["description"] == HOSTILE_TEXT
        assert context["description"] == HOSTILE_TEXT
        assert HOSTILE_TEXT in (root / "README.md").read_text()


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name", TEMPLATES)
def test_workflows_keep_github_expressions_and_pin_actions(
    name: str, case: str, rendered: Any
) -> None:
    root: Path = rendered(name, case)
    sources = (
        COOKIECUTTERS / name / "cookiecutter" / "{{cookiecutter.slug}}" / ".github" / "workflows"
    )
    for source in sorted(sources.glob("*.y*ml")):
        text = (root / ".github" / "workflows" / source.name).read_text()
        expected = GITHUB_EXPRESSION.findall(RAW_TAGS.sub("", source.read_text()))
        assert GITHUB_EXPRESSION.findall(text) == expected, f"{source.name}: expressions changed"
        assert "{%" not in text
        assert "{{ cookiecutter" not in text
        workflow = yaml.safe_load(text)
        assert workflow["permissions"] == {"contents": "read"}, f"{source.name}: top permissions"
        for line in text.splitlines():
            if re.match(r"^\s*(?:-\s+)?uses:", line):
                assert PINNED_USES.match(line), f"{source.name}: unpinned {line.strip()}"
    deploy = yaml.safe_load((root / ".github" / "workflows" / "deploy.yml").read_text())
    assert deploy.get("concurrency")
    assert any(job.get("environment") for job in deploy["jobs"].values())
    assert any(
        (job.get("permissions") or {}).get("id-token") == "write" for job in deploy["jobs"].values()
    )
    steps = [step for job in deploy["jobs"].values() for step in job.get("steps", [])]
    uses = {str(step.get("uses", "")).split("@")[0]: step for step in steps}
    for action in (
        "aws-actions/configure-aws-credentials",
        "aws-actions/amazon-ecr-login",
        "aws-actions/amazon-ecs-render-task-definition",
        "aws-actions/amazon-ecs-deploy-task-definition",
    ):
        assert action in uses, f"{name}: deploy.yml does not use {action}"
    deploy_step = uses["aws-actions/amazon-ecs-deploy-task-definition"].get("with", {})
    if deploy_step.get("service"):  # a scheduled task registers only, no service to wait for
        assert deploy_step.get("wait-for-service-stability") is True


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name", TEMPLATES)
def test_publishes_to_the_local_git_host_or_github(
    name: str, case: str, rendered: Any, services: Services, github: FakeGithub
) -> None:
    root: Path = rendered(name, case)
    if "fetch:cookiecutter" not in services.registry:
        pytest.skip("rendered without the pipeline: nothing was published")
    values = case_values(name, case)
    local = (
        services.settings.working_directory.parent / "git" / "platform" / f"{values['name']}.git"
    )
    slug = yaml.safe_load((root / "catalog-info.yaml").read_text())["metadata"]["name"]
    component = services.catalog.get_entity(f"component:default/{slug}")
    links = services.broker.store.list_events(root.name)[-1].body["output"]["links"]
    if "repoUrl" in values:  # github.com: publish:github, not the local host
        assert not local.exists()
        owner, repo = re.fullmatch(r"github\.com\?owner=(.+)&repo=(.+)", values["repoUrl"]).groups()
        bare = github.bare(owner, repo)
        # GitHub's resolveUrl (as upstream's): a /tree/ URL.
        location = f"url:https://github.com/{owner}/{repo}/tree/main/catalog-info.yaml"
    else:
        bare = local
        location = f"url:{bare.as_uri()}/blob/main/catalog-info.yaml"
    listing = subprocess.run(
        ["git", "--git-dir", str(bare), "ls-tree", "-r", "--name-only", "main"],
        env=GIT_ENV, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    # What the workspace held when it was published (the generated tests add caches later).
    expected = sorted(
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if not path.is_dir() and not {"__pycache__", ".pytest_cache"} & set(path.parts)
    )
    assert sorted(listing) == expected
    assert "catalog-info.yaml" in listing
    # catalog:register read catalog-info.yaml from the published branch into the catalog.
    assert component is not None
    assert component["metadata"]["annotations"]["backstage.io/managed-by-location"] == location
    assert links == [
        {"title": "Repository", "url": bare.as_uri()},
        {"title": "Open in catalog", "icon": "catalog", "entityRef": f"component:default/{slug}"},
    ]


def test_publishes_to_github_and_registers(
    services: Services, github: FakeGithub, tmp_path: Path
) -> None:
    """A github.com repoUrl through the real pipeline: publish:github creates the repository
    (private, in the organization), pushes the rendered service, and catalog:register reads
    its catalog-info.yaml back from GitHub into the catalog."""
    if "fetch:cookiecutter" not in services.registry:
        pytest.skip("fetch:cookiecutter is not registered: no pipeline to publish from")
    values = {"name": "payments", "repoUrl": "github.com?owner=acme&repo=payments"}
    root = render_through_pipeline(services, "ecs-web-service", values)

    created = [c for c in github.created if c["name"] == "payments"]
    assert len(created) == 1
    assert created[0]["owner"] == "acme"
    assert created[0]["visibility"] == "private"
    assert created[0]["description"] == "A web service on Amazon ECS"
    clone = tmp_path / "clone"
    subprocess.run(
        ["git", "clone", "-q", "--branch", "main", github.bare("acme", "payments").as_uri(),
         str(clone)],
        env=GIT_ENV, check=True, capture_output=True,
    )  # fmt: skip
    pushed = yaml.safe_load((clone / "catalog-info.yaml").read_text())
    assert pushed == yaml.safe_load((root / "catalog-info.yaml").read_text())
    assert pushed["metadata"]["annotations"]["github.com/project-slug"] == "acme/payments"

    ref = f"component:default/{pushed['metadata']['name']}"
    component = services.catalog.get_entity(ref)
    assert component is not None
    assert component["metadata"]["annotations"]["backstage.io/managed-by-location"] == (
        "url:https://github.com/acme/payments/tree/main/catalog-info.yaml"
    )
    events = services.broker.store.list_events(root.name)
    skipped = {e.body.get("stepId") for e in events if e.body.get("status") == "skipped"}
    assert "publish" in skipped
    assert "publish-github" not in skipped
    assert events[-1].body["output"]["links"] == [
        {"title": "Repository", "url": github.bare("acme", "payments").as_uri()},
        {"title": "Open in catalog", "icon": "catalog", "entityRef": ref},
    ]


# --- (c) the quality gate, (d) the repository's own tests ---------------------------------


@pytest.fixture(scope="module")
def checked(rendered: Any) -> Any:
    """``checked(template, case)``: (gate findings, pytest result) of the rendered repository.

    The first call renders every case (cookiecutter changes the working directory, so one at
    a time), then runs the gate and the generated tests of all cases at once: they are child
    processes (cfn-lint dominates), and running them side by side halves the wall time.
    """
    results: dict[tuple[str, str], tuple[list[str], subprocess.CompletedProcess[str]]] = {}

    def check(name: str, case: str) -> tuple[list[str], subprocess.CompletedProcess[str]]:
        if not results:
            roots = {(n, c): rendered(n, c) for n in TEMPLATES for c in CASES}
            with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
                gates = {key: pool.submit(quality_gate, root) for key, root in roots.items()}
                tests = {key: pool.submit(run_generated_tests, root) for key, root in roots.items()}
                results.update({key: (gates[key].result(), tests[key].result()) for key in roots})
        return results[name, case]

    return check


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name", TEMPLATES)
def test_quality_gate_is_clean(name: str, case: str, checked: Any) -> None:
    findings, _ = checked(name, case)
    assert not findings, f"{name}/{case}:\n" + "\n".join(findings)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name", TEMPLATES)
def test_generated_tests_pass(name: str, case: str, checked: Any) -> None:
    _, result = checked(name, case)
    assert result.returncode == 0, f"{name}/{case}:\n{result.stdout}\n{result.stderr}"


def run_generated_tests(root: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHON"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def quality_gate(root: Path) -> list[str]:
    """Findings of `scaffolder lint` on ``root``; the tools themselves if the gate is absent."""
    try:
        from scaffolder.lint import LintOptions, run_lint
    except ImportError:
        return run_tools(root)
    report = run_lint(root, LintOptions(render=False))
    return [finding.to_text() for finding in report.findings]


def run_tools(root: Path) -> list[str]:
    bin_dir = Path(sys.executable).parent

    def tool(name: str) -> str:
        found = shutil.which(name, path=str(bin_dir)) or shutil.which(name)
        assert found, f"{name} is not installed"
        return found

    yamllint_config = root / ".yamllint.yaml"
    commands = [
        [tool("cfn-lint"), *map(str, sorted((root / "infra").rglob("*.yaml")))],
        [tool("hadolint"), str(root / "Dockerfile")],
        [
            tool("yamllint"),
            "-s",
            *(["-c", str(yamllint_config)] if yamllint_config.is_file() else []),
            ".",
        ],
        [tool("zizmor"), "--offline", str(root / ".github" / "workflows")],
    ]
    findings = []
    for command in commands:
        result = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            findings.append(f"{Path(command[0]).name}: {result.stdout}{result.stderr}")
    return findings


def test_every_bundled_template_is_covered() -> None:
    assert TEMPLATES, "no cookiecutters/*/template.yaml found"
    assert {"ecs-web-service", "ecs-worker-service"} <= set(TEMPLATES)
