# Copyright: (c) 2026, bakery.ec2 contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private helpers shared by the bakery.ec2 modules and the inventory plugin.

Not a public API: the leading underscore means names here may change in any release.

One client builder, one retry policy, one error type, tag helpers and one waiter.
Everything that talks to AWS goes through :class:`AwsClient`, so retries and error
reporting are the same everywhere.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import threading
import time
from functools import lru_cache

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        ProfileNotFound,
        ReadTimeoutError,
    )
    from botocore.parsers import ResponseParserError

    HAS_BOTO3 = True
    BOTO3_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by the module or plugin
    HAS_BOTO3 = False
    BOTO3_IMPORT_ERROR = exc

COLLECTION_VERSION = "0.2.0"
# A boto3 session is not thread-safe: clients are created from it under this lock.
_SESSION_LOCK = threading.RLock()

# Options every module and the inventory plugin accept (see the bakery.ec2.connection doc fragment).
CONNECTION_OPTIONS = {
    "region": {
        "type": "str",
        "aliases": ["aws_region", "ec2_region"],
        "env": ["AWS_REGION", "AWS_DEFAULT_REGION"],
    },
    "profile": {"type": "str", "aliases": ["aws_profile"], "env": ["AWS_PROFILE"]},
    "access_key": {
        "type": "str",
        "aliases": ["aws_access_key_id", "aws_access_key"],
        "env": ["AWS_ACCESS_KEY_ID"],
        "no_log": False,
    },
    "secret_key": {
        "type": "str",
        "aliases": ["aws_secret_access_key", "aws_secret_key"],
        "env": ["AWS_SECRET_ACCESS_KEY"],
        "no_log": True,
    },
    "session_token": {
        "type": "str",
        "aliases": ["aws_session_token", "security_token"],
        "env": ["AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"],
        "no_log": True,
    },
    # EC2 only. AWS_ENDPOINT_URL_EC2 / AWS_ENDPOINT_URL_STS / AWS_ENDPOINT_URL (and the profile's endpoint
    # settings) are left to botocore, which applies each to its own service (STS too).
    "endpoint_url": {"type": "str", "aliases": ["aws_endpoint_url"], "env": ["AWS_URL"]},
    "aws_ca_bundle": {"type": "path", "env": ["AWS_CA_BUNDLE"]},
    "validate_certs": {"type": "bool", "default": True},
    "aws_config": {"type": "dict"},
}
# Options of the modules only (the inventory plugin returns no result to put the actions in).
MODULE_OPTIONS = {
    "debug_botocore_endpoint_logs": {"type": "bool", "default": False, "env": ["ANSIBLE_DEBUG_BOTOCORE_LOGS"]},
}

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
# EC2 refuses a request with more than 200 values in one filter (FilterLimitExceeded), and long ID lists.
MAX_FILTER_VALUES = 200
# How long a resource this run created may stay invisible to other calls (EC2 is eventually consistent).
CONSISTENCY_TIMEOUT = 120
# Backoff while such a resource is not shown yet: full jitter from 0.5 s, at most 2 s between two asks. EC2 shows a new
# resource within seconds, and whatever waits on it is late by the last delay: a longer cap (8 s) made image and
# instance waits end up to 8 s after EC2 showed them, for a saving of about one Describe call a second.
CREATED_BACKOFF_BASE = 0.5
CREATED_BACKOFF_CAP = 2.0
# Services besides EC2 whose endpoint a task chooses itself (service_endpoint), with botocore's variable for each.
SERVICE_ENDPOINT_VARIABLES = {
    "ssm": "AWS_ENDPOINT_URL_SSM",
    "elbv2": "AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2",
    "autoscaling": "AWS_ENDPOINT_URL_AUTO_SCALING",
}

# The reason EC2 gives for an UnauthorizedOperation, readable through sts:DecodeAuthorizationMessage.
ENCODED_MESSAGE_RE = re.compile(r"Encoded authorization failure message:\s*(\S+)")

REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$")
ACCOUNT_RE = re.compile(r"^\d{12}$")
ID_PATTERNS = {
    "image": (re.compile(r"^ami-[0-9a-f]{8,17}$"), "an AMI ID (ami- followed by 8 to 17 hex digits)"),
    "instance": (re.compile(r"^i-[0-9a-f]{8,17}$"), "an instance ID (i- followed by 8 to 17 hex digits)"),
    "subnet": (re.compile(r"^subnet-[0-9a-f]{8,17}$"), "a subnet ID (subnet- followed by 8 to 17 hex digits)"),
    "security_group": (re.compile(r"^sg-[0-9a-f]{8,17}$"), "a security group ID (sg- followed by 8 to 17 hex digits)"),
    "snapshot": (re.compile(r"^snap-[0-9a-f]{8,17}$"), "a snapshot ID (snap- followed by 8 to 17 hex digits)"),
}


class AwsError(Exception):
    """An AWS call that failed for good (after retries), with EC2's error code and message."""

    def __init__(self, operation, code, message, status=None):
        self.operation = operation
        self.code = code
        self.message = one_line(message)
        self.status = status
        super().__init__(f"{operation}: {code}: {self.message}")

    def as_dict(self):
        return {"operation": self.operation, "code": self.code, "message": self.message, "http_status": self.status}


class WaitTimeout(Exception):
    """A wait ran out of time; ``last`` describes the state seen last."""

    def __init__(self, what, timeout, last):
        self.what = what
        self.timeout = timeout
        self.last = last
        super().__init__(f"timed out after {timeout}s waiting for {what}; last seen: {last}")


class TaskError(Exception):
    """What a task found wrong (bad input EC2 revealed, a conflict) in one line; the module adds what was done."""


def one_line(text):
    return " ".join(str(text).split())


def _error_code(err):
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        return (
            error.get("Code", "Unknown"),
            error.get("Message", str(err)),
            err.response.get("ResponseMetadata", {}).get("HTTPStatusCode"),
        )
    return type(err).__name__, str(err), None


def is_retryable(err, extra_codes=()):
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


def backoff_delays(attempts, base=0.5, cap=20.0, rng=random.random):
    """Full-jitter exponential backoff: one delay before each retry."""
    for attempt in range(attempts - 1):
        yield rng() * min(cap, base * (2**attempt))


def chunks(values, size=MAX_FILTER_VALUES):
    """``values`` as lists of at most ``size`` (200: EC2's limit of values per filter or ID list)."""
    values = list(values)
    for start in range(0, len(values), size):
        yield values[start : start + size]


def split_filters(filters, size=MAX_FILTER_VALUES):
    """EC2 ``filters`` (``[{'Name', 'Values'}]``) as sets of filters of at most ``size`` values each.

    EC2 refuses more than 200 values in one filter (``FilterLimitExceeded``). It ORs the values of a filter and
    ANDs the filters, so the resources matching ``filters`` are the union of those matching each set: one set per
    part of a long filter (per combination of parts when several are long). Short filters give one set, unchanged.
    """
    parts = [[{**f, "Values": part} for part in chunks(f["Values"], size)] or [f] for f in filters]
    return [list(combination) for combination in itertools.product(*parts)]


def not_found(call, codes):
    """Run ``call()``; return None when AWS answers with one of ``codes`` (what is not there, or gone)."""
    try:
        return call()
    except AwsError as err:
        if err.code in codes:
            return None
        raise


class AwsClient:
    """A boto3 client whose calls are retried under one policy and fail with :class:`AwsError`."""

    # Patched by the unit tests so retries do not sleep.
    sleep = staticmethod(time.sleep)

    def __init__(self, client, max_attempts=10, sts_client=None):
        self.client = client
        self.max_attempts = max_attempts
        self.region = client.meta.region_name
        # A callable returning an AwsClient for STS, used to decode an encoded authorization failure.
        self.sts_client = sts_client
        # A set the caller reads (debug_botocore_endpoint_logs): "ec2:DescribeImages" for every action called.
        self.actions = None

    def call(self, operation, retry_codes=(), **params):
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

    def call_created(self, operation, not_found_codes, timeout=CONSISTENCY_TIMEOUT, **params):
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

    def paginate(self, operation, result_key, retry_codes=(), **params):
        """Yield every item of ``result_key`` across NextToken pages; each page is retried on its own."""
        while True:
            page = self.call(operation, retry_codes=retry_codes, **params)
            yield from page.get(result_key, [])
            token = page.get("NextToken")
            if not token:
                return
            params["NextToken"] = token

    def _error(self, operation, err):
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

    def _explain_denied(self, message):
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


