"""The ``scaffolder`` command."""

from __future__ import annotations

import base64
import contextlib
import glob
import json
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import yaml

from scaffolder.errors import ScaffolderError, ValidationErrors
from scaffolder.settings import Settings, load_settings

if TYPE_CHECKING:
    from scaffolder.catalog.service import CatalogService

DEFAULT_CONFIG = "app-config.yaml"


def _settings(config: Sequence[str]) -> Settings:
    paths = list(config)
    if not paths and Path(DEFAULT_CONFIG).is_file():
        paths = [DEFAULT_CONFIG]
    return load_settings(paths)


def _fail(exc: ScaffolderError) -> None:
    if isinstance(exc, ValidationErrors):
        for error in exc.errors:
            click.echo(f"error: {error.get('stack', error.get('message'))}", err=True)
    else:
        click.echo(f"error: {exc.name}: {exc.message}", err=True)
    raise SystemExit(2)


config_option = click.option(
    "--config",
    "-c",
    "config",
    multiple=True,
    type=click.Path(dir_okay=False),
    help=f"app-config.yaml file(s), merged in order (default: ./{DEFAULT_CONFIG} if present).",
)


cpu_option = click.option(
    "--cpu",
    "pin_cpu",
    type=click.IntRange(min=0),
    help="Run this process's threads on CPU N only (Linux). They share one GIL: handing it "
    "between cores cost a third of a busy worker's CPU on a VM. Cookiecutter renders still "
    "use every CPU; git runs on N. One CPU per process; see README.",
)


def _pin(pin_cpu: int | None) -> None:
    """Pin before any thread starts (each thread inherits its starter's CPUs)."""
    if pin_cpu is None:
        return
    from scaffolder.cpu import CpuPinError, pin_to_cpu

    try:
        pin_to_cpu(pin_cpu)
    except CpuPinError as exc:
        raise click.BadParameter(str(exc), param_hint="--cpu") from exc


@click.group()
@click.option("--log-level", default="INFO", show_default=True, help="Python log level.")
def main(log_level: str) -> None:
    """scaffolder: a Backstage-compatible scaffolder backend for ECS services."""
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)


@main.command()
@config_option
@click.option("--host", help="Listen address (default: backend.listen.host).")
@click.option("--port", type=int, help="Listen port (default: backend.listen.port).")
@click.option(
    "--threads",
    type=int,
    default=256,
    show_default=True,
    help="HTTP threads; each open event stream or long poll holds one while its task runs.",
)
@cpu_option
def serve(
    config: Sequence[str], host: str | None, port: int | None, threads: int, pin_cpu: int | None
) -> None:
    """Serve the API and run tasks (one process, threaded HTTP, unbuffered SSE)."""
    from scaffolder.server import serve as run_server

    _pin(pin_cpu)
    settings = _settings(config)
    try:
        run_server(
            settings, host=host or settings.host, port=port or settings.port, threads=threads
        )
    except ScaffolderError as exc:
        _fail(exc)


@main.command()
@config_option
@click.option(
    "--metrics-port",
    type=int,
    help="Serve this worker's Prometheus metrics on backend.listen.host:PORT/metrics.",
)
@click.option(
    "--nice",
    "niceness",
    type=click.IntRange(0, 19),
    default=0,
    show_default=True,
    help="Lower this worker's CPU priority by N before it starts (its task threads and "
    "child processes inherit it), so that an API process and PostgreSQL on the same cores "
    "and in the same cgroup are served first. 10 when they share cores; see README.",
)
@cpu_option
def worker(
    config: Sequence[str], metrics_port: int | None, niceness: int, pin_cpu: int | None
) -> None:
    """Run task workers only, on the same database as the API."""
    from scaffolder.metrics import serve_metrics
    from scaffolder.server import settle_heap
    from scaffolder.services import build_services

    _pin(pin_cpu)
    if niceness:
        # Before anything starts: every thread and child process (cookiecutter's fork
        # server, git) is created after this and inherits it. Raising it needs no privilege.
        os.nice(niceness)
    # No event streams here: the API processes listen for task events, not the workers.
    services = build_services(_settings(config), with_worker=True, hear_events=False)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    metrics_server = (
        serve_metrics(services.metrics, services.settings.host, metrics_port)
        if metrics_port is not None
        else None
    )
    settle_heap()
    click.echo(f"worker running ({services.settings.concurrent_tasks_limit} slots)", err=True)
    stop.wait()
    # services.close() drains: no new claims, running tasks get the grace period, then
    # the rest are handed back (reopened for another worker, or failed).
    click.echo(
        f"worker stopping (grace period {services.settings.shutdown_grace_seconds:g} s)", err=True
    )
    if metrics_server is not None:
        metrics_server.stop()
    services.close()


