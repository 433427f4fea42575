#!/usr/bin/env bash
# Point the schedule at a newly registered task definition revision, check that it took,
# and optionally run the job once and wait for its exit code.
#
# Needs: aws CLI with credentials, python, and
#   SERVICE_NAME TASK_DEFINITION_ARN
# Optional: RUN_ONCE=true (start one task now, fail unless it exits 0),
#   RUN_ID (default deploy-<time>), RUN_TIMEOUT_SECONDS (default 3600).
set -euo pipefail

: "${SERVICE_NAME:?}" "${TASK_DEFINITION_ARN:?}"
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/build"
mkdir -p "$build"

aws scheduler get-schedule --name "$SERVICE_NAME" --output json > "$build/schedule.json"
python "$root/infra/schedule_target.py" update "$build/schedule.json" "$TASK_DEFINITION_ARN" \
  > "$build/update-schedule.json"
aws scheduler update-schedule --cli-input-json "file://$build/update-schedule.json" > /dev/null

now_scheduled="$(aws scheduler get-schedule --name "$SERVICE_NAME" \
  --query 'Target.EcsParameters.TaskDefinitionArn' --output text)"
if [[ "$now_scheduled" != "$TASK_DEFINITION_ARN" ]]; then
  echo "schedule $SERVICE_NAME runs $now_scheduled, expected $TASK_DEFINITION_ARN" >&2
  exit 1
fi
echo "schedule $SERVICE_NAME now runs $TASK_DEFINITION_ARN"

[[ "${RUN_ONCE:-false}" == "true" ]] || exit 0

aws scheduler get-schedule --name "$SERVICE_NAME" --output json > "$build/schedule.json"
python "$root/infra/schedule_target.py" run-task "$build/schedule.json" \
  "${RUN_ID:-deploy-$(date -u +%Y%m%dT%H%M%SZ)}" > "$build/run-task.json"
cluster="$(python -c 'import json,sys; print(json.load(open(sys.argv[1]))["cluster"])' \
  "$build/run-task.json")"
aws ecs run-task --cli-input-json "file://$build/run-task.json" --output json \
  > "$build/run-task-result.json"
task="$(python -c 'import json,sys; t=json.load(open(sys.argv[1]))["tasks"]; print(t[0]["taskArn"] if t else "")' \
  "$build/run-task-result.json")"
if [[ -z "$task" ]]; then
  echo "RunTask started nothing:" >&2
  cat "$build/run-task-result.json" >&2
  exit 1
fi
echo "started $task"

# `aws ecs wait tasks-stopped` gives up after 10 minutes; jobs may run longer.
deadline=$((SECONDS + ${RUN_TIMEOUT_SECONDS:-3600}))
while :; do
  status="$(aws ecs describe-tasks --cluster "$cluster" --tasks "$task" \
    --query 'tasks[0].lastStatus' --output text)"
  [[ "$status" == "STOPPED" ]] && break
  if ((SECONDS > deadline)); then
    echo "task $task still $status after ${RUN_TIMEOUT_SECONDS:-3600}s" >&2
    exit 1
  fi
  sleep 15
done
read -r exit_code reason < <(aws ecs describe-tasks --cluster "$cluster" --tasks "$task" \
  --query "tasks[0].[containers[?name=='$SERVICE_NAME'].exitCode | [0], stoppedReason]" \
  --output text)
echo "task $task stopped: exit code $exit_code ($reason)"
[[ "$exit_code" == "0" ]]
