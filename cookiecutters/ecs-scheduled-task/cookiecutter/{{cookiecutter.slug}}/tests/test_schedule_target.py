from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "infra" / "schedule_target.py"
_spec = importlib.util.spec_from_file_location("schedule_target", SCRIPT)
assert _spec is not None
assert _spec.loader is not None
schedule_target = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(schedule_target)

OLD = "arn:aws:ecs:us-east-1:123456789012:task-definition/{{ cookiecutter.slug }}:7"
NEW = "arn:aws:ecs:us-east-1:123456789012:task-definition/{{ cookiecutter.slug }}:8"
INPUT = json.dumps(
    {
        "containerOverrides": [
            {
                "name": "{{ cookiecutter.slug }}",
                "environment": [
                    {"name": "SCHEDULED_TIME", "value": "<aws.scheduler.scheduled-time>"},
                    {"name": "EXECUTION_ID", "value": "<aws.scheduler.execution-id>"},
                ],
            }
        ]
    }
)


def get_schedule() -> dict[str, object]:
    """What `aws scheduler get-schedule --output json` prints for the stack's schedule."""
    return {
        "Arn": "arn:aws:scheduler:us-east-1:123456789012:schedule/default/{{ cookiecutter.slug }}",
        "CreationDate": "2026-01-01T00:00:00+00:00",
        "LastModificationDate": "2026-01-02T00:00:00+00:00",
        "Name": "{{ cookiecutter.slug }}",
        "GroupName": "default",
        "ScheduleExpression": "cron(0 3 * * ? *)",
        "ScheduleExpressionTimezone": "Europe/Paris",
        "State": "ENABLED",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": {
            "Arn": "arn:aws:ecs:us-east-1:123456789012:cluster/platform",
            "RoleArn": "arn:aws:iam::123456789012:role/scheduler",
            "EcsParameters": {
                "TaskDefinitionArn": OLD,
                "LaunchType": "FARGATE",
                "TaskCount": 1,
                "NetworkConfiguration": {
                    "awsvpcConfiguration": {
                        "Subnets": ["subnet-1", "subnet-2"],
                        "SecurityGroups": ["sg-1"],
                        "AssignPublicIp": "DISABLED",
                    }
                },
            },
            "Input": INPUT,
            "RetryPolicy": {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 3600},
            "DeadLetterConfig": {"Arn": "arn:aws:sqs:us-east-1:123456789012:dlq"},
        },
    }


def test_update_changes_only_the_task_definition() -> None:
    schedule = get_schedule()
    update = schedule_target.update_input(schedule, NEW)
    assert update["Target"]["EcsParameters"]["TaskDefinitionArn"] == NEW
    update["Target"]["EcsParameters"]["TaskDefinitionArn"] = OLD
    expected = {k: v for k, v in schedule.items() if k not in schedule_target.READ_ONLY}
    assert update == expected


def test_update_keeps_retry_dead_letter_and_overrides() -> None:
    target = schedule_target.update_input(get_schedule(), NEW)["Target"]
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 3600}
    assert target["DeadLetterConfig"]["Arn"].endswith(":dlq")
    assert target["Input"] == INPUT


def test_update_does_not_modify_its_input() -> None:
    schedule = get_schedule()
    schedule_target.update_input(schedule, NEW)
    assert schedule == get_schedule()


def test_update_refuses_another_family() -> None:
    other = "arn:aws:ecs:us-east-1:123456789012:task-definition/other-job:1"
    with pytest.raises(ValueError, match="family"):
        schedule_target.update_input(get_schedule(), other)


def test_update_refuses_a_family_arn_without_revision() -> None:
    with pytest.raises(ValueError, match="revision"):
        schedule_target.update_input(get_schedule(), NEW.rsplit(":", 1)[0])


def test_run_task_starts_the_task_like_the_schedule() -> None:
    now = datetime(2026, 3, 2, 3, 0, 5, tzinfo=UTC)
    run = schedule_target.run_task_input(get_schedule(), "deploy-1", now=now)
    assert run["cluster"].endswith(":cluster/platform")
    assert run["taskDefinition"] == OLD
    assert run["networkConfiguration"]["awsvpcConfiguration"] == {
        "subnets": ["subnet-1", "subnet-2"],
        "securityGroups": ["sg-1"],
        "assignPublicIp": "DISABLED",
    }
    environment = run["overrides"]["containerOverrides"][0]["environment"]
    assert {e["name"]: e["value"] for e in environment} == {
        "SCHEDULED_TIME": "2026-03-02T03:00:05Z",
        "EXECUTION_ID": "deploy-1",
    }


def test_cli_prints_the_update_input(tmp_path: Path) -> None:
    path = tmp_path / "schedule.json"
    path.write_text(json.dumps(get_schedule()), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "update", str(path), NEW],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(result.stdout)["Target"]["EcsParameters"]["TaskDefinitionArn"] == NEW


def test_cli_fails_on_another_family(tmp_path: Path) -> None:
    path = tmp_path / "schedule.json"
    path.write_text(json.dumps(get_schedule()), encoding="utf-8")
    other = "arn:aws:ecs:us-east-1:123456789012:task-definition/other-job:1"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "update", str(path), other], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "family" in result.stderr
