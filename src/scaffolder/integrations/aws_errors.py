"""AWS errors as ours: botocore's exceptions translated at the boundary.

`translate_error` turns a botocore exception into an `AwsError` that is also one of our
semantic errors (`NotAllowedError` for AccessDenied, `InputError` for ValidationError, ...),
naming the scaffolder action and the IAM action (``ecr:PutLifecyclePolicy``) that failed. It
keeps AWS's error ``code`` so that an action can tell "already exists" from the rest.
"""

from __future__ import annotations

import re
from typing import Any

from botocore.exceptions import (
    ClientError,
    ConnectionError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
)

from scaffolder.errors import (
    AuthenticationError,
    ConflictError,
    InputError,
    NotAllowedError,
    NotFoundError,
    ScaffolderError,
)

_ACCESS_DENIED = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "AuthorizationError",
        "UnauthorizedOperation",
        "UnauthorizedException",
        "NotAuthorized",
    }
)
_BAD_CREDENTIALS = frozenset(
    {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidAccessKeyId",
        "MissingAuthenticationToken",
    }
)
#: What botocore's retry handlers treat as throttling; seen here only once retries ran out.
_THROTTLING = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
        "BandwidthLimitExceeded",
    }
)
_INVALID = frozenset(
    {
        "ValidationError",
        "ValidationException",
        "InvalidParameterException",
        "InvalidParameterValue",
        "InvalidParameterValueException",
        "InvalidParameterCombination",
        "InvalidInput",
        "InvalidInputException",
        "InvalidRequestException",
        "MalformedPolicyDocument",
        "InvalidStructureException",
        "LimitExceeded",
        "LimitExceededException",
    }
)
_NOT_FOUND = re.compile(r"NotFound|NoSuch|^ParameterNotFound$")
_CONFLICT = re.compile(r"AlreadyExists|Exists(Exception)?$|InUse|Conflict")
#: CloudFormation says a stack is missing with a ValidationError.
_MISSING_STACK = re.compile(r"Stack with id .* does not exist")


class AwsError(ScaffolderError):
    """An AWS call failed; ``code`` is AWS's error code (``AccessDenied``, ...)."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        operation: str = "",
        aws_message: str = "",
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(message, cause=cause)
        self.code = code
        self.operation = operation
        self.aws_message = aws_message


class AwsInputError(AwsError, InputError):
    """AWS refused the request as invalid (ValidationError and kin)."""


class AwsNotAllowedError(AwsError, NotAllowedError):
    """The scaffolder's AWS identity may not do this (AccessDenied)."""


class AwsNotFoundError(AwsError, NotFoundError):
    """The resource does not exist."""


class AwsConflictError(AwsError, ConflictError):
    """The resource already exists, or is in use."""


class AwsAuthenticationError(AwsError, AuthenticationError):
    """No credentials, or AWS does not accept them."""


def translate_error(exc: Exception, *, action: str, service: str) -> AwsError:
    """Our error for a botocore exception raised while ``action`` called ``service``.

    Args:
        exc: what botocore raised.
        action: the scaffolder action id, named in the message.
        service: the IAM prefix of the service (``ecr``, ``iam``, ...).
    """
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code, text = _code_and_message(
            str(error.get("Code", "Unknown")), str(error.get("Message", "")).strip()
        )
        op = exc.operation_name
        iam_action = f"{service}:{op}"
        fields: dict[str, Any] = {"code": code, "operation": op, "aws_message": text, "cause": exc}
        if code in _ACCESS_DENIED:
            return AwsNotAllowedError(
                f"{action} is not allowed to call {iam_action}: {text or code}. Grant the "
                "scaffolder's AWS identity this permission (README: Pipeline bootstrap on AWS).",
                **fields,
            )
        if code in _BAD_CREDENTIALS:
            return AwsAuthenticationError(
                f"{action}: AWS did not accept the scaffolder's credentials calling {iam_action}: "
                f"{text or code}",
                **fields,
            )
        if code in _THROTTLING:
            attempts = 1 + int(exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0))
            return AwsError(
                f"{action}: AWS kept throttling {iam_action} after {attempts} attempts ({code}); "
                "try again later or raise aws.maxAttempts",
                **fields,
            )
        detail = f"{action}: {iam_action} failed: {text or code} ({code})"
        if service == "cloudformation" and _MISSING_STACK.search(text):
            return AwsNotFoundError(detail, **fields)
        if code in _INVALID:
            return AwsInputError(detail, **fields)
        if _NOT_FOUND.search(code):
            return AwsNotFoundError(detail, **fields)
        if _CONFLICT.search(code):
            return AwsConflictError(detail, **fields)
        return AwsError(detail, **fields)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return AwsAuthenticationError(
            f"{action}: no usable AWS credentials in boto3's default chain ({exc})", cause=exc
        )
    if isinstance(exc, ParamValidationError):
        return AwsInputError(f"{action}: invalid {service} request: {exc}", cause=exc)
    if isinstance(exc, ConnectionError):
        return AwsError(f"{action}: cannot reach AWS ({service}): {exc}", cause=exc)
    return AwsError(f"{action}: {service} call failed: {exc}", cause=exc)


def _code_and_message(code: str, text: str) -> tuple[str, str]:
    """AWS's code and message, also when the error body was not in the protocol botocore expected.

    botocore then reports the HTTP status as the code and the raw body as the message (moto
    answers IAM denials with an XML body even for JSON services). The body's own ``<Code>``
    is used if it has one, and a bare 403 is taken for the denial it almost always is.
    """
    if not code.isdigit():
        return code, text
    found_code = re.search(r"<Code>([^<]+)</Code>", text)
    found_text = re.search(r"<Message>([^<]*)</Message>", text)
    if found_code:
        return found_code.group(1), found_text.group(1) if found_text else ""
    return ("AccessDenied" if code == "403" else code), text