def summarize_decoded(text):
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


def _condition(item):
    values = item.get("values")
    if isinstance(values, dict):
        values = [v.get("value") if isinstance(v, dict) else v for v in values.get("items", [])]
    return f"{item.get('key')}={','.join(str(v) for v in values or ())}"


def service_endpoint(service, task_endpoint, environ=None):
    """The endpoint of ``service`` (ssm, elbv2) for a task whose EC2 endpoint is ``task_endpoint`` (None: AWS's).

    The service's own variable (``AWS_ENDPOINT_URL_SSM``, ``AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2``) wins, as
    in botocore. An endpoint that came from ``AWS_ENDPOINT_URL_EC2`` is EC2's only; any other task endpoint (the
    option, ``AWS_URL``, ``AWS_ENDPOINT_URL``) is a local endpoint serving every service, such as the sandbox.
    """
    environ = os.environ if environ is None else environ
    variable = SERVICE_ENDPOINT_VARIABLES[service]
    if environ.get(variable):
        return environ[variable]
    if task_endpoint and task_endpoint != environ.get("AWS_ENDPOINT_URL_EC2"):
        return task_endpoint
    return environ.get("AWS_ENDPOINT_URL") or None


def connection_params_from(getter):
    """Collect the connection options through ``getter(name)`` (module params or plugin get_option).

    Raise :class:`AwsError` when the keys given are incomplete (botocore would fail later with a TypeError).
    """
    params = {name: getter(name) for name in CONNECTION_OPTIONS}
    if bool(params.get("access_key")) != bool(params.get("secret_key")):
        given, missing = ("access_key", "secret_key") if params.get("access_key") else ("secret_key", "access_key")
        env = {"access_key": "AWS_ACCESS_KEY_ID", "secret_key": "AWS_SECRET_ACCESS_KEY"}
        raise AwsError(
            "Session",
            "PartialCredentials",
            f"{given} ({env[given]}) is set but {missing} ({env[missing]}) is not: set both, or neither to use "
            "a profile",
        )
    if params.get("session_token") and not params.get("access_key"):
        raise AwsError(
            "Session",
            "PartialCredentials",
            "session_token (AWS_SESSION_TOKEN) is set without access_key and secret_key: set all three",
        )
    return params


def build_session(params):
    """A boto3 session from the connection options; raise :class:`AwsError` on an unknown profile."""
    try:
        return boto3.session.Session(
            profile_name=params.get("profile") or None,
            aws_access_key_id=params.get("access_key") or None,
            aws_secret_access_key=params.get("secret_key") or None,
            aws_session_token=params.get("session_token") or None,
        )
    except ProfileNotFound:
        raise AwsError("Session", "ProfileNotFound", f"profile {params.get('profile')!r} is not configured") from None


def verify_setting(params):
    """``verify`` for botocore: False without validation, else the CA bundle given, else None.

    None lets botocore find the bundle itself (AWS_CA_BUNDLE, the profile's ca_bundle, its own default);
    True would override all of them with botocore's default bundle.
    """
    if not params.get("validate_certs", True):
        return False
    bundle = params.get("aws_ca_bundle")
    if bundle and not os.path.isfile(bundle):
        raise AwsError("Session", "InvalidCABundle", f"aws_ca_bundle: {bundle!r} is not a file (AWS_CA_BUNDLE)")
    return bundle or None


