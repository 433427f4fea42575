"""The boundary to AWS: configuration, the one client factory, and error translation.

Configuration is the ``aws`` section of ``app-config.yaml`` (read from ``Settings.raw``)::

    aws:
      region: us-east-1                 # required: without it AWS steps are skipped
      endpointUrl: http://127.0.0.1:5000  # optional: a moto server or LocalStack stands in
      assumeRoleArn: arn:aws:iam::123456789012:role/scaffolder   # optional
      externalId: ...                   # optional, with assumeRoleArn
      retryMode: standard               # or adaptive (client-side rate limiting too)
      maxAttempts: 10                   # per call, throttling included
      templates:                        # per-template overrides, by entity ref or name
        template:default/ecs-web-service: {region: eu-west-1, assumeRoleArn: ...}

Credentials come from boto3's default chain (environment, shared files, SSO, container or
instance roles); with ``assumeRoleArn`` they are only used to assume that role, and the
assumed credentials refresh themselves before they expire.

Every call goes through an `AwsClient`, which translates botocore's exceptions into ours
(`aws_errors`: AccessDenied is a `NotAllowedError`, ValidationError an `InputError`, ...)
naming the scaffolder action and the IAM action that failed. Throttling is retried by
botocore (standard or adaptive mode, exponential backoff with jitter) before it is reported.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import (
    AssumeRoleCredentialFetcher,
    CredentialProvider,
    CredentialResolver,
    DeferredRefreshableCredentials,
)
from botocore.exceptions import BotoCoreError, ClientError

from scaffolder.errors import InputError, ScaffolderError
from scaffolder.integrations.aws_errors import AwsAuthenticationError, translate_error

CONFIG_KEY = "aws"
DEFAULT_RETRY_MODE = "standard"
DEFAULT_MAX_ATTEMPTS = 10
DEFAULT_SESSION_NAME = "scaffolder"
CONNECT_TIMEOUT_SECONDS = 10
READ_TIMEOUT_SECONDS = 60
USER_AGENT = "scaffolder"

#: Logged by every AWS action that finds no ``aws.region``.
NOT_CONFIGURED = "AWS is not configured (set aws.region, and aws.endpointUrl for a local stand-in)"


# --- configuration ------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class AwsTarget:
    """Where and as whom one client calls AWS."""

    region: str
    endpoint_url: str | None = None
    assume_role_arn: str | None = None
    external_id: str | None = None
    session_name: str = DEFAULT_SESSION_NAME


@dataclass(frozen=True, kw_only=True)
class AwsConfig:
    """The parsed ``aws`` section; `from_config` returns None when it has no region."""

    default: AwsTarget
    retry_mode: str = DEFAULT_RETRY_MODE
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    templates: Mapping[str, AwsTarget] = field(default_factory=dict)

    @classmethod
    def from_config(cls, raw: Mapping[str, Any]) -> AwsConfig | None:
        """Parse ``raw["aws"]``; None when AWS is not configured (no ``aws.region``).

        Raises:
            InputError: the section is malformed, or sets keys but no region.
        """
        section = raw.get(CONFIG_KEY)
        if section is None or section == {}:
            return None
        if not isinstance(section, Mapping):
            raise InputError("Config key 'aws' must be a mapping")
        region = section.get("region")
        if region in (None, ""):
            # `region: ${AWS_REGION}` with the variable unset drops the key: not configured.
            if set(section) - {"templates"}:
                raise InputError(
                    "Config key 'aws.region' is required when aws is configured "
                    f"(found {', '.join(sorted(section))})"
                )
            return None
        retry_mode = str(section.get("retryMode", DEFAULT_RETRY_MODE))
        if retry_mode not in ("standard", "adaptive", "legacy"):
            raise InputError(
                f"Config key 'aws.retryMode' must be standard or adaptive, got {retry_mode!r}"
            )
        try:
            max_attempts = int(section.get("maxAttempts", DEFAULT_MAX_ATTEMPTS))
        except (TypeError, ValueError):
            raise InputError("Config key 'aws.maxAttempts' must be an integer") from None
        if max_attempts < 1:
            raise InputError("Config key 'aws.maxAttempts' must be at least 1")
        templates = section.get("templates") or {}
        if not isinstance(templates, Mapping) or not all(
            isinstance(v, Mapping) for v in templates.values()
        ):
            raise InputError("Config key 'aws.templates' must map template refs to mappings")
        default = _target(section, "aws", None)
        return cls(
            default=default,
            retry_mode=retry_mode,
            max_attempts=max_attempts,
            templates={
                str(ref): _target(override, f"aws.templates[{ref}]", default)
                for ref, override in templates.items()
            },
        )

    def target(self, *, template_ref: str | None = None, region: str | None = None) -> AwsTarget:
        """The target for a template (its override, if any) and an explicit region."""
        target = self.default
        if template_ref:
            name = template_ref.rsplit("/", 1)[-1]
            target = self.templates.get(template_ref) or self.templates.get(name) or target
        return replace(target, region=region) if region else target


def _target(section: Mapping[str, Any], where: str, base: AwsTarget | None) -> AwsTarget:
    known = {"region", "endpointUrl", "assumeRoleArn", "externalId", "sessionName"}
    top_level_only = {"retryMode", "maxAttempts", "templates"} if base is None else set()
    extra = set(section) - known - top_level_only
    if extra:
        raise InputError(f"Unknown config keys under {where}: {', '.join(sorted(extra))}")
    for key in known & set(section):
        if not isinstance(section[key], str):
            raise InputError(f"Config key '{where}.{key}' must be a string")
    start = base or AwsTarget(region=str(section["region"]))
    return AwsTarget(
        region=section.get("region") or start.region,
        endpoint_url=section.get("endpointUrl") or start.endpoint_url,
        assume_role_arn=section.get("assumeRoleArn") or start.assume_role_arn,
        external_id=section.get("externalId") or start.external_id,
        session_name=section.get("sessionName") or start.session_name,
    )


# --- clients ------------------------------------------------------------------------------


class AwsClient:
    """A boto3 client whose every call raises our errors instead of botocore's.

    ``client.create_repository(...)`` calls boto3's method; `paginate` walks a paginated
    operation.
    """

    def __init__(self, client: Any, *, action: str, service: str) -> None:
        self._client = client
        self._action = action
        self.service = service

    @property
    def region(self) -> str:
        """The region this client calls."""
        return str(self._client.meta.region_name)

    def __getattr__(self, name: str) -> Callable[..., dict[str, Any]]:
        method = getattr(self._client, name)

        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> dict[str, Any]:
            try:
                result: dict[str, Any] = method(*args, **kwargs)
            except (ClientError, BotoCoreError) as exc:
                raise translate_error(exc, action=self._action, service=self.service) from exc
            return result

        return call

    def paginate(self, operation: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Each page of ``operation`` (errors translated as for single calls)."""
        pages = self._client.get_paginator(operation).paginate(**kwargs)
        try:
            yield from pages
        except (ClientError, BotoCoreError) as exc:
            raise translate_error(exc, action=self._action, service=self.service) from exc


