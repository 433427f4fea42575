"""The task engine: model, store, broker, worker, runner, templating and workspaces."""
