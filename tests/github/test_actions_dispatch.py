"""github:actions:dispatch, upstream's and with waitForCompletion."""

from __future__ import annotations

import json
import threading

import pytest
import responses

from scaffolder.actions.base import CancelSignal
from scaffolder.actions.builtin.github_actions_dispatch import (
    WorkflowRunError,
    create_github_actions_dispatch_action,
)
from scaffolder.errors import NotFoundError, TaskCancelledError
from scaffolder.integrations.github_auth import GithubConnector
from tests.github.conftest import API, REPO_URL, FakeClock, RunAction, run_body

WORKFLOW = f"{API}/repos/acme/svc/actions/workflows/deploy.yaml"
RUN = f"{API}/repos/acme/svc/actions/runs/30433642"
INPUTS = {"repoUrl": REPO_URL, "workflowId": "deploy.yaml", "branchOrTagName": "main"}


def test_dispatch(
    gh_api: responses.RequestsMock, connector: GithubConnector, run_action: RunAction
) -> None:
    gh_api.post(f"{WORKFLOW}/dispatches", status=204)

    run = run_action(
        create_github_actions_dispatch_action(github=connector),
        {**INPUTS, "workflowInputs": {"env": "prod"}},
    )

    assert json.loads(gh_api.calls[0].request.body) == {"ref": "main", "inputs": {"env": "prod"}}
    assert run.messages == [
        f"Dispatching workflow deploy.yaml for repo {REPO_URL} on main",
        "Workflow deploy.yaml dispatched successfully",
    ]
    assert run.outputs == {}


def test_dispatch_with_run_details(
    gh_api: responses.RequestsMock, connector: GithubConnector, run_action: RunAction
) -> None:
    gh_api.post(
        f"{WORKFLOW}/dispatches",
        json={
            "workflow_run_id": 30433642,
            "run_url": RUN,
            "html_url": "https://github.com/acme/svc/actions/runs/30433642",
        },
    )

    run = run_action(
        create_github_actions_dispatch_action(github=connector),
        {**INPUTS, "returnWorkflowRunDetails": True},
    )

    assert json.loads(gh_api.calls[0].request.body) == {"ref": "main", "return_run_details": True}
    assert run.outputs == {
        "workflowRunId": 30433642,
        "workflowRunUrl": RUN,
        "workflowRunHtmlUrl": "https://github.com/acme/svc/actions/runs/30433642",
    }
    assert run.messages[-1] == "Workflow run url: https://github.com/acme/svc/actions/runs/30433642"


def test_dispatch_of_unknown_workflow(
    gh_api: responses.RequestsMock, connector: GithubConnector, run_action: RunAction
) -> None:
    gh_api.post(f"{WORKFLOW}/dispatches", status=404, json={"message": "Not Found"})
    with pytest.raises(NotFoundError):
        run_action(create_github_actions_dispatch_action(github=connector), INPUTS)


def test_wait_for_completion_follows_the_run(
    gh_api: responses.RequestsMock,
    connector: GithubConnector,
    clock: FakeClock,
    run_action: RunAction,
) -> None:
    gh_api.post(f"{WORKFLOW}/dispatches", status=204)
    gh_api.get(f"{WORKFLOW}/runs", json={"total_count": 0, "workflow_runs": []})
    gh_api.get(
        f"{WORKFLOW}/runs",
        json={
            "total_count": 2,
            "workflow_runs": [
                run_body(1, "completed", "success", created_at="2023-11-14T20:00:00Z"),
                run_body(30433642, "queued"),
            ],
        },
    )
    gh_api.get(RUN, json=run_body(30433642, "queued"))
    gh_api.get(RUN, json=run_body(30433642, "in_progress"))
    gh_api.get(RUN, json=run_body(30433642, "in_progress"))
    gh_api.get(RUN, json=run_body(30433642, "completed", "success"))

    run = run_action(
        create_github_actions_dispatch_action(github=connector),
        {**INPUTS, "waitForCompletion": True, "returnWorkflowRunDetails": True},
    )

    listed = gh_api.calls[1].request
    assert listed.params == {
        "branch": "main",
        "event": "workflow_dispatch",
        "created": ">=2023-11-14T22:13:15Z",
        "per_page": "20",
    }
    html = "https://github.com/acme/svc/actions/runs/30433642"
    assert run.outputs == {
        "runId": 30433642,
        "runUrl": html,
        "conclusion": "success",
        "workflowRunId": 30433642,
        "workflowRunUrl": RUN,
        "workflowRunHtmlUrl": html,
    }
    assert run.messages[2:] == [
        f"Following workflow run {html}",
        f'Workflow run 30433642 is queued {{"url":"{html}"}}',
        f'Workflow run 30433642 is in_progress {{"url":"{html}"}}',
        f'Workflow run 30433642 completed with conclusion success {{"url":"{html}"}}',
    ]
    assert clock.sleeps == [10.0, 10.0, 10.0, 10.0]


