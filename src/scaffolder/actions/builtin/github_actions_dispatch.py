"""``github:actions:dispatch``: start a workflow, and (ours) optionally follow its run.

With ``waitForCompletion: true`` the step finds the run the dispatch started and follows it,
writing each status change to the task log, until it completes or ``timeoutMinutes`` pass.
The step fails unless the run concludes ``success``. A cancel of the task stops the waiting
(the run itself goes on in GitHub).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from scaffolder.actions.base import ActionContext, TemplateAction
from scaffolder.actions.builtin.fetch_common import build_action
from scaffolder.actions.builtin.github_common import GithubRepo, connect
from scaffolder.errors import ScaffolderError
from scaffolder.integrations.github import Clock, GithubError, segment
from scaffolder.integrations.github_auth import GithubConnector

#: How long a followed run may take when ``timeoutMinutes`` is not given.
DEFAULT_TIMEOUT_MINUTES = 30.0
#: Seconds between two looks at a run (and for the run to appear after the dispatch).
POLL_SECONDS = 10.0
#: A run may carry a ``created_at`` slightly before our clock's dispatch time.
CLOCK_SKEW_SECONDS = 5.0

#: Inputs and outputs of ours, added to upstream's schemas.
_EXTRA_INPUTS: Mapping[str, Any] = {
    "waitForCompletion": {
        "type": "boolean",
        "description": "Wait for the workflow run to complete, streaming its status to the "
        "task log; the step fails unless the run concludes with success. Default false.",
    },
    "timeoutMinutes": {
        "type": "number",
        "description": "How long to wait for the run with waitForCompletion. Default 30.",
    },
}
_EXTRA_OUTPUTS: Mapping[str, Any] = {
    "runId": {"type": "number", "description": "The id of the followed workflow run"},
    "runUrl": {"type": "string", "description": "HTML URL of the followed workflow run"},
    "conclusion": {"type": "string", "description": "Conclusion of the followed workflow run"},
}


class WorkflowRunError(ScaffolderError):
    """A followed run failed, timed out, or could not be found."""


def create_github_actions_dispatch_action(
    *, github: GithubConnector, poll_seconds: float = POLL_SECONDS
) -> TemplateAction:
    """Build ``github:actions:dispatch`` (upstream's, plus ``waitForCompletion``).

    Args:
        github: resolves tokens and connects to the configured GitHub hosts.
        poll_seconds: seconds between two looks at the run.
    """

    def handler(ctx: ActionContext) -> None:
        inputs = ctx.input
        workflow_id = str(inputs["workflowId"])
        ref = str(inputs["branchOrTagName"])
        want_details = bool(inputs.get("returnWorkflowRunDetails"))
        ctx.logger.info(f"Dispatching workflow {workflow_id} for repo {inputs['repoUrl']} on {ref}")
        gh = connect(ctx, github)
        workflow = f"{gh.path}/actions/workflows/{segment(workflow_id)}"

        def dispatch() -> dict[str, Any]:
            started = _iso(github.clock())
            body: dict[str, Any] = {"ref": ref}
            if inputs.get("workflowInputs") is not None:
                body["inputs"] = inputs["workflowInputs"]
            if want_details:
                body["return_run_details"] = True
            answer = gh.client.post(f"{workflow}/dispatches", body)
            ctx.logger.info(f"Workflow {workflow_id} dispatched successfully")
            details: dict[str, Any] = {"dispatchedAt": started}
            if want_details and isinstance(answer, dict):
                details.update(
                    workflowRunId=answer.get("workflow_run_id"),
                    workflowRunUrl=answer.get("run_url"),
                    workflowRunHtmlUrl=answer.get("html_url"),
                )
            return details

        try:
            details: dict[str, Any] = ctx.checkpoint(
                f"create.workflow.dispatch.{gh.owner}.{gh.repo}.{workflow_id}", dispatch
            )
        except GithubError as exc:
            ctx.logger.warn(
                f"Failed: dispatching workflow '{workflow_id}' on repo: '{gh.repo}', {exc.message}"
            )
            raise

        if want_details and details.get("workflowRunId") is not None:
            for key in ("workflowRunId", "workflowRunUrl", "workflowRunHtmlUrl"):
                ctx.output(key, details.get(key))
            if details.get("workflowRunHtmlUrl"):
                ctx.logger.info(f"Workflow run url: {details['workflowRunHtmlUrl']}")

        if not inputs.get("waitForCompletion"):
            return
        minutes = float(inputs.get("timeoutMinutes") or DEFAULT_TIMEOUT_MINUTES)
        follower = _Follower(ctx, gh, github.clock, poll_seconds, minutes)
        run = follower.follow(workflow, ref, details)
        conclusion = str(run.get("conclusion") or "")
        ctx.output("runId", run["id"])
        ctx.output("runUrl", run.get("html_url"))
        ctx.output("conclusion", conclusion)
        if want_details and details.get("workflowRunId") is None:
            ctx.output("workflowRunId", run["id"])
            ctx.output("workflowRunUrl", run.get("url"))
            ctx.output("workflowRunHtmlUrl", run.get("html_url"))
        if conclusion != "success":
            raise WorkflowRunError(
                f"Workflow run {run.get('html_url')} concluded with {conclusion or 'no result'}"
            )

    action = build_action("github:actions:dispatch", handler, supports_dry_run=False)
    input_schema = copy.deepcopy(dict(action.input_schema or {}))
    input_schema.setdefault("properties", {}).update(copy.deepcopy(dict(_EXTRA_INPUTS)))
    output_schema = copy.deepcopy(dict(action.output_schema or {}))
    output_schema.setdefault("properties", {}).update(copy.deepcopy(dict(_EXTRA_OUTPUTS)))
    return TemplateAction(
        id=action.id,
        handler=handler,
        description=action.description,
        input_schema=input_schema,
        output_schema=output_schema,
        examples=action.examples,
        supports_dry_run=False,
    )


class _Follower:
    """Finds the dispatched run and polls it until it completes or time runs out."""

    def __init__(
        self,
        ctx: ActionContext,
        gh: GithubRepo,
        clock: Clock,
        poll_seconds: float,
        timeout_minutes: float,
    ) -> None:
        self._ctx = ctx
        self._gh = gh
        self._clock = clock
        self._poll = poll_seconds
        self._sleep = gh.sleep
        self._deadline = clock() + timeout_minutes * 60.0
        self._minutes = timeout_minutes

    def follow(self, workflow: str, ref: str, details: Mapping[str, Any]) -> dict[str, Any]:
        run_id = details.get("workflowRunId")
        if run_id is None:
            run = self._find(workflow, ref, str(details.get("dispatchedAt") or ""))
            run_id = run["id"]
            self._ctx.logger.info(f"Following workflow run {run.get('html_url')}")
        shown: tuple[str, str] | None = None
        while True:
            run = self._gh.client.get(f"{self._gh.path}/actions/runs/{segment(run_id)}")
            state = (str(run.get("status") or ""), str(run.get("conclusion") or ""))
            if state != shown:
                shown = state
                self._log(run)
            if state[0] == "completed":
                return dict(run)
            self._wait(f"Workflow run {run.get('html_url')} did not complete")

    def _find(self, workflow: str, ref: str, dispatched_at: str) -> dict[str, Any]:
        since = _parse_iso(dispatched_at) - CLOCK_SKEW_SECONDS if dispatched_at else 0.0
        params = {
            "branch": ref,
            "event": "workflow_dispatch",
            "created": f">={_iso(since)}",
            "per_page": 20,
        }
        while True:
            listed = self._gh.client.get(f"{workflow}/runs", params=params)
            found = listed.get("workflow_runs") if isinstance(listed, dict) else None
            runs: list[dict[str, Any]] = [
                r
                for r in found or []
                if isinstance(r, dict) and _parse_iso(str(r.get("created_at") or "")) >= since
            ]
            if runs:
                # The earliest run created since the dispatch is the one it started.
                return min(runs, key=lambda r: (str(r.get("created_at")), int(r["id"])))
            self._wait("No workflow run of the dispatch appeared")

    def _wait(self, what: str) -> None:
        if self._clock() + self._poll > self._deadline:
            raise WorkflowRunError(f"{what} within {self._minutes:g} minutes")
        self._sleep(self._poll)

    def _log(self, run: Mapping[str, Any]) -> None:
        status, conclusion = run.get("status"), run.get("conclusion")
        text = f"Workflow run {run.get('id')} is {status}"
        if status == "completed":
            text = f"Workflow run {run.get('id')} completed with conclusion {conclusion}"
        self._ctx.logger.info(text, {"url": run.get("html_url")})


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(max(seconds, 0.0)))


def _parse_iso(text: str) -> float:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).timestamp()
    except ValueError:
        return 0.0
