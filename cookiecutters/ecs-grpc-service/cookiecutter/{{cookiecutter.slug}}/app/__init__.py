"""{{ cookiecutter.slug }}: an internal gRPC service on ECS Service Connect."""
