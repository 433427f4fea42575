"""Configuration: Backstage-style ``app-config.yaml`` files, ``${ENV}`` and ``SCAFFOLDER_*``.

Several files may be given; later ones are deep-merged over earlier ones (Backstage's rule).
Strings may use ``${VAR}`` to read the environment (``$${`` escapes it). Finally, environment
variables ``SCAFFOLDER_<A>__<B>__<C>=value`` set the key ``a.b.c`` (matched case-insensitively
against keys that exist, so ``SCAFFOLDER_BACKEND__LISTEN__PORT=7008`` sets
``backend.listen.port``); the value is parsed as a YAML scalar.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scaffolder.errors import InputError
from scaffolder.integrations.scm import ScmIntegrations

ENV_PREFIX = "SCAFFOLDER_"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7007
DEFAULT_DATABASE_URL = "sqlite:///var/scaffolder.db"
DEFAULT_WORKING_DIRECTORY = "./var/work"
DEFAULT_CONCURRENT_TASKS_LIMIT = 10
DEFAULT_HEARTBEAT_SECONDS = 1.0
#: ``scaffolder.taskTimeout``: upstream's default (``{ hours: 24 }``): a ``processing`` task
#: whose heartbeat is older than this is failed by the stale-task janitor.
DEFAULT_TASK_TIMEOUT_SECONDS = 24 * 3600.0
#: ``scaffolder.taskTimeoutJanitorFrequency``: upstream's default (``{ minutes: 5 }``).
DEFAULT_TASK_TIMEOUT_JANITOR_SECONDS = 5 * 60.0
#: ``scaffolder.taskRecovery.staleTimeout``: upstream's default (``{ seconds: 30 }``).
DEFAULT_RECOVERY_STALE_SECONDS = 30.0
#: ``scaffolder.taskRecovery.workspaceMaxBytes``: the largest workspace archive (gzipped)
#: kept in a task row for a re-run that skips completed steps.
DEFAULT_WORKSPACE_MAX_BYTES = 64 * 1024 * 1024
#: ``scaffolder.shutdownGracePeriod``: what running tasks get after SIGTERM, under the 30 s
#: an orchestrator waits by default before SIGKILL (ECS ``stopTimeout``, Kubernetes
#: ``terminationGracePeriodSeconds``).
DEFAULT_SHUTDOWN_GRACE_SECONDS = 20.0
MAX_BODY_BYTES = 10 * 1024 * 1024
#: The ``aud`` of the user tokens Backstage's auth backend issues.
BACKSTAGE_TOKEN_AUDIENCE = "backstage"  # noqa: S105 - a JWT audience, not a secret
#: Signature algorithms accepted on Backstage user tokens (its default is ES256).
BACKSTAGE_TOKEN_ALGORITHMS = ("ES256", "RS256")
#: Asymmetric algorithms ``backend.auth.backstage.algorithms`` may list (never HS* or none).
SUPPORTED_TOKEN_ALGORITHMS = frozenset(
    {"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}
)

_ENV_REF = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Missing:
    """Marks a value whose ``${VAR}`` was not set: the key is dropped, as Backstage does."""


_MISSING = _Missing()


@dataclass(frozen=True, kw_only=True)
class CatalogLocation:
    """A ``catalog.locations`` entry: ``type`` (``file`` or ``url``) and its target."""

    type: str
    target: str


@dataclass(frozen=True, kw_only=True)
class StaticToken:
    """A ``backend.auth.externalAccess`` static token and the subject it authenticates.

    ``plugins`` is the ``accessRestrictions`` plugin list: ``None`` when the token may call
    every plugin.
    """

    token: str
    subject: str
    plugins: tuple[str, ...] | None = None


@dataclass(frozen=True, kw_only=True)
class BackstageIdentity:
    """``backend.auth.backstage``: verify Backstage user tokens against its JWKS."""

    base_url: str
    jwks_url: str
    issuer: str
    audience: str = BACKSTAGE_TOKEN_AUDIENCE
    algorithms: tuple[str, ...] = BACKSTAGE_TOKEN_ALGORITHMS


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the service reads from configuration, resolved and typed.

    ``raw`` keeps the whole merged configuration for parts that read their own keys
    (integrations, AWS), so they need no field here.
    """

    base_url: str = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    database_url: str = DEFAULT_DATABASE_URL
    working_directory: Path = Path(DEFAULT_WORKING_DIRECTORY)
    concurrent_tasks_limit: int = DEFAULT_CONCURRENT_TASKS_LIMIT
    keep_workspaces: bool = False
    heartbeat_seconds: float = DEFAULT_HEARTBEAT_SECONDS
    #: ``scaffolder.taskTimeout``: a heartbeat older than this is a stale task (the janitor).
    task_timeout_seconds: float = DEFAULT_TASK_TIMEOUT_SECONDS
    #: ``scaffolder.taskTimeoutJanitorFrequency``: how often the janitor looks.
    task_timeout_janitor_seconds: float = DEFAULT_TASK_TIMEOUT_JANITOR_SECONDS
    #: ``scaffolder.taskRecovery.enabled`` (on by default here; off upstream).
    task_recovery_enabled: bool = True
    #: ``scaffolder.taskRecovery.staleTimeout``: a heartbeat older than this is a dead worker.
    task_recovery_stale_seconds: float = DEFAULT_RECOVERY_STALE_SECONDS
    #: ``scaffolder.taskRecovery.workspaceMaxBytes``: a larger workspace archive is not kept
    #: (``0``: none is), and a re-run then runs every step again.
    task_recovery_workspace_max_bytes: int = DEFAULT_WORKSPACE_MAX_BYTES
    #: ``scaffolder.shutdownGracePeriod``: how long SIGTERM waits for running tasks.
    shutdown_grace_seconds: float = DEFAULT_SHUTDOWN_GRACE_SECONDS
    #: ``scaffolder.EXPERIMENTAL_gracefulShutdown``: ``False`` hands running tasks back at
    #: SIGTERM without waiting (no grace period); absent or ``True`` drains.
    graceful_shutdown: bool = True
    catalog_locations: tuple[CatalogLocation, ...] = ()
    auth_disabled: bool = False
    #: ``backend.auth.allowInsecureNonLoopback``: serve with auth disabled on any address.
    allow_insecure_non_loopback: bool = False
    static_tokens: tuple[StaticToken, ...] = ()
    backstage_identity: BackstageIdentity | None = None
    default_environment_parameters: Mapping[str, Any] = field(default_factory=dict)
    default_environment_secrets: Mapping[str, str] = field(default_factory=dict)
    scm_hosts: Mapping[str, str] = field(default_factory=lambda: {"github.com": "github"})
    trusted_templates: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        """Build settings from a merged configuration tree."""
        backend = _section(config, "backend")
        listen = _section(backend, "listen")
        database = _section(backend, "database")
        auth = _section(backend, "auth")
        scaffolder = _section(config, "scaffolder")
        catalog = _section(config, "catalog")
        environment = _section(scaffolder, "defaultEnvironment")
        recovery = _section(scaffolder, "taskRecovery")

        host = str(listen.get("host", DEFAULT_HOST))
        port = _int(listen.get("port", DEFAULT_PORT), "backend.listen.port")
        base_url = str(backend.get("baseUrl", f"http://{host}:{port}")).rstrip("/")
        connection = database.get("connection", DEFAULT_DATABASE_URL)
        if not isinstance(connection, str):
            raise InputError("backend.database.connection must be an SQLAlchemy URL string")

        locations = []
        for i, item in enumerate(catalog.get("locations") or []):
            if not isinstance(item, Mapping) or "target" not in item:
                raise InputError(f"catalog.locations[{i}] must have a type and a target")
            locations.append(
                CatalogLocation(type=str(item.get("type", "file")), target=str(item["target"]))
            )

        tokens = []
        for i, access in enumerate(auth.get("externalAccess") or []):
            if not isinstance(access, Mapping) or access.get("type") != "static":
                continue
            options = _section(access, "options")
            token, subject = options.get("token"), options.get("subject")
            if token is None:
                continue  # e.g. `token: ${UNSET_VAR}`: no token configured
            if not isinstance(token, str) or len(token) < 8 or re.search(r"\s", token):
                raise InputError(
                    f"backend.auth.externalAccess[{i}].options.token must be a string of at "
                    "least 8 characters with no whitespace"
                )
            tokens.append(
                StaticToken(
                    token=token,
                    subject=str(subject or "external"),
                    plugins=_access_restrictions(access.get("accessRestrictions"), i),
                )
            )

        graceful = _bool(
            scaffolder.get("EXPERIMENTAL_gracefulShutdown", True),
            "scaffolder.EXPERIMENTAL_gracefulShutdown",
        )
        grace = _duration(
            scaffolder.get("shutdownGracePeriod", {"seconds": DEFAULT_SHUTDOWN_GRACE_SECONDS}),
            "scaffolder.shutdownGracePeriod",
            allow_zero=True,
        )
        if not graceful and "shutdownGracePeriod" in scaffolder and grace > 0:
            raise InputError(
                "scaffolder.EXPERIMENTAL_gracefulShutdown is false (do not wait for running "
                f"tasks) but scaffolder.shutdownGracePeriod gives them {grace:g} s; remove one"
            )

        # Parsed (and checked) where the publishers and fetchers read them, so parseRepoUrl
        # knows exactly the hosts they can use.
        hosts = ScmIntegrations.from_config(config).scm_hosts()

        return cls(
            base_url=base_url,
            host=host,
            port=port,
            database_url=connection,
            working_directory=Path(
                str(backend.get("workingDirectory", DEFAULT_WORKING_DIRECTORY))
            ).absolute(),
            concurrent_tasks_limit=_int(
                scaffolder.get("concurrentTasksLimit", DEFAULT_CONCURRENT_TASKS_LIMIT),
                "scaffolder.concurrentTasksLimit",
            ),
            keep_workspaces=bool(scaffolder.get("keepWorkspaces", False)),
            task_recovery_enabled=_bool(
                recovery.get("enabled", scaffolder.get("EXPERIMENTAL_recoverTasks", True)),
                "scaffolder.taskRecovery.enabled",
            ),
            task_recovery_stale_seconds=_duration(
                recovery.get(
                    "staleTimeout",
                    scaffolder.get(
                        "EXPERIMENTAL_recoverTasksTimeout",
                        {"seconds": DEFAULT_RECOVERY_STALE_SECONDS},
                    ),
                ),
                "scaffolder.taskRecovery.staleTimeout",
            ),
            task_recovery_workspace_max_bytes=_non_negative_int(
                recovery.get("workspaceMaxBytes", DEFAULT_WORKSPACE_MAX_BYTES),
                "scaffolder.taskRecovery.workspaceMaxBytes",
            ),
            task_timeout_seconds=_duration(
                scaffolder.get("taskTimeout", {"seconds": DEFAULT_TASK_TIMEOUT_SECONDS}),
                "scaffolder.taskTimeout",
            ),
            task_timeout_janitor_seconds=_duration(
                scaffolder.get(
                    "taskTimeoutJanitorFrequency", {"seconds": DEFAULT_TASK_TIMEOUT_JANITOR_SECONDS}
                ),
                "scaffolder.taskTimeoutJanitorFrequency",
            ),
            shutdown_grace_seconds=grace if graceful else 0.0,
            graceful_shutdown=graceful,
            catalog_locations=tuple(locations),
            auth_disabled=bool(auth.get("dangerouslyDisableDefaultAuthPolicy", False)),
            allow_insecure_non_loopback=bool(auth.get("allowInsecureNonLoopback", False)),
            static_tokens=tuple(tokens),
            backstage_identity=_backstage_identity(auth.get("backstage")),
            default_environment_parameters=dict(_section(environment, "parameters")),
            default_environment_secrets={
                str(k): str(v) for k, v in _section(environment, "secrets").items()
            },
            scm_hosts=hosts,
            trusted_templates=_trusted_templates(scaffolder.get("trustedTemplates")),
            raw=config,
        )