class AwsClients:
    """The one place AWS clients are made: region, endpoint, role, retries, timeouts.

    Clients are cached per (service, target) and shared between threads (boto3 clients are
    thread-safe; sessions are not, so making them is serialised).
    """

    def __init__(self, config: AwsConfig | None) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._base: botocore.session.Session | None = None
        self._sessions: dict[tuple[str | None, str | None, str | None], boto3.Session] = {}
        self._clients: dict[tuple[str, AwsTarget], Any] = {}

    @classmethod
    def from_config(cls, raw: Mapping[str, Any]) -> AwsClients:
        """The factory for ``Settings.raw`` (unconfigured when there is no ``aws.region``)."""
        return cls(AwsConfig.from_config(raw))

    @property
    def configured(self) -> bool:
        """Whether ``aws.region`` is set (otherwise AWS actions skip themselves)."""
        return self.config is not None

    def target(self, *, template_ref: str | None = None, region: str | None = None) -> AwsTarget:
        """Where a client for this template and region would call.

        Raises:
            ScaffolderError: AWS is not configured.
        """
        if self.config is None:
            raise ScaffolderError(NOT_CONFIGURED)
        return self.config.target(template_ref=template_ref, region=region)

    def client(
        self,
        service: str,
        *,
        action: str,
        template_ref: str | None = None,
        region: str | None = None,
    ) -> AwsClient:
        """A client of ``service`` (boto3's name) for ``action``, errors translated.

        Raises:
            ScaffolderError: AWS is not configured.
            AwsError: the role could not be assumed, or no credentials were found.
        """
        target = self.target(template_ref=template_ref, region=region)
        key = (service, target)
        with self._lock:
            raw = self._clients.get(key)
            if raw is None:
                session = self._session(target)
                raw = session.client(
                    service,
                    region_name=target.region,
                    endpoint_url=target.endpoint_url,
                    config=self._botocore_config(),
                )
                self._clients[key] = raw
        prefix = str(raw.meta.service_model.signing_name)
        return AwsClient(raw, action=action, service=prefix)

    def _botocore_config(self) -> Config:
        assert self.config is not None
        retries = {"mode": self.config.retry_mode, "total_max_attempts": self.config.max_attempts}
        return Config(
            retries=retries,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            read_timeout=READ_TIMEOUT_SECONDS,
            user_agent_extra=USER_AGENT,
        )

    def _session(self, target: AwsTarget) -> boto3.Session:
        if self._base is None:
            self._base = botocore.session.Session()  # the default credential chain
        if target.assume_role_arn is None:
            return boto3.Session(botocore_session=self._base)
        key = (target.assume_role_arn, target.external_id, target.endpoint_url)
        session = self._sessions.get(key)
        if session is None:
            session = self._assumed_session(target)
            self._sessions[key] = session
        return session

    def _assumed_session(self, target: AwsTarget) -> boto3.Session:
        """A session whose credentials are ``assumeRoleArn``'s, refreshed before expiry."""
        assert self._base is not None
        assert target.assume_role_arn is not None
        base = self._base
        source = base.get_credentials()
        if source is None:
            raise AwsAuthenticationError(
                f"No AWS credentials in boto3's default chain to assume {target.assume_role_arn}"
            )
        extra: dict[str, str] = {"RoleSessionName": target.session_name}
        if target.external_id:
            extra["ExternalId"] = target.external_id
        fetcher = AssumeRoleCredentialFetcher(
            client_creator=functools.partial(
                base.create_client,
                region_name=target.region,
                endpoint_url=target.endpoint_url,
                config=self._botocore_config(),
            ),
            source_credentials=source,
            role_arn=target.assume_role_arn,
            extra_args=extra,
        )

        def fetch() -> Any:
            try:
                return fetcher.fetch_credentials()
            except (ClientError, BotoCoreError) as exc:
                raise translate_error(exc, action="aws.assumeRoleArn", service="sts") from exc

        assumed = botocore.session.Session()
        assumed.register_component(
            "credential_provider", CredentialResolver([_FixedProvider(fetch)])
        )
        return boto3.Session(botocore_session=assumed)


class _FixedProvider(CredentialProvider):  # type: ignore[misc]  # botocore is untyped
    """A credential provider that always answers with refreshable assumed-role credentials."""

    METHOD = "assume-role"
    CANONICAL_NAME = "scaffolder-assume-role"

    def __init__(self, fetch: Callable[[], Any]) -> None:
        super().__init__()
        self._fetch = fetch

    def load(self) -> DeferredRefreshableCredentials:
        return DeferredRefreshableCredentials(refresh_using=self._fetch, method=self.METHOD)


def partition_for(region: str) -> str:
    """The ARN partition of ``region`` (``aws``, ``aws-cn``, ``aws-us-gov``)."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"
