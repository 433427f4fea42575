from __future__ import annotations

import json
from pathlib import Path

from scaffolder.actions.builtin import create_builtin_actions
from scaffolder.tasks.templating import Templater

TRACE_01 = Path(__file__).resolve().parents[1] / "fixtures" / "traces" / "01-get-actions.http"

DRY_RUN = {
    "catalog:write",
    "debug:log",
    "fetch:plain",
    "fetch:plain:file",
    "fetch:template",
    "fetch:template:file",
    "fs:delete",
    "fs:readdir",
    "fs:rename",
}


#: Ours, registered whether or not AWS is configured (unconfigured, they skip themselves).
AWS = (
    "aws:ecr:create",
    "aws:iam:github-oidc-role",
    "aws:cloudformation:deploy",
    "aws:ssm:put-parameter",
    "aws:secretsmanager:create-secret",
    "aws:codepipeline:create",
)


def test_ids_in_backstage_registration_order() -> None:
    actions = create_builtin_actions(templater=Templater())

    assert [a.id for a in actions] == [
        "fetch:plain",
        "fetch:plain:file",
        "fetch:template",
        "fetch:template:file",
        "debug:log",
        "debug:wait",
        "catalog:write",
        "fs:delete",
        "fs:rename",
        "fs:readdir",
        "quality:lint",
        *AWS,
    ]
    assert {a.id for a in actions if a.supports_dry_run} == DRY_RUN | {"quality:lint", *AWS}


def test_every_input_schema_refuses_unknown_keys() -> None:
    for action in create_builtin_actions(templater=Templater()):
        assert action.input_schema is not None
        assert action.input_schema["additionalProperties"] is False, action.id


def test_wire_shape_is_backstages() -> None:
    text = TRACE_01.read_text()
    upstream = {a["id"]: a for a in json.loads(text[text.index("\n[\n") + 1 :])}

    ours_only = {"quality:lint", *AWS}
    for action in create_builtin_actions(templater=Templater()):
        if action.id in ours_only:
            continue
        assert json.dumps(action.to_json()) == json.dumps(upstream[action.id]), action.id
