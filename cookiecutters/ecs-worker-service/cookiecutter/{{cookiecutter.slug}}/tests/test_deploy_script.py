from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NEW_IMAGE = "123456789012.dkr.ecr.{{ cookiecutter.aws_region }}.amazonaws.com/{{ cookiecutter.slug }}:new"
RUNNING_IMAGE = "123456789012.dkr.ecr.{{ cookiecutter.aws_region }}.amazonaws.com/{{ cookiecutter.slug }}:old"

# Stands in for the AWS CLI: logs each call, answers the three questions deploy.sh asks.
FAKE_AWS = f"""#!{sys.executable}
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_AWS_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
if args[:2] == ["ecs", "describe-services"]:
    print(os.environ.get("FAKE_RUNNING_TASK_DEFINITION", "None"))
elif args[:2] == ["ecs", "describe-task-definition"]:
    print({RUNNING_IMAGE!r})
elif args[:2] == ["cloudformation", "describe-stacks"]:
    keys = ["ExecutionRoleArn", "TaskRoleArn", "QueueUrl", "LogGroupName"]
    print(json.dumps([dict(OutputKey=k, OutputValue="stack-" + k) for k in keys]))
"""


@pytest.fixture
def deploy(tmp_path):
    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    pytest.importorskip("yaml")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("aws", FAKE_AWS), ("cfn-lint", "#!/bin/sh\nexit 0\n")):
        tool = bin_dir / name
        tool.write_text(text)
        tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    work = tmp_path / "repo"
    shutil.copytree(ROOT, work, ignore=shutil.ignore_patterns("build", ".git", "__pycache__"))
    log = tmp_path / "aws.log"

    path = [str(bin_dir), str(Path(sys.executable).parent), os.environ["PATH"]]

    def run(**extra):
        env = {
            "PATH": os.pathsep.join(path),
            "FAKE_AWS_LOG": str(log),
            "SERVICE_NAME": "{{ cookiecutter.slug }}",
            "CLUSTER_NAME": "platform",
            "VPC_ID": "vpc-0123456789abcdef0",
            "PRIVATE_SUBNET_IDS": "subnet-0123456789abcdef0,subnet-0123456789abcdef1",
            "IMAGE_URI": NEW_IMAGE,
            "HTTPS_LISTENER_ARN": "arn:aws:elasticloadbalancing:{{ cookiecutter.aws_region }}:123456789012:"
            "listener/app/shared/0123456789abcdef/0123456789abcdef",
            "ALB_SECURITY_GROUP_ID": "sg-0123456789abcdef0",
            **extra,
        }
        subprocess.run(["bash", "infra/deploy.sh"], cwd=work, env=env, check=True,
                       capture_output=True, text=True)
        calls = [json.loads(line) for line in log.read_text().splitlines()]
        deploys = [c for c in calls if c[:2] == ["cloudformation", "deploy"]]
        assert len(deploys) == 1
        task = json.loads((work / "build" / "task-definition.json").read_text())
        return deploys[0], task

    return run


def parameter(call, key):
    values = call[call.index("--parameter-overrides") + 1:]
    return next(v.split("=", 1)[1] for v in values if v.startswith(f"{key}="))


def test_a_new_stack_starts_on_the_new_image(deploy):
    call, task = deploy()
    assert parameter(call, "ImageUri") == NEW_IMAGE
    assert call[call.index("--template-file") + 1].endswith("build/service.json")
    assert task["executionRoleArn"] == "stack-ExecutionRoleArn"
    assert task["taskRoleArn"] == "stack-TaskRoleArn"
    assert "__" not in json.dumps(task).replace("__ImageUri__", "")


def test_a_stack_update_keeps_the_running_image(deploy):
    call, _ = deploy(FAKE_RUNNING_TASK_DEFINITION="arn:aws:ecs:::task-definition/{{ cookiecutter.slug }}:7")
    assert parameter(call, "ImageUri") == RUNNING_IMAGE
