"""{{ cookiecutter.slug }}: a job that EventBridge Scheduler runs as an ECS Fargate task."""
