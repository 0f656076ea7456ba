# Copyright: (c) 2026, bakery.ec2 contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one way to call AWS: :class:`AwsClient`, its retry policy (throttling, 5xx, lost connections, resources
this run created that EC2 does not show yet) and its errors (:class:`AwsError`, a denied call's reason decoded).

Not a public API: the leading underscore means names here may change in any release.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable, Collection, Iterator
from typing import Any

try:
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
        ReadTimeoutError,
    )
    from botocore.parsers import ResponseParserError
except ImportError:  # pragma: no cover - reported by the module or plugin (HAS_BOTO3 in _connection)
    pass

from ansible_collections.bakery.ec2.plugins.module_utils._errors import AwsError

THROTTLING_CODES = frozenset(
    (
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "EC2ThrottledException",
        "SlowDown",
        "PriorRequestNotComplete",
    )
)
TRANSIENT_CODES = frozenset(
    (
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "Unavailable",
        "RequestTimeout",
        "RequestTimeoutException",
    )
)
TRANSIENT_HTTP_STATUS = frozenset((500, 502, 503, 504))
# Answered with HTTP 500 at times, but the same request will not do better soon: the caller goes elsewhere.
NOT_TRANSIENT_CODES = frozenset(("InsufficientInstanceCapacity", "Unsupported"))
# How long a resource this run created may stay invisible to other calls (EC2 is eventually consistent).
CONSISTENCY_TIMEOUT = 120
# Backoff while such a resource is not shown yet: full jitter from 0.5 s, at most 2 s between two asks. EC2 shows a new
# resource within seconds, and whatever waits on it is late by the last delay: a longer cap (8 s) made image and
# instance waits end up to 8 s after EC2 showed them, for a saving of about one Describe call a second.
CREATED_BACKOFF_BASE = 0.5
CREATED_BACKOFF_CAP = 2.0

# The reason EC2 gives for an UnauthorizedOperation, readable through sts:DecodeAuthorizationMessage.
ENCODED_MESSAGE_RE = re.compile(r"Encoded authorization failure message:\s*(\S+)")


def _error_code(err: Exception) -> tuple[str, str, int | None]:
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        return (
            error.get("Code", "Unknown"),
            error.get("Message", str(err)),
            err.response.get("ResponseMetadata", {}).get("HTTPStatusCode"),
        )
    return type(err).__name__, str(err), None


def is_retryable(err: Exception, extra_codes: Collection[str] = ()) -> bool:
    """Throttling, 5xx, lost connections and the caller's eventual-consistency codes are retried."""
    if isinstance(err, (EndpointConnectionError, ConnectionClosedError, ReadTimeoutError, ConnectTimeoutError)):
        return True
    if isinstance(err, ClientError):
        code, _msg, status = _error_code(err)
        return code not in NOT_TRANSIENT_CODES and (
            code in THROTTLING_CODES
            or code in TRANSIENT_CODES
            or status in TRANSIENT_HTTP_STATUS
            or code in extra_codes
        )
    return False


def backoff_delays(
    attempts: int, base: float = 0.5, cap: float = 20.0, rng: Callable[[], float] = random.random
) -> Iterator[float]:
    """Full-jitter exponential backoff: one delay before each retry."""
    for attempt in range(attempts - 1):
        yield rng() * min(cap, base * (2**attempt))


