"""scaffolder.templateAccess: per-template allow-lists on create, retry and dry-run."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from flask.testing import FlaskClient

from scaffolder.access import TemplateAccess
from scaffolder.errors import InputError, NotAllowedError
from scaffolder.tasks.service import Caller
from scaffolder.tasks.store import TaskFilter
from tests.auth.conftest import STATIC_TOKEN, bearer, services_of
from tests.conftest import FIXTURE_TEMPLATES, HELLO_VALUES, wait_for_status

SCAFFOLDER = "/api/scaffolder"
HELLO = {"templateRef": "template:default/hello-template", "values": HELLO_VALUES}
RESTRICTED = {
    "scaffolder": {
        "templateAccess": {
            "templates": {
                # Short refs are normalised: kind template, namespace default, any case.
                "Hello-Template": ["group:default/platform"],
                "template:default/cookie-template": ["ci-bot", "user:jane"],
            },
            "dryRun": ["group:platform"],
        }
    }
}
DENIED = {"name": "NotAllowedError", "message": ""}


def test_group_membership_from_the_ent_claim_allows(
    auth_app: Callable[..., FlaskClient], sign: Callable[..., str]
) -> None:
    client = auth_app(RESTRICTED)
    member = sign()  # ent: [user:default/jane, group:default/platform]
    assert client.post(
        f"{SCAFFOLDER}/v2/tasks", json=HELLO, headers=bearer(member)
    ).status_code == (201)
    outsider = sign(sub="user:default/bob", ent=["user:default/bob", "group:default/web"])
    res = client.post(f"{SCAFFOLDER}/v2/tasks", json=HELLO, headers=bearer(outsider))
    assert res.status_code == 403
    assert res.json == {
        "error": DENIED,
        "request": {"method": "POST", "url": "/v2/tasks"},
        "response": {"statusCode": 403},
    }
    # The static token's subject is not on hello-template's list.
    res = client.post(f"{SCAFFOLDER}/v2/tasks", json=HELLO, headers=bearer(STATIC_TOKEN))
    assert res.status_code == 403
    # An unlisted template stays open to everyone authenticated.
    slow = {"templateRef": "template:default/slow-template", "values": {"seconds": 0}}
    assert client.post(
        f"{SCAFFOLDER}/v2/tasks", json=slow, headers=bearer(outsider)
    ).status_code == (201)


def test_a_refusal_comes_before_validation_and_writes_nothing(
    auth_app: Callable[..., FlaskClient], sign: Callable[..., str]
) -> None:
    client = auth_app(RESTRICTED)
    outsider = sign(sub="user:default/bob", ent=["user:default/bob"])
    res = client.post(
        f"{SCAFFOLDER}/v2/tasks",
        json={"templateRef": "template:default/hello-template", "values": {}},
        headers=bearer(outsider),
    )
    assert res.status_code == 403
    assert services_of(client).broker.store.list_tasks(TaskFilter()) == ([], 0)


def test_service_subjects_and_user_refs_are_listed_principals(
    auth_app: Callable[..., FlaskClient], sign: Callable[..., str]
) -> None:
    client = auth_app(RESTRICTED)
    cookie = {
        "templateRef": "template:default/cookie-template",
        "values": {"name": "svc", "description": "d"},
    }
    res = client.post(f"{SCAFFOLDER}/v2/tasks", json=cookie, headers=bearer(STATIC_TOKEN))
    assert res.status_code == 201, res.json
    jane_without_groups = sign(ent=None)
    res = client.post(f"{SCAFFOLDER}/v2/tasks", json=cookie, headers=bearer(jane_without_groups))
    assert res.status_code == 201, res.json


def test_retry_is_checked_against_the_template(
    auth_app: Callable[..., FlaskClient], sign: Callable[..., str]
) -> None:
    client = auth_app(RESTRICTED)
    member = sign()
    task_id = client.post(f"{SCAFFOLDER}/v2/tasks", json=HELLO, headers=bearer(member)).json["id"]
    assert wait_for_status(services_of(client), task_id) == "completed"
    outsider = sign(sub="user:default/bob", ent=["user:default/bob"])
    res = client.post(f"{SCAFFOLDER}/v2/tasks/{task_id}/retry", json={}, headers=bearer(outsider))
    assert res.status_code == 403
    assert res.json["error"] == DENIED
    res = client.post(f"{SCAFFOLDER}/v2/tasks/{task_id}/retry", json={}, headers=bearer(member))
    assert res.status_code == 201


def _dry_run_body(name: str) -> dict[str, Any]:
    template = yaml.safe_load((FIXTURE_TEMPLATES / "hello-template/template.yaml").read_text())
    template["metadata"]["name"] = name
    skeleton = FIXTURE_TEMPLATES / "hello-template"
    contents = [
        {
            "path": str(p.relative_to(skeleton)),
            "base64Content": base64.b64encode(p.read_bytes()).decode(),
        }
        for p in sorted(skeleton.rglob("*"))
        if p.is_file()
    ]
    return {"template": template, "values": HELLO_VALUES, "directoryContents": contents}


def test_dry_run_has_its_own_list_and_the_named_templates(
    auth_app: Callable[..., FlaskClient], sign: Callable[..., str]
) -> None:
    client = auth_app(RESTRICTED)
    member = sign()
    res = client.post(
        f"{SCAFFOLDER}/v2/dry-run", json=_dry_run_body("something-new"), headers=bearer(member)
    )
    assert res.status_code == 200, res.json
    res = client.post(
        f"{SCAFFOLDER}/v2/dry-run",
        json=_dry_run_body("something-new"),
        headers=bearer(STATIC_TOKEN),
    )
    assert res.status_code == 403
    assert res.json["error"] == DENIED
    # Someone on dryRun but not on the template's own list cannot dry-run it by name.
    open_dry_run = {
        "scaffolder": {"templateAccess": {"templates": {"hello-template": ["user:default/alice"]}}}
    }
    client = auth_app(open_dry_run)
    res = client.post(
        f"{SCAFFOLDER}/v2/dry-run", json=_dry_run_body("hello-template"), headers=bearer(member)
    )
    assert res.status_code == 403


def test_the_none_principal_is_never_listed_but_local_commands_are_trusted() -> None:
    access = TemplateAccess.from_config(RESTRICTED)
    with pytest.raises(NotAllowedError):
        access.check_template("template:default/hello-template", Caller())
    access.check_template("template:default/hello-template", Caller(local=True))
    access.check_template("template:default/slow-template", Caller())
    access.check_template(
        "template:default/hello-template",
        Caller(user_ref="user:default/x", ownership_refs=("GROUP:default/Platform",)),
    )


def test_bad_template_access_config_is_refused() -> None:
    with pytest.raises(InputError):
        TemplateAccess.from_config({"scaffolder": {"templateAccess": {"templates": {"a": "b"}}}})
    with pytest.raises(InputError):
        TemplateAccess.from_config({"scaffolder": {"templateAccess": {"dryRun": [""]}}})
    with pytest.raises(InputError):
        TemplateAccess.from_config({"scaffolder": {"templateAccess": ["x"]}})
