# Copyright: (c) 2026, bakery.ec2 contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection: the options every module and the inventory accept, and building a session and its clients from
them (credentials, region, endpoint, CA bundle, botocore's Config).

Not a public API: the leading underscore means names here may change in any release.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, NoRegionError, ProfileNotFound

    HAS_BOTO3 = True
    BOTO3_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by the module or plugin
    HAS_BOTO3 = False
    BOTO3_IMPORT_ERROR = exc

from ansible_collections.bakery.ec2.plugins.module_utils._client import AwsClient
from ansible_collections.bakery.ec2.plugins.module_utils._errors import AwsError
from ansible_collections.bakery.ec2.plugins.module_utils._shapes import REGION_RE

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
# Services besides EC2 whose endpoint a task chooses itself (service_endpoint), with botocore's variable for each.
SERVICE_ENDPOINT_VARIABLES = {
    "ssm": "AWS_ENDPOINT_URL_SSM",
    "elbv2": "AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2",
    "autoscaling": "AWS_ENDPOINT_URL_AUTO_SCALING",
}


def service_endpoint(service: str, task_endpoint: str | None, environ: Mapping[str, str] | None = None) -> str | None:
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


def connection_params_from(getter: Callable[[str], Any]) -> dict[str, Any]:
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


def build_session(params: dict[str, Any]) -> boto3.session.Session:
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


def verify_setting(params: dict[str, Any]) -> bool | str | None:
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


def client_config(params: dict[str, Any]) -> Config:
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


def build_client(
    params: dict[str, Any],
    service: str = "ec2",
    region: str | None = None,
    max_attempts: int = 10,
    session: boto3.session.Session | None = None,
) -> AwsClient:
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


def _lazy_sts_client(params: dict[str, Any], region: str, session: boto3.session.Session) -> Callable[[], AwsClient]:
    """A callable that builds the STS client of these settings on first use (to decode a denied call)."""
    built: list[AwsClient] = []

    def sts_client() -> AwsClient:
        with _SESSION_LOCK:
            if not built:
                built.append(build_client(params, service="sts", region=region, max_attempts=3, session=session))
        return built[0]

    return sts_client
