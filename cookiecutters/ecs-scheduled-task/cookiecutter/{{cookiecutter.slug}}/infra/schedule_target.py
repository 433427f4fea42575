"""Build AWS CLI inputs from a schedule, for the deploy workflow.

``update SCHEDULE.json TASK_DEFINITION_ARN``
    Print the ``aws scheduler update-schedule --cli-input-json`` input that points the
    schedule at a new task definition revision and changes nothing else. UpdateSchedule
    replaces the whole schedule (a field left out is reset, so a forgotten RetryPolicy or
    DeadLetterConfig would silently disappear); the input is therefore GetSchedule's answer
    minus its read-only fields, with one value changed. A field AWS adds later makes the
    CLI reject the input rather than drop the setting.

``run-task SCHEDULE.json RUN_ID``
    Print the ``aws ecs run-task --cli-input-json`` input that starts the task the way the
    schedule does (cluster, task definition, network, the job's scheduler overrides), with
    ``EXECUTION_ID`` set to RUN_ID: the deploy workflow's optional smoke run.

SCHEDULE.json is the output of ``aws scheduler get-schedule --output json``.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

READ_ONLY = frozenset({"Arn", "CreationDate", "LastModificationDate", "ResponseMetadata"})
TASK_DEFINITION_ARN = re.compile(r"^arn:aws[a-z-]*:ecs:[^:]+:\d{12}:task-definition/([^:]+):\d+$")


def family(arn: str) -> str:
    """The family of a task definition revision ARN.

    Raises:
        ValueError: ``arn`` is not a task definition revision ARN.
    """
    match = TASK_DEFINITION_ARN.match(arn)
    if match is None:
        raise ValueError(f"not a task definition revision ARN: {arn!r}")
    return match.group(1)


def update_input(schedule: dict[str, Any], task_definition_arn: str) -> dict[str, Any]:
    """UpdateSchedule input: ``schedule`` as it is, running ``task_definition_arn``.

    Raises:
        ValueError: The schedule has no ECS target, or the new revision belongs to another
            family (the scheduler role may only run this job's family).
    """
    current = schedule.get("Target", {}).get("EcsParameters", {}).get("TaskDefinitionArn")
    if not current:
        raise ValueError("the schedule has no ECS target")
    if family(current) != family(task_definition_arn):
        raise ValueError(
            f"task definition family {family(task_definition_arn)!r} is not the "
            f"schedule's {family(current)!r}"
        )
    update = {key: value for key, value in schedule.items() if key not in READ_ONLY}
    update["Target"] = json.loads(json.dumps(schedule["Target"]))
    update["Target"]["EcsParameters"]["TaskDefinitionArn"] = task_definition_arn
    return update


def run_task_input(schedule: dict[str, Any], run_id: str, *, now: datetime) -> dict[str, Any]:
    """RunTask input that starts the scheduled task once, as the schedule would."""
    target = schedule["Target"]
    ecs = target["EcsParameters"]
    vpc = ecs["NetworkConfiguration"]["awsvpcConfiguration"]
    context = {
        "<aws.scheduler.scheduled-time>": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "<aws.scheduler.execution-id>": run_id,
        "<aws.scheduler.attempt-number>": "1",
        "<aws.scheduler.schedule-arn>": schedule.get("Arn", ""),
    }
    overrides_text = target.get("Input") or "{}"
    for placeholder, value in context.items():
        overrides_text = overrides_text.replace(placeholder, value)
    return {
        "cluster": target["Arn"],
        "taskDefinition": ecs["TaskDefinitionArn"],
        "launchType": ecs.get("LaunchType", "FARGATE"),
        "count": 1,
        "startedBy": run_id[:36],
        "networkConfiguration": {
            "awsvpcConfiguration": {
                "subnets": vpc["Subnets"],
                "securityGroups": vpc.get("SecurityGroups", []),
                "assignPublicIp": vpc.get("AssignPublicIp", "DISABLED"),
            }
        },
        "overrides": json.loads(overrides_text),
    }


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] not in {"update", "run-task"}:
        print(__doc__, file=sys.stderr)
        return 2
    schedule = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    try:
        if argv[0] == "update":
            result = update_input(schedule, argv[2])
        else:
            result = run_task_input(schedule, argv[2], now=datetime.now(UTC))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