def test_a_failed_run_fails_the_step(
    gh_api: responses.RequestsMock, connector: GithubConnector, run_action: RunAction
) -> None:
    gh_api.post(
        f"{WORKFLOW}/dispatches",
        json={"workflow_run_id": 30433642, "run_url": RUN, "html_url": "h"},
    )
    gh_api.get(RUN, json=run_body(30433642, "completed", "failure"))

    with pytest.raises(WorkflowRunError) as caught:
        run_action(
            create_github_actions_dispatch_action(github=connector),
            {**INPUTS, "waitForCompletion": True, "returnWorkflowRunDetails": True},
        )
    assert caught.value.message == (
        "Workflow run https://github.com/acme/svc/actions/runs/30433642 concluded with failure"
    )
    assert len(gh_api.calls) == 2  # the run id came with the dispatch: no search


def test_timeout(
    gh_api: responses.RequestsMock,
    connector: GithubConnector,
    clock: FakeClock,
    run_action: RunAction,
) -> None:
    gh_api.post(f"{WORKFLOW}/dispatches", status=204)
    gh_api.get(
        f"{WORKFLOW}/runs", json={"total_count": 1, "workflow_runs": [run_body(30433642, "queued")]}
    )
    gh_api.get(RUN, json=run_body(30433642, "queued"))

    with pytest.raises(WorkflowRunError) as caught:
        run_action(
            create_github_actions_dispatch_action(github=connector),
            {**INPUTS, "waitForCompletion": True, "timeoutMinutes": 1},
        )
    assert caught.value.message == (
        "Workflow run https://github.com/acme/svc/actions/runs/30433642 did not complete within "
        "1 minutes"
    )
    assert sum(clock.sleeps) <= 60


def test_no_run_appears(
    gh_api: responses.RequestsMock, connector: GithubConnector, run_action: RunAction
) -> None:
    gh_api.post(f"{WORKFLOW}/dispatches", status=204)
    gh_api.get(f"{WORKFLOW}/runs", json={"total_count": 0, "workflow_runs": []})
    with pytest.raises(
        WorkflowRunError, match=r"No workflow run of the dispatch appeared within 0\.5"
    ):
        run_action(
            create_github_actions_dispatch_action(github=connector),
            {**INPUTS, "waitForCompletion": True, "timeoutMinutes": 0.5},
        )


def test_cancel_stops_waiting(gh_api: responses.RequestsMock, run_action: RunAction) -> None:
    from scaffolder.integrations.scm import ScmIntegrations
    from tests.github.conftest import TOKEN

    # Real sleeps: the cancel must wake the wait, not the clock.
    github = GithubConnector(
        ScmIntegrations.from_config(
            {"integrations": {"github": [{"host": "github.com", "token": TOKEN}]}}
        )
    )
    gh_api.post(f"{WORKFLOW}/dispatches", status=204)
    gh_api.get(
        f"{WORKFLOW}/runs", json={"total_count": 1, "workflow_runs": [run_body(30433642, "queued")]}
    )
    gh_api.get(RUN, json=run_body(30433642, "in_progress"))
    signal = CancelSignal()
    timer = threading.Timer(0.3, signal.cancel)
    timer.start()
    try:
        with pytest.raises(TaskCancelledError):
            run_action(
                create_github_actions_dispatch_action(github=github, poll_seconds=30),
                {**INPUTS, "waitForCompletion": True},
                signal=signal,
            )
    finally:
        timer.cancel()


def test_schema_has_our_inputs_and_outputs(connector: GithubConnector) -> None:
    action = create_github_actions_dispatch_action(github=connector)
    assert action.input_schema is not None
    assert action.output_schema is not None
    assert {"waitForCompletion", "timeoutMinutes"} <= set(action.input_schema["properties"])
    assert {"runId", "runUrl", "conclusion", "workflowRunId"} <= set(
        action.output_schema["properties"]
    )
    assert action.input_schema["additionalProperties"] is False
