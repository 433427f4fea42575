#!/usr/bin/env bash
# Apply infra/service.yaml with infra/overrides/ merged in, then write
# build/task-definition.json with the stack's outputs filled in.
#
# Needs: aws CLI with credentials, python with cfn-lint (requirements-dev.txt), and
#   SERVICE_NAME CLUSTER_NAME VPC_ID PRIVATE_SUBNET_IDS (comma-separated) IMAGE_URI
# Optional: CLOUDFORMATION_ROLE_ARN (the role CloudFormation makes the stack's resources
#   with; the deploy role only passes it), STACK_NAME (default SERVICE_NAME),
#   ADDITIONAL_SECURITY_GROUP_IDS, ALARM_TOPIC_ARN (told when messages reach the dead-letter queue).
set -euo pipefail

: "${SERVICE_NAME:?}" "${CLUSTER_NAME:?}" "${VPC_ID:?}" "${PRIVATE_SUBNET_IDS:?}"
: "${IMAGE_URI:?}"
stack="${STACK_NAME:-$SERVICE_NAME}"
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/build"
mkdir -p "$build"

python "$root/infra/merge_overrides.py" "$root/infra/service.yaml" \
  "$root"/infra/overrides/*.yaml > "$build/service.json"
cfn-lint "$build/service.json"

# The stack's own task definition keeps the image the service already runs, so a stack
# update never rolls the service back to an older image; the new image goes out through
# .aws/task-definition.json in the next step of the workflow. A new stack starts on it.
running="$(aws ecs describe-services --cluster "$CLUSTER_NAME" --services "$SERVICE_NAME" \
  --query 'services[?status==`ACTIVE`].taskDefinition | [0]' --output text 2>/dev/null || true)"
stack_image="$IMAGE_URI"
if [[ -n "$running" && "$running" != "None" ]]; then
  stack_image="$(aws ecs describe-task-definition --task-definition "$running" \
    --query "taskDefinition.containerDefinitions[?name=='$SERVICE_NAME'].image | [0]" \
    --output text)"
fi

# With CLOUDFORMATION_ROLE_ARN, CloudFormation makes the stack's resources with that role:
# the deploy role itself may only create and run change sets of this stack through it.
role=()
[[ -n "${CLOUDFORMATION_ROLE_ARN:-}" ]] && role=(--role-arn "$CLOUDFORMATION_ROLE_ARN")

overrides=(
  "ServiceName=$SERVICE_NAME"
  "ClusterName=$CLUSTER_NAME"
  "VpcId=$VPC_ID"
  "PrivateSubnetIds=$PRIVATE_SUBNET_IDS"
  "ImageUri=$stack_image"
)
[[ -n "${ADDITIONAL_SECURITY_GROUP_IDS:-}" ]] &&
  overrides+=("AdditionalSecurityGroupIds=$ADDITIONAL_SECURITY_GROUP_IDS")
[[ -n "${ALARM_TOPIC_ARN:-}" ]] && overrides+=("AlarmTopicArn=$ALARM_TOPIC_ARN")

aws cloudformation deploy \
  --stack-name "$stack" \
  ${role[@]+"${role[@]}"} \
  --template-file "$build/service.json" \
  --capabilities CAPABILITY_IAM \
  --no-fail-on-empty-changeset \
  --tags "component=$SERVICE_NAME" \
  --parameter-overrides "${overrides[@]}"

aws cloudformation describe-stacks --stack-name "$stack" \
  --query 'Stacks[0].Outputs' --output json > "$build/stack-outputs.json"
python "$root/infra/fill_placeholders.py" "$build/stack-outputs.json" \
  "$root/.aws/task-definition.json" "$build/task-definition.json"
echo "wrote $build/task-definition.json"
