"""The Actions Registry protocol over HTTP: shapes, auth, v1 and v2 invoke, errors.

What a Backstage backend's ``DefaultActionsService`` sends and expects (upstream's
``DefaultActionsRegistryService``): checked here with a real plugin JWT signed by a key that a
JWKS on loopback publishes, as a Backstage backend publishes it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from flask.testing import FlaskClient

from tests.actions_registry.conftest import (
    ACTIONS,
    JANE,
    STATIC_TOKEN,
    Backstage,
    bearer,
    error_of,
    plugin_jwks,
    services_of,
)
from tests.conftest import wait_for_status

INVOKE = f"{ACTIONS}/v1/actions/ecs%3Aexecute-template/invoke"
HELLO = {"templateRef": "template:default/hello-template", "values": {"name": "svc-one"}}
NAMES = [
    "list-templates",
    "execute-template",
    "get-task-logs",
    "dry-run-template",
    "create-ecs-service",
]


def test_list_has_upstreams_shape_for_every_action(
    registry_app: Callable[..., FlaskClient], plugin_token: Callable[..., str]
) -> None:
    client = registry_app()
    res = client.get(f"{ACTIONS}/v1/actions", headers=bearer(plugin_token()))
    assert res.status_code == 200
    actions = res.json["actions"]
    assert [a["id"] for a in actions] == [f"ecs:{name}" for name in NAMES]
    for action in actions:
        assert list(action) == [
            "id",
            "name",
            "title",
            "description",
            "pluginId",
            "attributes",
            "examples",
            "schema",
        ]
        assert action["pluginId"] == "ecs"
        assert action["id"] == f"ecs:{action['name']}"
        assert list(action["attributes"]) == ["destructive", "idempotent", "readOnly"]
        for key in ("input", "output"):
            schema = action["schema"][key]
            assert schema["type"] == "object"
            assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
        assert action["examples"], action["id"]
        for example in action["examples"]:
            assert set(example) <= {"title", "description", "input", "output"}
    by_id = {a["id"]: a for a in actions}
    # Read-only ones are what Backstage's scaffolder also runs in dry runs.
    read_only = {i for i, a in by_id.items() if a["attributes"]["readOnly"]}
    assert read_only == {"ecs:list-templates", "ecs:get-task-logs", "ecs:dry-run-template"}
    assert by_id["ecs:execute-template"]["attributes"] == {
        "destructive": True,
        "idempotent": False,
        "readOnly": False,
    }
    assert by_id["ecs:create-ecs-service"]["attributes"]["readOnly"] is False
    assert "secrets" in by_id["ecs:execute-template"]["schema"]
    assert "secrets" not in by_id["ecs:get-task-logs"]["schema"]
    assert by_id["ecs:execute-template"]["schema"]["input"]["required"] == [
        "templateRef",
        "values",
    ]


def test_v1_invoke_takes_the_raw_input_and_answers_output(
    registry_app: Callable[..., FlaskClient], plugin_token: Callable[..., str]
) -> None:
    client = registry_app()
    res = client.post(INVOKE, json={**HELLO, "wait": True}, headers=bearer(plugin_token()))
    assert res.status_code == 200, res.json
    output = res.json["output"]
    assert list(res.json) == ["output"]
    assert output["status"] == "completed"
    assert output["links"] == [{"title": "Fake repo", "url": "http://127.0.0.1/repos/svc-one"}]
    assert output["text"] == [{"title": "Done", "content": "Created svc-one"}]
    task = services_of(client).broker.store.get_task(output["taskId"])
    assert task.spec["parameters"]["name"] == "svc-one"
    assert task.created_by is None  # a plugin acting for no user: a service principal


def test_v2_invoke_takes_input_and_secrets(
    registry_app: Callable[..., FlaskClient], plugin_token: Callable[..., str]
) -> None:
    client = registry_app({"scaffolder": {"concurrentTasksLimit": 0}})
    res = client.post(
        f"{ACTIONS}/v2/actions/ecs:execute-template/invoke",
        json={"input": HELLO, "secrets": {"apiKey": "s3cret"}},
        headers=bearer(plugin_token()),
    )
    assert res.status_code == 200, res.json
    task_id = res.json["output"]["taskId"]
    assert res.json["output"] == {"taskId": task_id}
    claimed = services_of(client).broker.store.claim_task(keep_secrets=True)
    assert claimed is not None
    assert claimed.id == task_id
    # The plugin token is not kept as the task's backstageToken: its audience is us.
    assert claimed.secrets == {"apiKey": "s3cret"}


def test_secrets_rules(
    registry_app: Callable[..., FlaskClient], plugin_token: Callable[..., str]
) -> None:
    client = registry_app()
    headers = bearer(plugin_token())
    res = client.post(
        f"{ACTIONS}/v2/actions/ecs:get-task-logs/invoke",
        json={"input": {"taskId": "x"}, "secrets": {"a": "b"}},
        headers=headers,
    )
    assert error_of(res) == (
        400,
        "InputError",
        'Action "ecs:get-task-logs" does not accept secrets',
    )
    res = client.post(
        f"{ACTIONS}/v2/actions/ecs:execute-template/invoke",
        json={"input": HELLO, "secrets": {"a": 1}},
        headers=headers,
    )
    status, name, message = error_of(res)
    assert (status, name) == (400, "InputError")
    assert message.startswith('Invalid secrets for action "ecs:execute-template"; caused by ')
    assert "instance.a is not of a type(s) string" in message


def test_bad_input_is_400_with_the_schema_messages(
    registry_app: Callable[..., FlaskClient], plugin_token: Callable[..., str]
) -> None:
    client = registry_app()
    headers = bearer(plugin_token())
    res = client.post(INVOKE, json={"templateRef": 5}, headers=headers)
    assert res.status_code == 400
    error = res.json["error"]
    assert error["name"] == "InputError"
    assert error["message"].startswith('Invalid input to action "ecs:execute-template"; caused by')
    assert "instance.templateRef is not of a type(s) string" in error["message"]
    assert 'instance requires property "values"' in error["message"]
    assert error["cause"]["name"] == "ValidationError"
    assert res.json["request"] == {
        "method": "POST",
        "url": "/.backstage/actions/v1/actions/ecs:execute-template/invoke",
    }
    assert res.json["response"] == {"statusCode": 400}
    # An empty body is {} (as Express parses it): the required keys speak.
    res = client.post(INVOKE, headers=headers)
    assert 'instance requires property "templateRef"' in error_of(res)[2]
    res = client.post(INVOKE, json=[1], headers=headers)
    assert "instance is not of a type(s) object" in error_of(res)[2]
    res = client.post(INVOKE, json={**HELLO, "extra": 1}, headers=headers)
    assert "additionalProperty" in error_of(res)[2] or "extra" in error_of(res)[2]
    res = client.post(INVOKE, data="{bad", content_type="application/json", headers=headers)
    assert error_of(res)[0] == 400
    # v2 without an input is not {}.
    res = client.post(f"{ACTIONS}/v2/actions/ecs:list-templates/invoke", json={}, headers=headers)
    assert error_of(res)[:2] == (400, "InputError")


def test_unknown_action_is_404(
    registry_app: Callable[..., FlaskClient], plugin_token: Callable[..., str]
) -> None:
    client = registry_app()
    for version in ("v1", "v2"):
        res = client.post(
            f"{ACTIONS}/{version}/actions/ecs%3Anope/invoke",
            json={"input": {}},
            headers=bearer(plugin_token()),
        )
        assert error_of(res) == (404, "NotFoundError", 'Action "ecs:nope" not found')
    # Another plugin's prefix is not ours either.
    res = client.post(
        f"{ACTIONS}/v1/actions/catalog:get-catalog-entity/invoke",
        json={},
        headers=bearer(plugin_token()),
    )
    assert error_of(res)[0] == 404


def test_template_failures_are_action_errors(
    registry_app: Callable[..., FlaskClient], plugin_token: Callable[..., str]
) -> None:
    client = registry_app()
    headers = bearer(plugin_token())
    res = client.post(
        INVOKE,
        json={"templateRef": "template:default/hello-template", "values": {"name": "X"}},
        headers=headers,
    )
    status, name, message = error_of(res)
    assert (status, name) == (400, "InputError")
    assert message.startswith("Invalid values for template:default/hello-template: ")
    assert "instance.name does not match pattern" in message
    res = client.post(
        INVOKE, json={"templateRef": "template:default/nope", "values": {}}, headers=headers
    )
    assert error_of(res) == (404, "NotFoundError", "Template template:default/nope not found")


# --- auth --------------------------------------------------------------------------------


def test_plugin_token_with_obo_acts_for_the_user(
    registry_app: Callable[..., FlaskClient],
    plugin_token: Callable[..., str],
    limited_user_token: Callable[..., str],
) -> None:
    client = registry_app()
    token = plugin_token(obo=limited_user_token())
    res = client.post(INVOKE, json=HELLO, headers=bearer(token))
    assert res.status_code == 200, res.json
    task_id = res.json["output"]["taskId"]
    assert services_of(client).broker.store.get_task(task_id).created_by == JANE
    wait_for_status(services_of(client), task_id)
    # Status is for services only, as upstream: a user (through its plugin) is refused.
    res = client.get(f"{ACTIONS}/v1/status", headers=bearer(token))
    assert error_of(res) == (
        403,
        "NotAllowedError",
        "This endpoint does not allow 'user' credentials",
    )
    bad_obo = plugin_token(obo="not-a-token")
    res = client.post(INVOKE, json=HELLO, headers=bearer(bad_obo))
    assert error_of(res) == (
        401,
        "AuthenticationError",
        "Invalid user token in plugin token obo claim",
    )


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"aud": "scaffolder"}, "Failed plugin token verification"),  # meant for another plugin
        ({"exp": 1}, "Failed plugin token verification"),
        ({"iat": None}, "Failed plugin token verification"),
        ({"sub": None}, "Invalid plugin token: missing subject"),
        ({"sub": "../auth"}, "Invalid plugin token: forbidden subject format"),
    ],
)
def test_plugin_tokens_upstream_refuses_are_refused(
    registry_app: Callable[..., FlaskClient],
    plugin_token: Callable[..., str],
    claims: dict[str, object],
    message: str,
) -> None:
    client = registry_app()
    res = client.get(f"{ACTIONS}/v1/actions", headers=bearer(plugin_token(**claims)))
    assert error_of(res) == (401, "AuthenticationError", message)


def test_a_plugin_token_is_verified_with_its_plugins_keys(
    registry_app: Callable[..., FlaskClient],
    plugin_token: Callable[..., str],
    backstage: Backstage,
) -> None:
    client = registry_app()
    forged = plugin_token(key=ec.generate_private_key(ec.SECP256R1()))
    res = client.get(f"{ACTIONS}/v1/actions", headers=bearer(forged))
    assert error_of(res) == (401, "AuthenticationError", "Failed plugin token verification")
    # A plugin that publishes no keys: upstream's message.
    res = client.get(f"{ACTIONS}/v1/actions", headers=bearer(plugin_token(sub="catalog")))
    status, _, message = error_of(res)
    assert status == 401
    assert message.startswith(
        "Received a plugin token where the source 'catalog' plugin unexpectedly does not "
        "have a JWKS endpoint."
    )
    # The scaffolder plugin's key set was read once and cached.
    good = plugin_token()
    for _ in range(3):
        assert client.get(f"{ACTIONS}/v1/actions", headers=bearer(good)).status_code == 200
    assert backstage.hits.count(plugin_jwks("scaffolder")) == 1


def test_plugin_tokens_for_our_other_plugins(
    registry_app: Callable[..., FlaskClient], plugin_token: Callable[..., str]
) -> None:
    # A Backstage backend plugin may call our scaffolder API with a plugin token too.
    client = registry_app()
    res = client.get("/api/scaffolder/v2/tasks", headers=bearer(plugin_token(aud="scaffolder")))
    assert res.status_code == 200
    res = client.get("/api/scaffolder/v2/tasks", headers=bearer(plugin_token()))
    assert error_of(res) == (401, "AuthenticationError", "Failed plugin token verification")


def test_static_tokens_and_no_token(registry_app: Callable[..., FlaskClient]) -> None:
    client = registry_app()
    res = client.get(f"{ACTIONS}/v1/status", headers=bearer(STATIC_TOKEN))
    assert res.status_code == 200
    assert res.json == {"hasActions": True}
    res = client.post(INVOKE, json=HELLO, headers=bearer(STATIC_TOKEN))
    assert res.status_code == 200
    for method, path in (
        ("GET", "/v1/actions"),
        ("GET", "/v1/status"),
        ("POST", "/v1/actions/ecs:list-templates/invoke"),
    ):
        res = client.open(f"{ACTIONS}{path}", method=method, json={})
        assert error_of(res) == (401, "AuthenticationError", "Missing credentials")
    res = client.get(f"{ACTIONS}/v1/actions", headers=bearer("nope-nope-nope"))
    assert error_of(res) == (401, "AuthenticationError", "Illegal token")


def test_static_token_restricted_to_another_plugin_is_403(
    registry_app: Callable[..., FlaskClient],
) -> None:
    client = registry_app(
        static_tokens=[
            {
                "type": "static",
                "options": {"token": STATIC_TOKEN, "subject": "ci-bot"},
                "accessRestrictions": [{"plugin": "scaffolder"}],
            }
        ]
    )
    res = client.get(f"{ACTIONS}/v1/actions", headers=bearer(STATIC_TOKEN))
    assert error_of(res) == (
        403,
        "NotAllowedError",
        "This token's access is restricted to plugin(s) 'scaffolder'",
    )


def test_with_auth_off_the_none_principal_may_invoke(
    registry_app: Callable[..., FlaskClient],
) -> None:
    # A Backstage without auth sends an empty plugin token: "Bearer " and nothing else.
    client = registry_app(auth=False)
    res = client.post(INVOKE, json=HELLO, headers={"Authorization": "Bearer "})
    assert res.status_code == 200, res.json
    assert client.get(f"{ACTIONS}/v1/actions").status_code == 200
    # Status stays for services only, as upstream (none is refused even without auth).
    assert error_of(client.get(f"{ACTIONS}/v1/status"))[:2] == (401, "AuthenticationError")


def test_the_plugin_id_comes_from_config(
    registry_app: Callable[..., FlaskClient], plugin_token: Callable[..., str]
) -> None:
    client = registry_app({"scaffolder": {"actionsRegistry": {"pluginId": "platform"}}})
    res = client.get(
        "/api/platform/.backstage/actions/v1/actions",
        headers=bearer(plugin_token(aud="platform")),
    )
    assert res.status_code == 200
    assert res.json["actions"][0]["id"] == "platform:list-templates"
    assert {a["pluginId"] for a in res.json["actions"]} == {"platform"}
    assert client.get(f"{ACTIONS}/v1/actions", headers=bearer(STATIC_TOKEN)).status_code == 404
    # A token meant for `ecs` is not one for `platform`.
    res = client.get("/api/platform/.backstage/actions/v1/actions", headers=bearer(plugin_token()))
    assert error_of(res)[0] == 401


def test_a_bad_plugin_id_is_refused(registry_app: Callable[..., FlaskClient]) -> None:
    from scaffolder.errors import InputError

    with pytest.raises(InputError, match=r"scaffolder\.actionsRegistry\.pluginId"):
        registry_app({"scaffolder": {"actionsRegistry": {"pluginId": "a/b"}}})