def _parse_values(values_file: str | None, pairs: Sequence[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if values_file:
        loaded = yaml.safe_load(Path(values_file).read_text(encoding="utf-8"))
        if not isinstance(loaded, dict):
            raise click.BadParameter("must hold a mapping", param_hint="--values")
        values.update(loaded)
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not key=value", param_hint="-v")
        try:
            values[key] = json.loads(raw)
        except json.JSONDecodeError:
            values[key] = raw
    return values


def _print_log(message: str, stream: Any = None) -> None:
    click.echo(message, file=stream)


@main.command()
@config_option
@click.argument("template_ref")
@click.option("--values", "values_file", type=click.Path(exists=True, dir_okay=False))
@click.option("-v", "pairs", multiple=True, help="A value: key=value (JSON or a string).")
def run(
    config: Sequence[str], template_ref: str, values_file: str | None, pairs: Sequence[str]
) -> None:
    """Run a task from a catalog template; print its log live, then its output."""
    from scaffolder.services import build_services
    from scaffolder.tasks.model import EventType
    from scaffolder.tasks.service import Caller

    values = _parse_values(values_file, pairs)
    services = build_services(_settings(config), with_worker=True)
    try:
        try:
            task_id = services.scaffolder.create_task(
                template_ref=template_ref, values=values, secrets=None, caller=Caller(local=True)
            )
        except ScaffolderError as exc:
            _fail(exc)
        click.echo(f"task {task_id}", err=True)
        after: int | None = None
        while True:
            events = services.broker.wait_for_events(task_id, after, 30.0, new_only=True)
            for event in events:
                after = event.id if after is None else max(after, event.id)
                if event.type is EventType.COMPLETION:
                    _print_completion(event.body)
                    status = services.broker.store.get_task(task_id).status
                    raise SystemExit(0 if status.value == "completed" else 1)
                _print_log(str(event.body.get("message", event.body)))
    finally:
        services.close()


def _print_completion(body: dict[str, Any]) -> None:
    click.echo(body.get("message", ""))
    if "error" in body:
        error = body["error"]
        click.echo(f"error: {error.get('name')}: {error.get('message')}", err=True)
        return
    output = body.get("output") or {}
    for link in output.get("links") or []:
        click.echo(f"link: {link.get('title', '')} {link.get('url', link.get('entityRef', ''))}")
    for text in output.get("text") or []:
        click.echo(f"text: {text.get('title', '')}: {text.get('content', '')}")
    rest = {k: v for k, v in output.items() if k not in ("links", "text")}
    if rest:
        click.echo(json.dumps(rest, indent=2))


@main.command("dry-run")
@config_option
@click.argument("template_yaml", type=click.Path(exists=True, dir_okay=False))
@click.option("--values", "values_file", type=click.Path(exists=True, dir_okay=False))
@click.option("-v", "pairs", multiple=True, help="A value: key=value (JSON or a string).")
@click.option("--output", "output_dir", type=click.Path(file_okay=False), help="Write files here.")
def dry_run(
    config: Sequence[str],
    template_yaml: str,
    values_file: str | None,
    pairs: Sequence[str],
    output_dir: str | None,
) -> None:
    """Render a template file against its own directory, without side effects."""
    from scaffolder.services import build_services
    from scaffolder.tasks.service import Caller

    path = Path(template_yaml).absolute()
    template = yaml.safe_load(path.read_text(encoding="utf-8"))
    contents = []
    for dirpath, dirnames, filenames in os.walk(path.parent):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            full = Path(dirpath) / name
            contents.append(
                {
                    "path": full.relative_to(path.parent).as_posix(),
                    "base64Content": base64.b64encode(full.read_bytes()).decode(),
                    "executable": bool(full.stat().st_mode & 0o111),
                }
            )
    settings = _settings(config)
    services = build_services(settings, with_worker=False)
    try:
        result = services.scaffolder.dry_run(
            template=template,
            values=_parse_values(values_file, pairs),
            secrets=None,
            directory_contents=contents,
            caller=Caller(local=True),
        )
    except ScaffolderError as exc:
        _fail(exc)
    finally:
        services.close()
    for entry in result["log"]:
        _print_log(str(entry["body"].get("message", "")))
    if output_dir:
        out = Path(output_dir)
        for item in result["directoryContents"]:
            target = out / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(base64.b64decode(item["base64Content"]))
            if item.get("executable"):
                target.chmod(0o755)
        click.echo(f"wrote {len(result['directoryContents'])} files to {out}", err=True)
    _print_completion({"message": "Dry run completed", "output": result["output"]})


@main.group()
def templates() -> None:
    """Templates in the catalog."""


@templates.command("list")
@config_option
def templates_list(config: Sequence[str]) -> None:
    """List Template entities."""
    from scaffolder.services import build_services

    services = build_services(_settings(config), with_worker=False)
    try:
        for entity in services.catalog.list_entities([{"kind": ["template"]}]):
            meta = entity["metadata"]
            ref = f"template:{meta.get('namespace', 'default')}/{meta['name']}"
            click.echo(f"{ref}\t{meta.get('title', '')}")
    finally:
        services.close()


@main.group()
def actions() -> None:
    """Installed actions."""


@actions.command("list")
@config_option
def actions_list(config: Sequence[str]) -> None:
    """List action ids and descriptions."""
    from scaffolder.services import build_services

    services = build_services(_settings(config), with_worker=False)
    try:
        for action in services.registry:
            summary = (action.description or "").split("\n")[0]
            click.echo(f"{action.id}\t{summary}")
    finally:
        services.close()


#: Where the catalog's messages point to the file format documentation (left out here).
_CATALOG_HELP = " To learn more about catalog file format"


@main.group()
def catalog() -> None:
    """The embedded catalog: register locations, read and check entities."""


@contextlib.contextmanager
def _catalog_service(config: Sequence[str]) -> Iterator[CatalogService]:
    """The embedded catalog on the configured database, without reading its locations."""
    from scaffolder.catalog.service import CatalogConfig, CatalogService
    from scaffolder.catalog.store import SqlCatalogStore
    from scaffolder.db.engine import create_engine, upgrade

    settings = _settings(config)
    engine = create_engine(settings.database_url)
    try:
        upgrade(engine)
        yield CatalogService(SqlCatalogStore(engine), CatalogConfig.from_config(settings.raw))
    finally:
        engine.dispose()


@catalog.command("ingest")
@config_option
@click.argument("target")
def catalog_ingest(config: Sequence[str], target: str) -> None:
    """Register TARGET (a path or glob, or a URL) as a location and read it now.

    Prints each entity it brought in, then each error (a file or entity that could not be
    read or stored). Registering it again reads it again. Exit status: 0 without errors, 1
    with errors, 2 when it could not be registered.
    """
    from scaffolder.catalog.model import ref_of

    if re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*://", target):
        kind = "url"
    else:
        kind, target = "file", os.path.abspath(target)
        if not glob.has_magic(target) and not Path(target).exists():
            raise click.BadParameter(f"{target} does not exist", param_hint="TARGET")
    with _catalog_service(config) as service:
        existed = service.store.location_by_target(kind, target) is not None
        try:
            location = service.create_location(
                kind, target, on_conflict="refresh", wait=True, types=("url", "file")
            )
        except ScaffolderError as exc:
            _fail(exc)
        verb = "read again" if existed else "registered"
        click.echo(f"{verb} {kind}:{target} (location {location.id})", err=True)
        entities = service.store.source_entities(location.entity_ref)
    errors = 0
    for entity in entities:
        ref = ref_of(entity)
        if ref != location.entity_ref:
            click.echo(ref)
        for item in (entity.get("status") or {}).get("items") or []:
            errors += 1
            message = str(item.get("message", item)).split(_CATALOG_HELP)[0]
            click.echo(f"error: {ref}: {message}", err=True)
    count = sum(1 for e in entities if ref_of(e) != location.entity_ref)
    click.echo(f"{count} entities, {errors} errors", err=True)
    raise SystemExit(1 if errors else 0)


@catalog.command("get")
@config_option
@click.argument("ref")
def catalog_get(config: Sequence[str], ref: str) -> None:
    """Print the entity REF (``kind:[namespace/]name``) as JSON; exit 1 when there is none."""
    from scaffolder.catalog.model import RefError, parse_ref, stringify_ref

    try:
        wanted = stringify_ref(*parse_ref(ref))
    except RefError as exc:
        raise click.BadParameter(str(exc), param_hint="REF") from None
    with _catalog_service(config) as service:
        text = service.store.entity_json(wanted)
    if text is None:
        click.echo(f"error: NotFoundError: Entity {wanted} not found", err=True)
        raise SystemExit(1)
    click.echo(json.dumps(json.loads(text), indent=2, ensure_ascii=False))


@catalog.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def catalog_validate(files: Sequence[str]) -> None:
    """Check catalog files as the catalog would; print every problem with its field.

    Exit status: 0 when every entity is valid, 1 otherwise.
    """
    from scaffolder.catalog.problems import file_problems

    failed = 0
    for name in files:
        try:
            problems = file_problems(Path(name))
        except OSError as exc:
            click.echo(f"{name}: cannot read: {exc.strerror or exc}")
            failed += 1
            continue
        for problem in problems:
            click.echo(f"{name}: {problem}")
        failed += len(problems)
    if failed:
        click.echo(f"{failed} problems", err=True)
        raise SystemExit(1)
    click.echo(f"{len(files)} files valid", err=True)


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@config_option
def db_upgrade(config: Sequence[str]) -> None:
    """Apply the migrations."""
    from scaffolder.db.engine import create_engine, upgrade

    settings = _settings(config)
    engine = create_engine(settings.database_url)
    upgrade(engine)
    engine.dispose()
    click.echo("database is up to date", err=True)


@main.command()
@click.argument(
    "directory", default=".", type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "--only",
    metavar="CHECKS",
    help="Comma-separated checks to run: cfn, hadolint, yamllint, zizmor, catalog (default: all).",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
)
@click.option("--warnings-ok", is_flag=True, help="Fail on errors only, not on warnings.")
@click.option("--region", help="AWS region cfn-lint checks templates against [default: us-east-1].")
@click.option(
    "--timeout", type=click.FloatRange(min=1), help="Seconds each tool may run [default: 120]."
)
@click.option("--no-render", is_flag=True, help="Check a cookiecutter's Jinja sources as they are.")
@click.option("--verbose", is_flag=True, help="Print the time each check took (stderr).")
def lint(
    directory: Path,
    only: str | None,
    output_format: str,
    warnings_ok: bool,
    region: str | None,
    timeout: float | None,
    no_render: bool,
    verbose: bool,
) -> None:
    """Run the quality gate on DIRECTORY (a project or a cookiecutter).

    Exit status: 0 clean, 1 when a finding is an error or (without --warnings-ok) a warning,
    2 on usage errors. Infos never fail the gate.
    """
    from scaffolder.lint import CHECKS, LintOptions, parse_checks, run_lint

    try:
        checks = parse_checks(only.split(",") if only is not None else CHECKS)
    except ScaffolderError as exc:
        raise click.BadParameter(exc.message, param_hint="--only") from exc
    defaults = LintOptions()
    options = LintOptions(
        checks=checks,
        region=region or defaults.region,
        timeout=timeout or defaults.timeout,
        render=not no_render,
    )
    report = run_lint(directory, options)
    if verbose:
        for check in report.runs:
            click.echo(
                f"{check.check}: {check.files} files, {check.seconds:.2f} s, "
                f"{len(check.findings)} findings",
                err=True,
            )
    if output_format == "json":
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        for finding in report.findings:
            click.echo(finding.to_text())
        click.echo(report.summary())
    raise SystemExit(1 if report.failing(warnings_ok=warnings_ok) else 0)
