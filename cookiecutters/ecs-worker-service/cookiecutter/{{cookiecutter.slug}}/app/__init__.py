"""{{ cookiecutter.slug }}: an SQS worker. `handler` holds the work, `worker` the queue plumbing."""