class AwsClient:
    """A boto3 client whose calls are retried under one policy and fail with :class:`AwsError`."""

    # Patched by the unit tests so retries do not sleep.
    sleep = staticmethod(time.sleep)

    def __init__(self, client: Any, max_attempts: int = 10, sts_client: Callable[[], AwsClient] | None = None) -> None:
        self.client = client
        self.max_attempts = max_attempts
        self.region = client.meta.region_name
        # A callable returning an AwsClient for STS, used to decode an encoded authorization failure.
        self.sts_client = sts_client
        # A set the caller reads (debug_botocore_endpoint_logs): "ec2:DescribeImages" for every action called.
        self.actions: set[str] | None = None

    def call(self, operation: str, retry_codes: Collection[str] = (), **params: Any) -> dict[str, Any]:
        """Call ``operation`` (snake_case boto3 name) with retries; return the response dict."""
        method = getattr(self.client, operation)
        delays = backoff_delays(self.max_attempts)
        if self.actions is not None:
            meta = self.client.meta
            self.actions.add(
                f"{meta.service_model.signing_name}:{meta.method_to_api_mapping.get(operation, operation)}"
            )
        while True:
            try:
                return method(**params)
            except (ClientError, BotoCoreError, ResponseParserError) as err:
                delay = next(delays, None) if is_retryable(err, retry_codes) else None
                if delay is None:
                    raise self._error(operation, err) from None
                self.sleep(delay)

    def call_created(
        self, operation: str, not_found_codes: Collection[str], timeout: float = CONSISTENCY_TIMEOUT, **params: Any
    ) -> dict[str, Any]:
        """:meth:`call` about a resource this run has just created, which EC2 may not show everywhere yet.

        An error whose code is in ``not_found_codes`` (the NotFound codes of that resource only, never every
        NotFound) is retried with backoff until ``timeout`` seconds (at least 60) have passed, then raised.
        With no codes this is :meth:`call`.
        """
        deadline = time.monotonic() + max(60, timeout)
        delays = backoff_delays(2**31, base=CREATED_BACKOFF_BASE, cap=CREATED_BACKOFF_CAP)
        while True:
            try:
                return self.call(operation, **params)
            except AwsError as err:
                remaining = deadline - time.monotonic()
                if err.code not in not_found_codes or remaining <= 0:
                    raise
                self.sleep(min(remaining, next(delays)))

    def paginate(
        self, operation: str, result_key: str, retry_codes: Collection[str] = (), **params: Any
    ) -> Iterator[dict[str, Any]]:
        """Yield every item of ``result_key`` across NextToken pages; each page is retried on its own."""
        while True:
            page = self.call(operation, retry_codes=retry_codes, **params)
            yield from page.get(result_key, [])
            token = page.get("NextToken")
            if not token:
                return
            params["NextToken"] = token

    def _error(self, operation: str, err: Exception) -> AwsError:
        name = self.client.meta.method_to_api_mapping.get(operation, operation)
        if isinstance(err, (NoCredentialsError, PartialCredentialsError)):
            return AwsError(
                name,
                "NoCredentials",
                "no usable AWS credentials: set access_key and secret_key, a profile, "
                "or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            )
        if isinstance(err, EndpointConnectionError):
            return AwsError(name, "EndpointConnectionError", f"could not connect to {err.kwargs.get('endpoint_url')}")
        if isinstance(err, ResponseParserError):  # a web page or another service: the body is no use to the user
            return AwsError(
                name, "InvalidResponse", f"the endpoint {self.client.meta.endpoint_url} did not answer like EC2"
            )
        code, message, status = _error_code(err)
        if ENCODED_MESSAGE_RE.search(message or ""):
            message = self._explain_denied(message)
        return AwsError(name, code, message, status)

    def _explain_denied(self, message: str) -> str:
        """Replace the encoded reason of a denied call by its decoded summary, or say how to decode it."""
        encoded = ENCODED_MESSAGE_RE.search(message).group(1)
        head = ENCODED_MESSAGE_RE.sub("", message).strip()
        try:
            if self.sts_client is None:
                raise AwsError("DecodeAuthorizationMessage", "NoClient", "no STS client")
            decoded = self.sts_client().call("decode_authorization_message", EncodedMessage=encoded)
            return f"{head} Decoded reason: {summarize_decoded(decoded['DecodedMessage'])}"
        except (AwsError, KeyError, ValueError) as err:
            why = f" ({err.code})" if isinstance(err, AwsError) and err.code != "NoClient" else ""
            return (
                f"{head} The reason could not be decoded{why}: decode it with "
                f"'aws sts decode-authorization-message --encoded-message {encoded}' "
                "(needs sts:DecodeAuthorizationMessage)"
            )


def summarize_decoded(text: str) -> str:
    """sts:DecodeAuthorizationMessage's JSON -> ``action on resource denied to principal (why); conditions``."""
    decoded = json.loads(text)
    context = decoded.get("context") or {}
    principal = (context.get("principal") or {}).get("arn") or (context.get("principal") or {}).get("id") or "?"
    why = "an explicit deny" if decoded.get("explicitDeny") else "no statement allows it"
    line = f"{context.get('action', '?')} on {context.get('resource', '?')} denied to {principal} ({why})"
    conditions = [_condition(item) for item in (context.get("conditions") or {}).get("items", [])]
    if conditions:
        line += f"; context: {'; '.join(conditions)}"
    return line


def _condition(item: dict[str, Any]) -> str:
    values = item.get("values")
    if isinstance(values, dict):
        values = [v.get("value") if isinstance(v, dict) else v for v in values.get("items", [])]
    return f"{item.get('key')}={','.join(str(v) for v in values or ())}"
