"""``debug:wait``: sleep for a while, waking at once when the task is cancelled."""

from __future__ import annotations

from scaffolder.actions.base import ActionContext, TemplateAction
from scaffolder.actions.builtin.fetch_common import build_action
from scaffolder.errors import ScaffolderError

ACTION_ID = "debug:wait"

#: Backstage's default ``maxWaitTime`` (``T00:10:00``).
MAX_WAIT_MS = 10 * 60 * 1000
#: How luxon's ``Duration.toHuman()`` spells that maximum in the error message.
MAX_WAIT_HUMAN = "0 hours, 10 minutes, 0 seconds"


def create_debug_wait_action() -> TemplateAction:
    """Build ``debug:wait``.

    The wait is ``minutes + seconds + milliseconds``; more than ten minutes is refused. A
    cancel ends the wait early and the handler returns normally, as upstream does: the runner,
    not the action, turns the cancel into the step's failure.
    """

    def handler(ctx: ActionContext) -> None:
        delay_ms = (
            float(ctx.input.get("minutes") or 0) * 60_000
            + float(ctx.input.get("seconds") or 0) * 1000
            + float(ctx.input.get("milliseconds") or 0)
        )
        if delay_ms > MAX_WAIT_MS:
            raise ScaffolderError(
                f"Waiting duration is longer than the maximum threshold of {MAX_WAIT_HUMAN}"
            )
        ctx.signal.wait(max(delay_ms, 0.0) / 1000)

    return build_action(ACTION_ID, handler, supports_dry_run=False)
