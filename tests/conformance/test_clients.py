"""Conformance: Backstage's own npm clients against a running scaffolder + catalog server.

Every call goes through ``@backstage/plugin-scaffolder-common@2.4.0``'s ``ScaffolderClient`` or
``@backstage/catalog-client@1.16.4``'s ``CatalogClient`` (``driver.js``), so a pass means the
real Backstage frontend code accepts the server's responses. The expectations are what the
upstream reference backend (scaffolder-backend 4.3.0) does; see CONTRACT.md §2-§4 and §8.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from .harness import FIXTURE_TEMPLATES, DriverResult, NodeDriver

pytestmark = pytest.mark.conformance

HELLO_REF = "template:default/hello-template"
SLOW_REF = "template:default/slow-template"
# The values of trace 05-post-task-hello.http.
HELLO_VALUES: dict[str, Any] = {
    "name": "svc-one",
    "description": "First service",
    "owner": "group:default/platform",
    "language": "python",
    "port": 8080,
}
HELLO_STEPS = [  # (id, name) of hello-template's steps, in order
    ("log-start", "Log start"),
    ("fetch", "Fetch skeleton"),
    ("write-catalog", "Write catalog-info.yaml"),
    ("log-done", "Log workspace"),
]
HELLO_OUTPUT = {
    "text": [{"title": "Done", "content": "Created svc-one"}],
    "links": [{"title": "Fake repo", "url": "http://127.0.0.1/repos/svc-one"}],
}
EVENT_KEYS = {"id", "isTaskRecoverable", "taskId", "body", "type", "createdAt"}
ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
FINAL_CANCEL_STATUSES = {"failed", "cancelled"}  # upstream: failed; ours: cancelled


def load_template(name: str) -> dict[str, Any]:
    data = yaml.safe_load((FIXTURE_TEMPLATES / name / "template.yaml").read_text())
    assert isinstance(data, dict)
    return data


def path_of(request: dict[str, Any]) -> str:
    parts = urlsplit(str(request["url"]))
    return parts.path + (f"?{parts.query}" if parts.query else "")


def messages(events: list[dict[str, Any]]) -> list[str]:
    return [str(e.get("body", {}).get("message")) for e in events]


def check_event_shapes(events: list[dict[str, Any]], task_id: str, ctx: DriverResult) -> None:
    for e in events:
        missing = EVENT_KEYS - set(e)
        assert not missing, f"event {e} lacks {missing}\n{ctx.describe()}"
        assert e["taskId"] == task_id, f"event of another task: {e}"
        assert e["isTaskRecoverable"] is False, e
        assert e["type"] in {"log", "completion", "cancelled", "recovered"}, e
        assert isinstance(e["id"], int), f"event id must be a JSON number: {e}"
        assert ISO_RE.match(str(e["createdAt"])), f"createdAt not ISO-8601 UTC: {e}"
        assert isinstance(e["body"], dict), e
    ids = [e["id"] for e in events]
    assert ids == sorted(ids), f"ids not increasing: {ids}"
    assert len(set(ids)) == len(ids), f"duplicate ids: {ids}"


def check_hello_run(events: list[dict[str, Any]], task_id: str, ctx: DriverResult) -> None:
    """The event sequence of a successful hello-template run (CONTRACT §3.4)."""
    check_event_shapes(events, task_id, ctx)
    assert events, f"no events\n{ctx.describe()}"
    assert events[0]["type"] == "log"
    assert events[0]["body"] == {"message": "Starting up task with 4 steps"}, events[0]
    # Status changes, in order: Beginning (processing) then Finished (completed) for each step.
    transitions = [
        (e["body"].get("stepId"), e["body"].get("status"), e["body"].get("message"))
        for e in events
        if e["type"] == "log" and "status" in e["body"]
    ]
    expected = []
    for step_id, name in HELLO_STEPS:
        expected.append((step_id, "processing", f"Beginning step {name}"))
        expected.append((step_id, "completed", f"Finished step {name}"))
    assert transitions == expected, f"step transitions differ:\n{transitions}"
    # Every action log line belongs to the step that is running when it is written.
    current = None
    for e in events[1:-1]:
        body = e["body"]
        if body.get("status") == "processing":
            current = body.get("stepId")
        assert body.get("stepId") == current, f"log line outside its step: {e}"
    completions = [e for e in events if e["type"] == "completion"]
    assert len(completions) == 1, f"expected exactly one completion, got {completions}"
    last = events[-1]
    assert last["type"] == "completion", f"last event is not the completion: {last}"
    assert last["body"]["message"] == "Run completed with status: completed", last
    assert last["body"].get("output") == HELLO_OUTPUT, last
    assert "error" not in last["body"], last


# --------------------------------------------------------------------------------------------
# Session-wide tasks (created once, shared by several tests)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def hello_task(driver: NodeDriver) -> str:
    run = driver.run("scaffold", {"templateRef": HELLO_REF, "values": HELLO_VALUES})
    result = run.value()
    assert set(result) == {"taskId"}, run.describe()
    task_id = result["taskId"]
    assert isinstance(task_id, str), run.describe()
    assert UUID_RE.match(task_id), run.describe()
    (post,) = run.requests
    assert (post["method"], path_of(post), post["status"]) == (
        "POST",
        "/api/scaffolder/v2/tasks",
        201,
    )
    return str(task_id)


@pytest.fixture(scope="session")
def hello_sse(driver: NodeDriver, hello_task: str) -> DriverResult:
    return driver.run("stream", {"taskId": hello_task}, timeout_s=60)


# --------------------------------------------------------------------------------------------
# ScaffolderClient
# --------------------------------------------------------------------------------------------


def test_get_template_parameter_schema(driver: NodeDriver) -> None:
    run = driver.run("parameter-schema", {"templateRef": HELLO_REF})
    schema = run.value()
    (req,) = run.requests
    assert (
        path_of(req)
        == "/api/scaffolder/v2/templates/default/template/hello-template/parameter-schema"
    )
    template = load_template("hello-template")
    assert schema["title"] == template["metadata"]["title"]
    assert schema["description"] == template["metadata"]["description"]
    assert schema["steps"] == [
        {"title": p["title"], "schema": p} for p in template["spec"]["parameters"]
    ], run.describe()
    assert set(schema) <= {
        "title",
        "description",
        "steps",
        "presentation",
        "ui:options",
        "formDecorators",
    }


def test_list_actions(driver: NodeDriver) -> None:
    run = driver.run("actions")
    actions = run.value()
    assert isinstance(actions, list), run.describe()
    ids = [a["id"] for a in actions]
    assert {"fetch:template", "debug:log"} <= set(ids), ids
    assert ids == sorted(ids), f"actions are not sorted by id: {ids}"
    by_id = {a["id"]: a for a in actions}
    log = by_id["debug:log"]
    assert (
        log["description"]
        == "Writes a message into the log and/or lists all files in the workspace."
    )
    assert isinstance(log["examples"], list), log
    assert log["examples"], log
    assert all(set(x) == {"description", "example"} for x in log["examples"]), log["examples"]
    inp = log["schema"]["input"]
    assert inp["type"] == "object", inp
    assert set(inp["properties"]) == {"message", "listWorkspace"}, inp
    assert inp["additionalProperties"] is False, inp
    assert "output" not in log["schema"], "debug:log has no output schema upstream"
    fetch = by_id["fetch:template"]["schema"]
    assert "url" in fetch["input"]["properties"], fetch
    assert "url" in fetch["input"]["required"], fetch


def test_list_templating_extensions(driver: NodeDriver) -> None:
    run = driver.run("templating-extensions")
    ext = run.value()
    filters = ext["filters"]
    assert {"parseRepoUrl", "parseEntityRef", "pick", "projectSlug"} <= set(filters), filters
    for name in ("parseRepoUrl", "parseEntityRef", "pick", "projectSlug"):
        meta = filters[name]
        assert isinstance(meta.get("description"), str), (name, meta)
        assert meta["description"], (name, meta)
        assert isinstance(meta.get("schema", {}).get("input"), dict), (name, meta)
    assert set(ext["globals"]) == {"functions", "values"}, ext["globals"]


def test_scaffold_returns_task_id(hello_task: str) -> None:
    assert UUID_RE.match(hello_task)


def test_stream_logs_sse(hello_sse: DriverResult, hello_task: str) -> None:
    stream = hello_sse.value()
    assert stream["error"] is None, f"SSE stream errored:\n{hello_sse.describe()}"
    assert stream["completed"] is True, hello_sse.describe()
    check_hello_run(stream["events"], hello_task, hello_sse)
    (req,) = hello_sse.requests
    assert path_of(req) == f"/api/scaffolder/v2/tasks/{hello_task}/eventstream", req
    assert req["status"] == 200, req
    assert str(req["contentType"]).startswith("text/event-stream"), req


def test_stream_logs_long_polling(
    driver: NodeDriver, hello_task: str, hello_sse: DriverResult
) -> None:
    run = driver.run("stream", {"taskId": hello_task, "polling": True}, timeout_s=60)
    stream = run.value()
    assert stream["error"] is None, run.describe()
    assert stream["completed"] is True, run.describe()
    check_hello_run(stream["events"], hello_task, run)
    for req in run.requests:
        assert path_of(req).startswith(f"/api/scaffolder/v2/tasks/{hello_task}/events"), req
        assert req["status"] == 200, f"polling got a non-200 (the client retries forever): {req}"
    # Both transports deliver the very same events (the task had completed before either read).
    sse_events = hello_sse.value()["events"]
    assert stream["events"] == sse_events, "long-polling and SSE delivered different events"


def test_stream_logs_long_polling_live(driver: NodeDriver) -> None:
    """Long-polling a running task: the server holds ``/events?after=N`` until new events exist."""
    run = driver.run(
        "run",
        {"templateRef": SLOW_REF, "values": {"seconds": 2}, "polling": True},
        timeout_s=60,
    )
    out = run.value()
    stream = out["stream"]
    assert stream["error"] is None, run.describe()
    assert stream["completed"] is True, run.describe()
    events = stream["events"]
    check_event_shapes(events, out["taskId"], run)
    assert events[0]["body"] == {"message": "Starting up task with 3 steps"}, events[0]
    assert events[-1]["type"] == "completion", events[-1]
    assert events[-1]["body"]["message"] == "Run completed with status: completed", events[-1]
    assert out["task"]["status"] == "completed", run.describe()
    polls = [r for r in run.requests if "/events" in r["url"]]
    assert all(r["status"] == 200 for r in polls), run.describe()
    assert any("after=" in r["url"] for r in polls), run.describe()
    # A 2 s wait must be bridged by held requests, not by a busy loop of empty answers.
    assert len(polls) <= 10, f"{len(polls)} polls for a 2 s task:\n{run.describe()}"


def test_stream_logs_sse_after(
    driver: NodeDriver, hello_task: str, hello_sse: DriverResult
) -> None:
    """``streamLogs({after})`` replays only later events, and the completion closes the stream."""
    events = hello_sse.value()["events"]
    cut = events[len(events) // 2]["id"]
    run = driver.run("stream", {"taskId": hello_task, "after": cut}, timeout_s=60)
    stream = run.value()
    assert stream["error"] is None, run.describe()
    assert stream["completed"] is True, run.describe()
    assert stream["events"] == [e for e in events if e["id"] > cut], run.describe()
    (req,) = run.requests
    assert path_of(req) == f"/api/scaffolder/v2/tasks/{hello_task}/eventstream?after={cut}"


def test_get_task(driver: NodeDriver, hello_task: str, hello_sse: DriverResult) -> None:
    hello_sse.value()  # the run has finished
    run = driver.run("get-task", {"taskId": hello_task})
    task = run.value()
    assert task["id"] == hello_task
    assert task["status"] == "completed", run.describe()
    assert ISO_RE.match(task["createdAt"]), task["createdAt"]
    assert task["lastHeartbeatAt"] is None or ISO_RE.match(task["lastHeartbeatAt"])
    assert not {"secrets", "state"} & set(task), f"task leaks internal data: {sorted(task)}"
    assert (
        "createdBy" not in task or task["createdBy"] is None or isinstance(task["createdBy"], str)
    )
    spec = task["spec"]
    assert spec["apiVersion"] == "scaffolder.backstage.io/v1beta3"
    assert [(s["id"], s["name"]) for s in spec["steps"]] == HELLO_STEPS
    template = load_template("hello-template")
    assert spec["steps"] == template["spec"]["steps"], "spec.steps must be the unrendered steps"
    assert spec["parameters"] == HELLO_VALUES
    assert spec["output"] == template["spec"]["output"], "spec.output must be stored unrendered"
    assert spec["templateInfo"]["entityRef"] == HELLO_REF
    assert spec["templateInfo"]["entity"]["metadata"]["name"] == "hello-template"
    assert str(spec["templateInfo"]["baseUrl"]).startswith("file://"), spec["templateInfo"]


def test_list_tasks(driver: NodeDriver, hello_task: str) -> None:
    run = driver.run("list-tasks", {"filterByOwnership": "all", "limit": 100, "offset": 0})
    page = run.value()
    assert set(page) == {"tasks", "totalTasks"}, run.describe()
    (req,) = run.requests
    assert path_of(req) == "/api/scaffolder/v2/tasks?limit=100&offset=0", req
    assert isinstance(page["totalTasks"], int), page["totalTasks"]
    assert page["totalTasks"] >= 1, page["totalTasks"]
    assert len(page["tasks"]) == min(100, page["totalTasks"]), run.describe()
    assert hello_task in [t["id"] for t in page["tasks"]], "our task is missing from the list"
    for t in page["tasks"]:
        assert {"id", "spec", "status", "createdAt"} <= set(t), t
        assert not {"secrets", "state"} & set(t), sorted(t)
    created = [t["createdAt"] for t in page["tasks"]]
    assert created == sorted(created, reverse=True), "default order must be created_at desc"

    # limit / offset page through the same ordering.
    first = driver.run("list-tasks", {"filterByOwnership": "all", "limit": 1, "offset": 0}).value()
    second = driver.run("list-tasks", {"filterByOwnership": "all", "limit": 1, "offset": 1}).value()
    assert len(first["tasks"]) == 1, first
    assert first["totalTasks"] >= 1
    if first["totalTasks"] >= 2:
        assert len(second["tasks"]) == 1, second
        assert first["tasks"][0]["id"] != second["tasks"][0]["id"]


def test_list_tasks_owned(driver: NodeDriver) -> None:
    """``filterByOwnership: 'owned'`` sends ``createdBy=<user ref>`` (percent-encoded)."""
    run = driver.run("list-tasks", {"filterByOwnership": "owned", "limit": 5, "offset": 0})
    page = run.value()
    (req,) = run.requests
    assert path_of(req) == (
        "/api/scaffolder/v2/tasks?createdBy=user%3Adefault%2Fguest&limit=5&offset=0"
    ), req
    assert all(t.get("createdBy") == "user:default/guest" for t in page["tasks"]), page


@pytest.fixture(scope="session")
def cancel_run(driver: NodeDriver) -> DriverResult:
    """slow-template (30 s wait): retry while running, cancel once step `wait` starts, stream on."""
    return driver.run(
        "cancel-flow",
        {
            "templateRef": SLOW_REF,
            "values": {"seconds": 30},
            "cancelAtStepId": "wait",
            "retryWhileRunning": True,
        },
        timeout_s=60,
    )


def test_cancel_running_task(cancel_run: DriverResult, request: pytest.FixtureRequest) -> None:
    run = cancel_run
    out = run.value()
    task_id = out["taskId"]
    assert out["cancelSent"], f"never saw step `wait` start:\n{run.describe()}"
    assert out.get("cancelError") is None, run.describe()
    assert out["cancelResult"] == {"status": "cancelled"}, run.describe()
    stream = out["stream"]
    assert stream["error"] is None, f"stream did not end cleanly:\n{run.describe()}"
    assert stream["completed"] is True, run.describe()
    events = stream["events"]
    check_event_shapes(events, task_id, run)
    cancelled = [e for e in events if e["type"] == "cancelled"]
    assert len(cancelled) == 1, f"expected one `cancelled` event: {messages(events)}"
    assert cancelled[0]["body"] == {
        "message": "Step wait has been cancelled.",
        "stepId": "wait",
        "status": "cancelled",
    }, cancelled[0]
    last = events[-1]
    assert last["type"] == "completion", f"last event is not the completion: {last}"
    assert [e["type"] for e in events].count("completion") == 1
    assert "Beginning step After wait" not in messages(events), "ran a step after cancel"
    assert out["cancelToEndMs"] < 20_000, (
        f"the 30 s wait was not interrupted: {out['cancelToEndMs']} ms"
    )
    final = out["task"]["status"]
    # Reported, not asserted exactly: upstream ends a cancelled task `failed`, ours `cancelled`.
    # (user_properties rather than record_property: the latter warns under junit xunit2.)
    request.node.user_properties.append(("cancel_final_status", final))
    request.node.user_properties.append(("cancel_completion", last["body"]))
    print(f"cancel: final status {final!r}; completion body {last['body']}")
    assert final in FINAL_CANCEL_STATUSES, f"final status {final!r}"
    assert last["body"]["message"] == f"Run completed with status: {final}", last


def test_retry_running_task_conflicts(cancel_run: DriverResult) -> None:
    """``retry()`` on a task that is still running: 409 ConflictError (CONTRACT §2.9)."""
    out = cancel_run.value()
    assert out.get("retryWhileRunningResult") is None, (
        f"retry of a running task succeeded:\n{cancel_run.describe()}"
    )
    err = out["retryWhileRunningError"]
    assert err["name"] == "ResponseError", err
    assert err["statusCode"] == 409, err
    assert err["cause"] == {
        "name": "ConflictError",
        "message": f"Task with taskId {out['taskId']} cannot be retried",
    }, err


def test_retry_finished_task(driver: NodeDriver) -> None:
    values = {"name": "svc-retry", "owner": "group:default/platform"}
    run = driver.run("retry-flow", {"templateRef": HELLO_REF, "values": values}, timeout_s=90)
    out = run.value()
    task_id = out["taskId"]
    assert out["firstStream"]["completed"] is True, run.describe()
    assert out["taskBeforeRetry"]["status"] == "completed", run.describe()
    assert out.get("retryError") is None, run.describe()
    assert out["retryResult"] == {"id": task_id}, run.describe()
    retry_req = next(r for r in run.requests if r["method"] == "POST" and "/retry" in r["url"])
    assert retry_req["status"] == 201, retry_req
    second = out["secondStream"]
    assert second["error"] is None, run.describe()
    assert second["completed"] is True, run.describe()
    events = second["events"]
    check_event_shapes(events, task_id, run)
    types = [e["type"] for e in events]
    assert types.count("recovered") == 1, types
    assert types.count("completion") == 1, types
    assert types[-1] == "completion", types
    recovered = events[types.index("recovered")]
    assert recovered["body"] == {"recoverStrategy": "none"}, recovered
    rerun = events[types.index("recovered") + 1 :]
    assert rerun[0]["body"] == {"message": "Starting up task with 4 steps"}, rerun[0]
    assert events[-1]["body"]["message"] == "Run completed with status: completed"
    assert out["taskAfterRetry"]["status"] == "completed", run.describe()


def test_scaffold_keeps_values_as_sent(driver: NodeDriver, server_is_ours: bool) -> None:
    """Upstream applies no JSON-schema defaults (trace 11/12: ``Scaffolding svc-two () ...``).

    Ours fills in the defaults the caller left out (a documented improvement: API and CLI
    callers have no form to do it), and keeps every value that was sent as sent.
    """
    values = {"name": "svc-min", "owner": "user:default/me"}
    run = driver.run("run", {"templateRef": HELLO_REF, "values": values}, timeout_s=60)
    out = run.value()
    assert out["stream"]["completed"] is True, run.describe()
    assert out["task"]["status"] == "completed", run.describe()
    msgs = messages(out["stream"]["events"])
    if server_is_ours:
        defaults = {"description": "A hello service", "language": "python", "port": 8080}
        assert out["task"]["spec"]["parameters"] == {**values, **defaults}
        expected = "\x1b[32minfo\x1b[39m: Scaffolding svc-min (python) for user:default/me"
    else:
        assert out["task"]["spec"]["parameters"] == values, (
            "spec.parameters must be the values as sent (no defaults filled in)"
        )
        expected = "\x1b[32minfo\x1b[39m: Scaffolding svc-min () for user:default/me"
    assert expected in msgs, msgs[:6]


def test_scaffold_validation_error(driver: NodeDriver, server_is_ours: bool) -> None:
    """Values failing the parameter schema: scaffold() throws with the 400 ``{errors}`` body.

    Validation reports every error of the first failing parameter step. Upstream applies no
    defaults, so a required property with a ``default`` is still missing there; ours fills it.
    """
    run = driver.run("scaffold", {"templateRef": HELLO_REF, "values": {"name": "X"}})
    assert not run.ok, f"scaffold with invalid values did not throw:\n{run.describe()}"
    err = run.error
    assert err is not None
    assert err["name"] == "Error", err
    # The reason phrase is checked by test_error_status_text; match it loosely here.
    match = re.match(r"Backend request failed, 400 [A-Za-z ]+? (\{.*)\Z", str(err["message"]), re.S)
    assert match, err["message"][:300]
    body = json.loads(match.group(1))
    assert set(body) == {"errors"}, body
    got = [(e["name"], e["property"], e["stack"]) for e in body["errors"]]
    pattern = (
        "pattern",
        "instance.name",
        'instance.name does not match pattern "^[a-z][a-z0-9-]{1,30}$"',
    )
    required = ("required", "instance", 'instance requires property "owner"')
    assert got == ([pattern] if server_is_ours else [required, pattern]), got


def _skeleton_contents(template_dir: Path) -> list[dict[str, str]]:
    files = sorted(p for p in (template_dir / "skeleton").rglob("*") if p.is_file())
    return [
        {
            "path": p.relative_to(template_dir).as_posix(),
            "base64Content": base64.b64encode(p.read_bytes()).decode(),
        }
        for p in files
    ]


def test_dry_run(driver: NodeDriver) -> None:
    template = load_template("hello-template")
    contents = _skeleton_contents(FIXTURE_TEMPLATES / "hello-template")
    assert len(contents) == 10
    run = driver.run(
        "dry-run",
        {"template": template, "values": HELLO_VALUES, "directoryContents": contents},
        timeout_s=60,
    )
    result = run.value()
    assert set(result) == {"log", "directoryContents", "output", "steps"}, run.describe()
    assert result["output"] == HELLO_OUTPUT
    assert result["steps"] == template["spec"]["steps"], "dry-run steps must be unrendered"
    log = result["log"]
    assert all(set(entry) == {"body"} for entry in log), "log entries are {body} only"
    assert log[0]["body"] == {"message": "Starting up task with 5 steps"}, log[0]
    msgs = [str(e["body"].get("message")) for e in log]
    for _, name in HELLO_STEPS:
        assert f"Beginning step {name}" in msgs, msgs
        assert f"Finished step {name}" in msgs, msgs
    files = {f["path"]: f for f in result["directoryContents"]}
    expected = {c["path"].removeprefix("skeleton/") for c in contents} | {"catalog-info.yaml"}
    assert set(files) == expected, sorted(files)
    assert all(f["executable"] is False for f in files.values()), files
    readme = base64.b64decode(files["README.md"]["base64Content"]).decode()
    assert readme == (
        "# svc-one\n\nFirst service\n\nOwned by `group:default/platform`. Language: python. "
        "Port: 8080.\n"
    ), readme
    catalog_info = yaml.safe_load(base64.b64decode(files["catalog-info.yaml"]["base64Content"]))
    assert catalog_info["metadata"]["name"] == "svc-one", catalog_info
    assert catalog_info["spec"]["owner"] == "group:default/platform", catalog_info


def test_get_task_not_found(driver: NodeDriver) -> None:
    run = driver.run("get-task", {"taskId": "nope"})
    assert not run.ok, f"getTask('nope') did not throw:\n{run.describe()}"
    err = run.error
    assert err is not None
    assert err["name"] == "ResponseError", err
    assert err["statusCode"] == 404, err
    assert err["cause"] == {"name": "NotFoundError", "message": "No task with id 'nope' found"}, err
    assert err["body"]["request"] == {"method": "GET", "url": "/v2/tasks/nope"}, err["body"]
    assert err["body"]["response"] == {"statusCode": 404}, err["body"]


def test_error_status_text(driver: NodeDriver) -> None:
    """The HTTP reason phrase ends up in the message the Backstage UI shows for a failed call."""
    run = driver.run("get-task", {"taskId": "nope"})
    err = run.error
    assert err is not None, run.describe()
    assert err["statusText"] == "Not Found", err
    assert err["message"] == "Request failed with 404 Not Found", err


# --------------------------------------------------------------------------------------------
# CatalogClient
# --------------------------------------------------------------------------------------------


def test_catalog_get_entity_by_ref(driver: NodeDriver) -> None:
    run = driver.run("catalog-get-entity", {"entityRef": HELLO_REF})
    out = run.value()
    assert out["found"], run.describe()
    entity = out["entity"]
    (req,) = run.requests
    assert path_of(req) == "/api/catalog/entities/by-name/template/default/hello-template"
    template = load_template("hello-template")
    assert entity["apiVersion"] == "scaffolder.backstage.io/v1beta3"
    assert entity["kind"] == "Template"
    assert entity["metadata"]["name"] == "hello-template"
    assert entity["metadata"]["namespace"] == "default"
    assert entity["metadata"]["title"] == template["metadata"]["title"]
    assert isinstance(entity["metadata"].get("uid"), str), entity["metadata"]
    assert isinstance(entity["metadata"].get("etag"), str), entity["metadata"]
    annotations = entity["metadata"].get("annotations", {})
    assert str(annotations.get("backstage.io/managed-by-location", "")).startswith("file:"), (
        annotations
    )
    assert entity["spec"]["steps"] == template["spec"]["steps"]
    assert entity["spec"]["parameters"] == template["spec"]["parameters"]


def test_catalog_get_entity_by_ref_missing(driver: NodeDriver) -> None:
    """A 404 from by-name makes ``getEntityByRef`` resolve to ``undefined``, not throw."""
    run = driver.run("catalog-get-entity", {"entityRef": "template:default/no-such-template"})
    assert run.value() == {"found": False, "entity": None}, run.describe()
    (req,) = run.requests
    assert req["status"] == 404, req


def test_catalog_get_entities_filter(driver: NodeDriver) -> None:
    run = driver.run("catalog-get-entities", {"filter": {"kind": "template"}})
    out = run.value()
    (req,) = run.requests
    assert path_of(req) == "/api/catalog/entities?filter=kind%3Dtemplate", req
    items = out["items"]
    names = {e["metadata"]["name"] for e in items}
    assert {"hello-template", "slow-template"} <= names, names
    assert all(e["kind"].lower() == "template" for e in items), [e["kind"] for e in items]