def client_config(params):
    """botocore's Config: ours (one attempt per call, as retries are ours), updated with ``aws_config``."""
    config = Config(
        # Retries are ours (AwsClient.call), so botocore makes one attempt per call.
        retries={"total_max_attempts": 1, "mode": "standard"},
        user_agent_extra=f"bakery.ec2/{COLLECTION_VERSION}",
        connect_timeout=10,
        read_timeout=60,
        max_pool_connections=32,
    )
    extra = params.get("aws_config")
    if not extra:
        return config
    try:
        return config.merge(Config(**extra))
    except (TypeError, ValueError, BotoCoreError) as err:
        raise AwsError("Session", "InvalidConfig", f"aws_config: {err}") from None


def build_client(params, service="ec2", region=None, max_attempts=10, session=None):
    """Build an :class:`AwsClient` from the connection options; raise :class:`AwsError` on bad settings.

    Clients of one ``session`` share its loaded API models. A session is not thread-safe, but
    the clients made from it are: build them in one thread, then use them from any.
    """
    session = session or build_session(params)
    region = region or params.get("region") or session.region_name
    if not region:
        raise AwsError("Session", "NoRegion", "no region: set region, or AWS_REGION or AWS_DEFAULT_REGION")
    if not REGION_RE.match(region):
        raise AwsError("Session", "InvalidRegion", f"region {region!r} is not a valid AWS region name")
    if session.get_credentials() is None:
        raise AwsError(
            "Session",
            "NoCredentials",
            "no AWS credentials found: set access_key and secret_key, a profile, "
            "or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        )
    config = client_config(params)
    # endpoint_url is EC2's (and SSM's and ELBv2's, which AwsModule sets from service_endpoint): STS finds its
    # own endpoint as botocore defines it (AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL, the profile, AWS itself).
    endpoint = (params.get("endpoint_url") or None) if service in ("ec2", *SERVICE_ENDPOINT_VARIABLES) else None
    try:
        with _SESSION_LOCK:
            client = session.client(
                service, region_name=region, endpoint_url=endpoint, verify=verify_setting(params), config=config
            )
    except (ValueError, NoRegionError, BotoCoreError) as err:
        where = (
            repr(endpoint)
            if endpoint
            else f"configured for {service} "
            f"({SERVICE_ENDPOINT_VARIABLES.get(service, f'AWS_ENDPOINT_URL_{service.upper()}')} or AWS_ENDPOINT_URL)"
        )
        raise AwsError("Session", "InvalidEndpoint", f"cannot use endpoint_url {where}: {err}") from None
    sts = None if service == "sts" else _lazy_sts_client(params, region, session)
    return AwsClient(client, max_attempts=max_attempts, sts_client=sts)


def _lazy_sts_client(params, region, session):
    """A callable that builds the STS client of these settings on first use (to decode a denied call)."""
    built = []

    def sts_client():
        with _SESSION_LOCK:
            if not built:
                built.append(build_client(params, service="sts", region=region, max_attempts=3, session=session))
        return built[0]

    return sts_client


def wait_until(fetch, check, timeout, what, describe=repr, first_delay=0.25, max_delay=2.0, factor=1.6, clock=None):
    """Poll ``fetch()`` until ``check(value)`` is true; raise :class:`WaitTimeout` with the last state seen.

    ``check`` may raise to abort the wait (a state that can no longer turn into the one wanted).
    The first poll happens at once and the delay grows from ``first_delay`` to ``max_delay``,
    so the wait ends within ``max_delay`` seconds of the state being reached, plus the poll that sees it.
    """
    clock = clock or time.monotonic
    deadline = clock() + timeout
    delay = first_delay
    while True:
        value = fetch()
        if check(value):
            return value
        remaining = deadline - clock()
        if remaining <= 0:
            raise WaitTimeout(what, timeout, describe(value))
        AwsClient.sleep(min(delay, remaining))
        delay = min(max_delay, delay * factor)


# --- changes ----------------------------------------------------------------------------------------


class Changes:
    """What a run changes, or in check mode would change, one line each, in order; the one way to change."""

    def __init__(self, check_mode, client=None):
        self.check_mode = check_mode
        self.client = client
        self.actions = []

    def will(self, action):
        """Record ``action``; return True when it is to be carried out (not in check mode)."""
        self.actions.append(action)
        return not self.check_mode

    def act(self, action, operation, created_codes=(), **params):
        """Record ``action``; outside check mode, make the call ``operation`` and return its answer.

        ``created_codes``: NotFound codes of resources this run created that the call names; they are
        retried for a while (EC2 is eventually consistent). ``InstanceIds`` go in chunks of 200.
        """
        if not self.will(action):
            return None
        if "InstanceIds" in params:
            for part in chunks(params.pop("InstanceIds")):
                self.client.call_created(operation, created_codes, InstanceIds=part, **params)
            return None
        return self.client.call_created(operation, created_codes, **params)


# --- tags -------------------------------------------------------------------------------------------


def tags_to_dict(tag_list):
    """``[{'Key': k, 'Value': v}]`` -> ``{k: v}``."""
    return {tag["Key"]: tag.get("Value", "") for tag in tag_list or ()}


def dict_to_tags(tags):
    """``{k: v}`` -> ``[{'Key': k, 'Value': v}]`` (sorted, so requests are deterministic)."""
    return [{"Key": str(k), "Value": "" if v is None else str(v)} for k, v in sorted((tags or {}).items())]


def tag_specifications(tags, *resource_types):
    if not tags:
        return []
    tag_list = dict_to_tags(tags)
    return [{"ResourceType": rtype, "Tags": tag_list} for rtype in resource_types]


def validate_tags(tags, option="tags"):
    """Return an error message for the first tag EC2 would refuse, or None."""
    if len(tags or {}) > 50:
        return f"{option}: {len(tags)} tags given, EC2 allows at most 50 per resource"
    for key, value in (tags or {}).items():
        key = str(key)
        if key.lower().startswith("aws:"):
            return f"{option}: tag key {key!r} uses the reserved prefix 'aws:'"
        if not key or len(key) > 128:
            return f"{option}: tag key {key!r} must be 1 to 128 characters"
        if value is not None and len(str(value)) > 256:
            return f"{option}: value of tag {key!r} is longer than 256 characters"
    return None


def compare_tags(current, desired, purge=True, keep=()):
    """Return ``(to_set, to_unset)``: tags to write and keys to remove so ``current`` becomes ``desired``."""
    desired = {str(k): "" if v is None else str(v) for k, v in (desired or {}).items()}
    to_set = {k: v for k, v in desired.items() if current.get(k) != v}
    to_unset = []
    if purge:
        to_unset = sorted(k for k in current if k not in desired and k not in keep and not k.startswith("aws:"))
    return to_set, to_unset


# --- result shaping ---------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def snake(name):
    """``CamelCase`` -> ``camel_case`` the way amazon.aws does (``ImageId`` -> ``image_id``)."""
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return name.lower()


def to_snake(value):
    """Convert an EC2 response structure to snake_case keys; ``Tags`` lists become a ``tags`` dict."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "Tags" and isinstance(item, list):
                out["tags"] = tags_to_dict(item)
            elif key == "ResponseMetadata":
                continue
            else:
                out[snake(key)] = to_snake(item)
        return out
    if isinstance(value, list):
        return [to_snake(item) for item in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def check_id(kind, value, option):
    """Return an error message when ``value`` is not a well-formed ID of ``kind``, else None."""
    pattern, expected = ID_PATTERNS[kind]
    if not pattern.match(str(value)):
        return f"{option}: {value!r} is not {expected}"
    return None


def check_regions(regions, option="regions"):
    """Return an error message when ``regions`` (a list, or None for the task's region) is empty or malformed."""
    if regions is None:
        return None
    if not regions:
        return f"{option}: the list is empty; give at least one region, or leave {option} out"
    for region in regions:
        if not REGION_RE.match(region):
            return f"{option}: {region!r} is not a valid AWS region name"
    return None
