"""The one services container, built by the app factory and kept in ``app.extensions``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask import current_app

from scaffolder.access import TemplateAccess
from scaffolder.actions.builtin import create_builtin_actions
from scaffolder.actions.registry import ActionRegistry, load_plugin_actions
from scaffolder.audit import Auditor
from scaffolder.catalog.catalog_client import EmbeddedCatalogClient
from scaffolder.catalog.service import CatalogConfig, CatalogService
from scaffolder.catalog.store import SqlCatalogStore
from scaffolder.db.engine import create_engine, upgrade
from scaffolder.integrations.backstage_catalog import catalog_client_from_config
from scaffolder.integrations.cookiecutter import CookiecutterPool
from scaffolder.integrations.github_auth import GithubConnector
from scaffolder.integrations.github_autocomplete import (
    AutocompleteHandler,
    create_github_autocomplete,
)
from scaffolder.integrations.scm import ScmIntegrations
from scaffolder.metrics import Metrics
from scaffolder.settings import Settings
from scaffolder.tasks.broker import TaskBroker
from scaffolder.tasks.runner import WorkflowRunner
from scaffolder.tasks.service import ScaffolderService
from scaffolder.tasks.store import SqlTaskStore
from scaffolder.tasks.templating import Templater
from scaffolder.tasks.worker import TaskWorker

log = logging.getLogger(__name__)

EXTENSION_KEY = "scaffolder"


@dataclass(kw_only=True)
class Services:
    """Everything the API, the CLI and the workers share."""

    settings: Settings
    engine: sa.Engine
    catalog: CatalogService
    broker: TaskBroker
    registry: ActionRegistry
    templater: Templater
    runner: WorkflowRunner
    scaffolder: ScaffolderService
    metrics: Metrics
    auditor: Auditor
    worker: TaskWorker | None = None
    cookiecutter_pool: CookiecutterPool | None = None
    #: ``POST /v2/autocomplete/{provider}/...`` handlers by provider.
    autocomplete: Mapping[str, AutocompleteHandler] = field(default_factory=dict)
    ready: bool = False

    def close(self) -> None:
        """Stop the workers and the cookiecutter pool, and release the database."""
        self.catalog.close()
        if self.worker is not None:
            self.worker.stop()
        self.broker.close()
        if self.cookiecutter_pool is not None:
            self.cookiecutter_pool.close()
        self.engine.dispose()


def build_services(
    settings: Settings,
    *,
    with_worker: bool = True,
    migrate: bool = True,
    hear_events: bool = True,
) -> Services:
    """Create the database (migrated), catalog, registry, runner and optionally a worker.

    ``hear_events=False``: a process that serves no event stream (``scaffolder worker``)
    does not listen for other processes' task events.
    """
    engine = create_engine(settings.database_url)
    if migrate:
        upgrade(engine)
    catalog = CatalogService(SqlCatalogStore(engine), CatalogConfig.from_config(settings.raw))
    # What catalog:register/catalog:fetch use: the embedded catalog, or a Backstage catalog.
    catalog_client = catalog_client_from_config(
        settings.raw, embedded=EmbeddedCatalogClient(catalog)
    )
    templater = Templater(scm_hosts=settings.scm_hosts)
    # Started on the first fetch:cookiecutter step, so a server that never renders one (and
    # its idle memory) does not carry a cookiecutter process.
    cookiecutter_pool = CookiecutterPool.from_config(settings.raw)
    scm = ScmIntegrations.from_config(settings.raw)
    github = GithubConnector.from_config(scm, settings.raw)
    registry = ActionRegistry(
        create_builtin_actions(
            templater=templater,
            cookiecutter_pool=cookiecutter_pool,
            trusted_templates=settings.trusted_templates,
            git_hosts=tuple(settings.scm_hosts),
            git_file_roots=scm.local_roots(),
            scm_integrations=scm,
            config=settings.raw,
            github=github,
            entity_lookup=catalog_client.get_entity_by_ref,
            catalog=catalog_client,
        )
    )
    for action in load_plugin_actions():
        registry.register(action)
    store = SqlTaskStore(engine)
    metrics = Metrics.from_config(settings.raw, store)
    runner = WorkflowRunner(
        registry=registry,
        templater=templater,
        environment_parameters=settings.default_environment_parameters,
        environment_secrets=settings.default_environment_secrets,
        observer=metrics,
        recovery_enabled=settings.task_recovery_enabled,
        workspace_max_bytes=settings.task_recovery_workspace_max_bytes,
    )
    broker = TaskBroker(store, hear_events=hear_events)
    broker.start()  # on PostgreSQL: hear other processes' tasks and events (LISTEN)
    settings.working_directory.mkdir(parents=True, exist_ok=True)
    services = Services(
        settings=settings,
        engine=engine,
        catalog=catalog,
        broker=broker,
        registry=registry,
        templater=templater,
        runner=runner,
        cookiecutter_pool=cookiecutter_pool,
        autocomplete={"github": create_github_autocomplete(github)},
        scaffolder=ScaffolderService(
            broker=broker,
            catalog=catalog,
            templater=templater,
            runner=runner,
            working_directory=settings.working_directory,
            template_access=TemplateAccess.from_config(settings.raw),
        ),
        metrics=metrics,
        auditor=Auditor.from_config(settings.raw),
    )
    # Every location is read before the first request; the refresher then keeps them fresh.
    catalog.start(background=with_worker)
    if with_worker and settings.concurrent_tasks_limit > 0:
        services.worker = TaskWorker(
            broker=broker,
            runner=runner,
            working_directory=settings.working_directory,
            concurrency=settings.concurrent_tasks_limit,
            keep_workspaces=settings.keep_workspaces,
            heartbeat_seconds=settings.heartbeat_seconds,
            recovery_stale_seconds=(
                settings.task_recovery_stale_seconds if settings.task_recovery_enabled else None
            ),
            shutdown_grace_seconds=settings.shutdown_grace_seconds,
            graceful_shutdown=settings.graceful_shutdown,
            task_timeout_seconds=settings.task_timeout_seconds,
            janitor_seconds=settings.task_timeout_janitor_seconds,
        )
        services.worker.start()
    services.ready = True
    return services


def get_services() -> Services:
    """The services of the current Flask app."""
    services: Services = current_app.extensions[EXTENSION_KEY]
    return services