def load_config(
    paths: Iterable[str | os.PathLike[str]] = (), environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Read, merge, substitute and override: the configuration tree as a dict."""
    env = os.environ if environ is None else environ
    merged: dict[str, Any] = {}
    for path in paths:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"Cannot read config file {path}: {exc.strerror}") from exc
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InputError(f"Config file {path} is not valid YAML: {exc}") from exc
        if data is None:
            continue
        if not isinstance(data, dict):
            raise InputError(f"Config file {path} must hold a mapping at its root")
        merged = _deep_merge(merged, data)
    substituted = _substitute(merged, env)
    tree: dict[str, Any] = substituted if isinstance(substituted, dict) else {}
    _apply_env_overrides(tree, env)
    return tree


def load_settings(
    paths: Iterable[str | os.PathLike[str]] = (), environ: Mapping[str, str] | None = None
) -> Settings:
    """`load_config` then `Settings.from_config`."""
    return Settings.from_config(load_config(paths, environ))


def _section(config: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = config.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InputError(f"Config key '{key}' must be a mapping")
    return value


def _access_restrictions(value: Any, index: int) -> tuple[str, ...] | None:
    """The plugins an ``externalAccess`` entry's ``accessRestrictions`` allow, or ``None``.

    Backstage can also narrow a token to permissions; we have no permission framework to
    enforce that with, so such an entry is refused rather than silently widened.
    """
    if value is None:
        return None
    key = f"backend.auth.externalAccess[{index}].accessRestrictions"
    if not isinstance(value, list) or not value:
        raise InputError(f"{key} must be a non-empty list of {{plugin: <pluginId>}}")
    plugins = []
    for item in value:
        if not isinstance(item, Mapping) or not isinstance(item.get("plugin"), str):
            raise InputError(f"{key} entries must have a plugin id")
        if "permission" in item or "permissionAttribute" in item:
            raise InputError(
                f"{key}: permission and permissionAttribute restrictions are not supported "
                "here (there is no permission framework); restrict the token by plugin"
            )
        plugins.append(item["plugin"])
    return tuple(dict.fromkeys(plugins))


def _backstage_identity(value: Any) -> BackstageIdentity | None:
    """``backend.auth.backstage``: where Backstage's auth backend publishes its keys.

    Empty (``baseUrl: ${BACKSTAGE_BASE_URL}`` with the variable unset) means not configured.
    """
    if value is None or value == {}:
        return None
    if not isinstance(value, Mapping) or not isinstance(value.get("baseUrl"), str):
        raise InputError("backend.auth.backstage must have a baseUrl (Backstage's backend URL)")
    base_url = value["baseUrl"].rstrip("/")
    if not re.match(r"^https?://", base_url):
        raise InputError("backend.auth.backstage.baseUrl must be an http(s) URL")
    algorithms = value.get("algorithms", list(BACKSTAGE_TOKEN_ALGORITHMS))
    if (
        not isinstance(algorithms, list)
        or not algorithms
        or not set(algorithms) <= SUPPORTED_TOKEN_ALGORITHMS
    ):
        raise InputError(
            "backend.auth.backstage.algorithms must list some of "
            + ", ".join(sorted(SUPPORTED_TOKEN_ALGORITHMS))
        )
    return BackstageIdentity(
        base_url=base_url,
        jwks_url=str(value.get("jwksUrl", f"{base_url}/api/auth/.well-known/jwks.json")),
        issuer=str(value.get("issuer", f"{base_url}/api/auth")),
        audience=str(value.get("audience", BACKSTAGE_TOKEN_AUDIENCE)),
        algorithms=tuple(algorithms),
    )


def _trusted_templates(value: Any) -> tuple[str, ...]:
    """``scaffolder.trustedTemplates``: path or URL prefixes and globs, paths made absolute.

    Templates from these sources may run cookiecutter hooks and extensions (the bundled
    ``cookiecutters/`` always may).
    """
    if value is None:
        return ()
    entries = [value] if isinstance(value, str) else value
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise InputError("scaffolder.trustedTemplates must be a list of paths, URLs or globs")
    trusted = []
    for entry in (e.strip() for e in entries):
        if not entry:
            continue
        if re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*://", entry):
            trusted.append(entry)
        else:
            trusted.append(os.path.abspath(os.path.expanduser(entry)))
    return tuple(trusted)


def _int(value: Any, key: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InputError(f"Config key '{key}' must be an integer, got {value!r}") from None


def _non_negative_int(value: Any, key: str) -> int:
    number = _int(value, key)
    if number < 0 or isinstance(value, bool):
        raise InputError(f"Config key '{key}' must be a non-negative integer, got {value!r}")
    return number


#: Seconds in each unit of Backstage's ``HumanDuration`` (a month is 30 days, a year 365).
_DURATION_UNITS = {
    "years": 365 * 86400.0,
    "months": 30 * 86400.0,
    "weeks": 7 * 86400.0,
    "days": 86400.0,
    "hours": 3600.0,
    "minutes": 60.0,
    "seconds": 1.0,
    "milliseconds": 0.001,
}
_ISO_DURATION = re.compile(
    r"^P(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


def _duration(value: Any, key: str, *, allow_zero: bool = False) -> float:
    """Seconds of a Backstage duration: ``{ minutes: 1, seconds: 30 }`` or ISO ``PT1M30S``."""
    seconds: float | None = None
    if isinstance(value, Mapping) and value and set(value) <= set(_DURATION_UNITS):
        parts = list(value.items())
        if all(isinstance(v, int | float) and not isinstance(v, bool) for _, v in parts):
            seconds = sum(float(v) * _DURATION_UNITS[unit] for unit, v in parts)
    elif isinstance(value, str) and value not in ("P", "PT") and not value.endswith("T"):
        match = _ISO_DURATION.match(value)
        if match:
            seconds = sum(
                float(v) * _DURATION_UNITS[unit] for unit, v in match.groupdict().items() if v
            )
    if seconds is None or seconds < 0 or (seconds == 0 and not allow_zero):
        raise InputError(
            f"Config key '{key}' must be a positive duration such as {{ seconds: 30 }} "
            f"(units: {', '.join(_DURATION_UNITS)}) or an ISO 8601 duration such as PT30S, "
            f"got {value!r}"
        )
    return seconds


def _bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    raise InputError(f"Config key '{key}' must be true or false, got {value!r}")


def _deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _substitute(value: Any, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        missing = False

        def repl(match: re.Match[str]) -> str:
            nonlocal missing
            if match.group(1):
                return "${" + match.group(2) + "}"
            name = match.group(2)
            if name not in env:
                missing = True
                return ""
            return env[name]

        out = _ENV_REF.sub(repl, value)
        return _MISSING if missing else out
    if isinstance(value, dict):
        result = {}
        for k, v in value.items():
            sub = _substitute(v, env)
            if sub is not _MISSING:
                result[k] = sub
        return result
    if isinstance(value, list):
        return [s for s in (_substitute(v, env) for v in value) if s is not _MISSING]
    return value


def _apply_env_overrides(tree: dict[str, Any], env: Mapping[str, str]) -> None:
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or "__" not in name[len(ENV_PREFIX) :]:
            continue
        parts = [p for p in name[len(ENV_PREFIX) :].split("__") if p]
        if not parts:
            continue
        node = tree
        for part in parts[:-1]:
            key = _match_key(node, part)
            child = node.get(key)
            if not isinstance(child, dict):
                child = {}
                node[key] = child
            node = child
        node[_match_key(node, parts[-1])] = yaml.safe_load(env[name]) if env[name] else ""


def _match_key(node: Mapping[str, Any], part: str) -> str:
    for key in node:
        if key.lower() == part.lower():
            return key
    # No existing key: turn SNAKE_CASE into Backstage's camelCase (CONCURRENT_TASKS_LIMIT).
    head, *rest = part.lower().split("_")
    return head + "".join(word.capitalize() for word in rest)
