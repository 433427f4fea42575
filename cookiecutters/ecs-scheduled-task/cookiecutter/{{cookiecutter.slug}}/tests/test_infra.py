from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"


def run(*args, **kwargs):
    return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, check=True,
                          capture_output=True, text=True, **kwargs)


def test_the_example_overrides_change_nothing():
    pytest.importorskip("yaml")
    base = json.loads(run(INFRA / "merge_overrides.py", INFRA / "service.yaml").stdout)
    merged = json.loads(run(INFRA / "merge_overrides.py", INFRA / "service.yaml",
                            *sorted((INFRA / "overrides").glob("*.yaml"))).stdout)
    assert merged == base
    assert base["Resources"]["Schedule"]["Type"] == "AWS::Scheduler::Schedule"


def test_overrides_merge_mappings_replace_the_rest_and_null_deletes(tmp_path):
    pytest.importorskip("yaml")
    override = tmp_path / "extra.yaml"
    override.write_text(
        "Parameters:\n"
        "  LogRetentionDays:\n"
        "    Default: 90\n"
        "Resources:\n"
        "  TaskRole:\n"
        "    Properties:\n"
        "      Description: !Sub ${ServiceName} reads reports\n"
        "Outputs:\n"
        "  LogGroupName: null\n"
    )
    merged = json.loads(run(INFRA / "merge_overrides.py", INFRA / "service.yaml", override).stdout)
    assert merged["Parameters"]["LogRetentionDays"]["Default"] == 90
    assert merged["Parameters"]["LogRetentionDays"]["Type"] == "Number"
    role = merged["Resources"]["TaskRole"]
    assert role["Properties"]["Description"] == {"Fn::Sub": "${ServiceName} reads reports"}
    assert "AssumeRolePolicyDocument" in role["Properties"]
    assert "LogGroupName" not in merged["Outputs"]


def test_placeholders_are_filled_from_the_stack_outputs(tmp_path):
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps([
        {"OutputKey": key, "OutputValue": f"value-of-{key}"}
        for key in ("ExecutionRoleArn", "TaskRoleArn", "LogGroupName")
    ]))
    target = tmp_path / "task-definition.json"
    run(INFRA / "fill_placeholders.py", outputs, ROOT / ".aws" / "task-definition.json", target)
    task = json.loads(target.read_text())
    assert task["executionRoleArn"] == "value-of-ExecutionRoleArn"
    assert task["taskRoleArn"] == "value-of-TaskRoleArn"
    # The image is set later, by amazon-ecs-render-task-definition.
    assert task["containerDefinitions"][0]["image"] == "__ImageUri__"


def test_a_placeholder_without_an_output_fails(tmp_path):
    outputs = tmp_path / "outputs.json"
    outputs.write_text("[]")
    result = subprocess.run(
        [sys.executable, INFRA / "fill_placeholders.py", outputs,
         ROOT / ".aws" / "task-definition.json", tmp_path / "out.json"],
        capture_output=True, text=True,
    )
    assert result.returncode != 0
    assert "ExecutionRoleArn" in result.stderr


def test_the_task_definition_file_matches_the_stack():
    """The stack's first revision and .aws/task-definition.json must not drift apart."""
    pytest.importorskip("yaml")
    stack = json.loads(run(INFRA / "merge_overrides.py", INFRA / "service.yaml").stdout)
    cfn = stack["Resources"]["TaskDefinition"]["Properties"]
    cfn_container = cfn["ContainerDefinitions"][0]
    task = json.loads((ROOT / ".aws" / "task-definition.json").read_text())
    container = task["containerDefinitions"][0]

    assert task["cpu"] == stack["Parameters"]["Cpu"]["Default"]
    assert task["memory"] == stack["Parameters"]["Memory"]["Default"]
    assert container["name"] == task["family"] == stack["Parameters"]["ServiceName"]["Default"]
    assert [e["name"] for e in container["environment"]] == [
        e["Name"] for e in cfn_container["Environment"]
    ]
    assert [s["name"] for s in container["secrets"]] == [
        s["Name"] for s in cfn_container["Secrets"]
    ]
    assert container["stopTimeout"] == cfn_container["StopTimeout"]
    assert "portMappings" not in container


def test_the_schedule_passes_the_run_context_the_job_reads():
    pytest.importorskip("yaml")
    stack = json.loads(run(INFRA / "merge_overrides.py", INFRA / "service.yaml").stdout)
    target = stack["Resources"]["Schedule"]["Properties"]["Target"]
    overrides = json.loads(target["Input"]["Fn::Sub"].replace("${ServiceName}", "job"))
    (container,) = overrides["containerOverrides"]
    assert container["name"] == "job"
    assert {e["name"]: e["value"] for e in container["environment"]} == {
        "SCHEDULED_TIME": "<aws.scheduler.scheduled-time>",
        "EXECUTION_ID": "<aws.scheduler.execution-id>",
        "ATTEMPT_NUMBER": "<aws.scheduler.attempt-number>",
    }
    assert set(target["RetryPolicy"]) == {"MaximumRetryAttempts", "MaximumEventAgeInSeconds"}
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}}


def test_the_scheduler_role_can_only_run_this_job():
    pytest.importorskip("yaml")
    stack = json.loads(run(INFRA / "merge_overrides.py", INFRA / "service.yaml").stdout)
    (policy,) = stack["Resources"]["SchedulerRole"]["Properties"]["Policies"]
    statements = policy["PolicyDocument"]["Statement"]
    actions = sorted(s["Action"] for s in statements)
    assert actions == ["ecs:RunTask", "iam:PassRole", "sqs:SendMessage"]
    assert all(s["Resource"] != "*" for s in statements)
    run_task = next(s for s in statements if s["Action"] == "ecs:RunTask")
    assert run_task["Resource"]["Fn::Sub"].endswith(":task-definition/${ServiceName}:*")
