"""IAM, enforced on every signed request: SigV4 signature and identity policies, as AWS checks them.

At start the sandbox makes two IAM users through moto's IAM API: ``bakery-admin`` (every action; the sandbox's own
calls, tests and inspection) and ``bakery-least-privilege`` whose only policy is ``docs/iam-policy.json``. The
middleware checks each request on the request as the client signed it (before the sandbox rewrites anything): moto's
code checks the signature and finds the caller (a user's key, or a role's temporary key with its session token) and
the caller's policies (inline and attached); this module evaluates them for the action **and the resource** the
request names (each service says which: ``requested`` in sandbox/services/), with IAM's wildcards (``*``, ``?``):
DynamoDB tables and indexes (``arn:aws:dynamodb:REGION:ACCOUNT:table/NAME[/index/I]``), S3 buckets and objects
(``arn:aws:s3:::BUCKET``, ``arn:aws:s3:::BUCKET/KEY``), ACM certificates
(``arn:aws:acm:REGION:ACCOUNT:certificate/ID``), the role passed with an instance profile (``iam:PassRole``), the
role assumed (``sts:AssumeRole``, whose trust policy must name the caller); other actions are checked against ``*``.
A statement's ``Condition`` applies as IAM evaluates it, on the keys the request carries (sandbox/conditions.py:
region, principal, source address, time, request tags, ``ec2:CreateAction`` of tagging at creation, ...). Tagging at
creation (``TagSpecification``) needs ``ec2:CreateTags`` too. A temporary key past its expiry is ``ExpiredToken``. A
denied EC2 call is EC2's ``UnauthorizedOperation`` (HTTP 403) with one line naming the action and an encoded
authorization message that ``sts:DecodeAuthorizationMessage`` turns back into JSON; other services answer in their
own shape (each service's ``error``: DynamoDB JSON ``AccessDeniedException``, S3 XML ``AccessDenied``), naming
action and resource.

:class:`RoleCredentials` keeps an instance role's temporary credentials for the metadata service.
"""

from __future__ import annotations

import base64
import json
import threading
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from . import conditions, config

POLICY_FILE = config.REPO_ROOT / "docs" / "iam-policy.json"
ADMIN_USER = "bakery-admin"
USER = "bakery-least-privilege"
ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}

_ENC_PREFIX = "bks1."


def encode_message(
    arn: str, action: str, resource: str = "*", decision: str = "implicit deny", context: dict | None = None
) -> str:
    items = conditions.decoded_items(context or {})
    doc = {
        "allowed": False,
        "explicitDeny": decision == "explicit deny",
        "matchedStatements": {"items": []},
        "failures": {"items": []},
        "context": {"principal": {"arn": arn}, "action": action, "resource": resource, "conditions": {"items": items}},
    }
    raw = zlib.compress(json.dumps(doc, separators=(",", ":")).encode())
    return _ENC_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_message(encoded: str) -> str | None:
    if not encoded.startswith(_ENC_PREFIX):
        return None
    body = encoded[len(_ENC_PREFIX) :]
    try:
        return zlib.decompress(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))).decode()
    except (ValueError, zlib.error):
        return None


def unauthorized_message(
    arn: str, action: str, resource: str = "*", decision: str = "implicit deny", context: dict | None = None
) -> str:
    return (
        f"You are not authorized to perform this operation. {denied_message(arn, action, resource, decision)}. "
        f"Encoded authorization failure message: {encode_message(arn, action, resource, decision, context)}"
    )


def request_headers(environ) -> dict[str, str]:
    """A WSGI request's headers by their HTTP names."""
    out = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            out[key[5:].replace("_", "-").title()] = value
    if environ.get("CONTENT_TYPE"):
        out["Content-Type"] = environ["CONTENT_TYPE"]
    if environ.get("CONTENT_LENGTH"):
        out["Content-Length"] = environ["CONTENT_LENGTH"]
    return out


class Denied(Exception):
    """A request IAM refuses: ``code``, ``message``, HTTP ``status``."""

    def __init__(self, code: str, message: str, status: int):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


# ---------------------------------------------------------------- policy evaluation (pure)
ALLOW, EXPLICIT_DENY, IMPLICIT_DENY = "allow", "explicit deny", "implicit deny"


def matches(patterns, value: str, fold: bool = False) -> bool:
    """Whether ``value`` matches one of ``patterns`` (a string or a list); actions fold case, ARNs do not."""
    if isinstance(patterns, str):
        patterns = [patterns]
    return any(conditions.wildcard(p, fold).match(value) for p in patterns)


def _applies(statement: dict, action: str, resource: str, context: dict) -> bool:
    if "Condition" in statement and not conditions.holds(statement["Condition"], context):
        return False
    if "NotAction" in statement:
        if matches(statement["NotAction"], action, fold=True):
            return False
    elif not matches(statement.get("Action", []), action, fold=True):
        return False
    if "NotResource" in statement:
        return not matches(statement["NotResource"], resource)
    return matches(statement.get("Resource", []), resource)


def _statements(doc: dict) -> list[dict]:
    statements = doc.get("Statement", [])
    return [statements] if isinstance(statements, dict) else statements


def evaluate(documents: list[dict], action: str, resource: str, context: dict | None = None) -> str:
    """IAM's identity-policy logic for one action on one resource: an explicit deny wins, then an allow.
    ``context``: the request's condition keys (:func:`conditions.request_context`); a statement with a
    ``Condition`` applies only when it holds (without a context every key is absent)."""
    decision = IMPLICIT_DENY
    for doc in documents:
        for statement in _statements(doc):
            if not _applies(statement, action, resource, context or {}):
                continue
            if statement.get("Effect") == "Deny":
                return EXPLICIT_DENY
            if statement.get("Effect") == "Allow":
                decision = ALLOW
    return decision


def trusts(trust: dict, principal_arn: str) -> bool:
    """Whether a role's trust policy lets this IAM principal assume it (AWS principals; services are EC2's)."""
    account = principal_arn.split(":")[4]
    for statement in _statements(trust):
        if statement.get("Effect") != "Allow" or not matches(statement.get("Action", []), "sts:AssumeRole", True):
            continue
        principal = statement.get("Principal", {})
        aws = principal if principal == "*" else principal.get("AWS", []) if isinstance(principal, dict) else []
        aws = [aws] if isinstance(aws, str) else aws
        if any(p in ("*", principal_arn, account, f"arn:aws:iam::{account}:root") for p in aws):
            return True
    return False


def denied_message(arn: str, action: str, resource: str, decision: str) -> str:
    """AWS's one line for a refused call, naming the action and the resource."""
    on = f" on resource: {resource}" if resource != "*" else ""
    why = (
        "with an explicit deny in an identity-based policy"
        if decision == EXPLICIT_DENY
        else f"because no identity-based policy allows the {action} action"
    )
    return f"User: {arn} is not authorized to perform: {action}{on} {why}"


# ---------------------------------------------------------------- what a request asks: (IAM action, resource ARN)
class Gate:
    """Checks requests once ``enabled`` (after :meth:`bootstrap` made the users)."""

    def __init__(self):
        self.enabled = False
        self.lock = threading.Lock()
        self.credentials: dict[str, tuple[str, str]] = {}  # user -> (key id, secret)
        self.clock = utcnow  # tests move it
        self.expires: dict[str, datetime] = {}  # temporary key id -> expiry, for the keys the sandbox minted
        # Set by the middleware: an instance profile's role ARNs (None: no such profile); a role's trust policy.
        self.profile_roles: Callable[[str], list[str] | None] = lambda ref: None
        self.role_trust: Callable[[str], dict | None] = lambda arn: None
        # An EC2 resource's tags, by region and ID ({} for a resource without tags or that does not exist).
        self.resource_tags: Callable[[str, str], dict[str, str]] = lambda region, resource_id: {}

    def bootstrap(self, endpoint: str, policy_text: str) -> dict[str, tuple[str, str]]:
        """Make the admin and the least-privilege user through the IAM API; return their keys."""
        import boto3
        from botocore.config import Config

        from .faults import INTERNAL_AGENT

        iam = boto3.client(
            "iam",
            region_name=config.REGION,
            endpoint_url=endpoint,
            aws_access_key_id=config.ACCESS_KEY,
            aws_secret_access_key=config.SECRET_KEY,
            config=Config(user_agent_extra=INTERNAL_AGENT),
        )
        for user, name, doc in (
            (ADMIN_USER, "AdministratorAccess", json.dumps(ADMIN_POLICY)),
            (USER, "bakery-ec2", policy_text),
        ):
            iam.create_user(UserName=user)
            iam.put_user_policy(UserName=user, PolicyName=name, PolicyDocument=doc)
            key = iam.create_access_key(UserName=user)["AccessKey"]
            self.credentials[user] = (key["AccessKeyId"], key["SecretAccessKey"])
        self.enabled = True
        return dict(self.credentials)

    def check(self, environ, raw: bytes, params: dict, wanted: list[tuple[str, str]], internal: bool = False) -> None:
        """Raise :class:`Denied` unless the request's signature is right and its policies allow it.

        ``internal``: the request says it is the sandbox's own (acting as EC2 when it mints an instance's role
        credentials); it counts only when signed by the administrator.
        """
        from moto.core.exceptions import ServiceException
        from moto.core.exceptions import _RESTError as RESTError
        from moto.iam.access_control import AssumedRoleAccessKey, IAMRequest, S3IAMRequest

        headers = request_headers(environ)
        auth = headers.get("Authorization", "")
        scope = auth.partition("Credential=")[2].partition(",")[0].split("/")
        service = scope[3] if len(scope) > 3 else ""
        region = scope[2] if len(scope) > 2 else config.REGION
        target = headers.get("X-Amz-Target")
        action = target.rpartition(".")[2] if target else params.get("Action", "")
        if not auth.startswith("AWS4-HMAC-SHA256"):
            raise Denied("AuthFailure" if service == "ec2" else "MissingAuthenticationToken",
                         "AWS was not able to validate the provided access credentials", 401)  # fmt: skip
        path = environ.get("PATH_INFO", "/") or "/"
        if service == "s3":  # S3 signs the path as sent (each key's own encoding), not a normalised one
            path = (environ.get("RAW_URI") or environ.get("REQUEST_URI") or path).split("?", 1)[0]
        if environ.get("QUERY_STRING"):
            path += "?" + environ["QUERY_STRING"]
        try:
            request = (S3IAMRequest if service == "s3" else IAMRequest)(
                account_id=config.ACCOUNT_ID,
                method=environ.get("REQUEST_METHOD", "POST"),
                path=path,
                data=params,
                body=raw,
                headers=headers,
                action=action,
            )
            request.check_signature()
        except RESTError as exc:
            raise Denied(exc.error_type, exc.message, exc.code) from None
        except ServiceException as exc:  # S3's own errors
            raise Denied(exc.code, exc.message, 403) from None
        key = request._access_key
        if isinstance(key, AssumedRoleAccessKey):
            expires = self.expires.get(key._access_key_id) or _moto_expiry(key._access_key_id)
            if expires is not None and expires <= self.clock():
                raise Denied("ExpiredToken", "The security token included in the request is expired", 403)
        arn = key.arn
        documents = [_document(p) for p in key.collect_policies()]
        environ["bakery.caller"] = (arn, documents)  # for what AWS services do on the caller's behalf (KMS)
        context = conditions.request_context(
            service,
            action,
            params,
            raw,
            region,
            arn,
            source_ip=environ.get("REMOTE_ADDR", ""),
            user_agent=headers.get("User-Agent", ""),
            temporary=isinstance(key, AssumedRoleAccessKey),
            now=self.clock(),
        )
        for name, resource in wanted:
            if name.lower() == "sts:getcalleridentity":  # needs no permission, on AWS too
                continue
            here = dict(context, **_implied_keys(service, action, name), **self._resource_keys(resource))
            decision = evaluate(documents, name, resource, here)
            if decision != ALLOW:
                if service == "ec2":
                    raise Denied("UnauthorizedOperation",
                                 unauthorized_message(arn, name, resource, decision, here), 403)  # fmt: skip
                raise Denied("AccessDenied", denied_message(arn, name, resource, decision), 403)
        if service == "sts" and action == "AssumeRole" and not (internal and arn.endswith(f":user/{ADMIN_USER}")):
            role = params.get("RoleArn", "")
            trust = self.role_trust(role)
            if trust is not None and not trusts(trust, arn):
                raise Denied("AccessDenied", f"User: {arn} is not authorized to perform: sts:AssumeRole on resource: "
                             f"{role}", 403)  # fmt: skip

    def _resource_keys(self, resource: str) -> dict[str, list[str]]:
        """``aws:ResourceTag/KEY`` and ``ec2:ResourceTag/KEY`` of the EC2 resource a request acts on."""
        parts = resource.split(":", 5)  # arn:aws:ec2:REGION:ACCOUNT:KIND/ID, as ec2_arn() makes it
        resource_id = parts[-1].partition("/")[2]
        if len(parts) != 6 or parts[2] != "ec2" or not resource_id:
            return {}
        keys = {}
        for key, value in self.resource_tags(parts[3], resource_id).items():
            keys[f"aws:ResourceTag/{key}"] = keys[f"ec2:ResourceTag/{key}"] = [value]
        return keys


def _implied_keys(service: str, action: str, name: str) -> dict[str, list[str]]:
    """Keys of an action a request implies: ``ec2:CreateAction`` for tagging at creation (the creating action, as
    in EC2's "tag on create" policies), ``iam:PassedToService`` for the role a launch passes to EC2."""
    if service == "ec2" and name == "ec2:CreateTags" and action != "CreateTags":
        return {"ec2:CreateAction": [action]}
    if service in ("ec2", "autoscaling") and name == "iam:PassRole":  # Auto Scaling passes it on to EC2's launches
        return {"iam:PassedToService": ["ec2.amazonaws.com"]}
    if service == "autoscaling" and name == "iam:CreateServiceLinkedRole":
        return {"iam:AWSServiceName": ["autoscaling.amazonaws.com"]}
    if service == "autoscaling" and name == "ec2:CreateTags":
        return {"ec2:CreateAction": ["RunInstances"]}
    return {}


def utcnow() -> datetime:
    return datetime.now(UTC)


def _moto_expiry(access_key_id: str) -> datetime | None:
    """When moto's STS says a temporary key (AssumeRole by a client) expires."""
    from moto.sts.models import sts_backends

    for role in sts_backends[config.ACCOUNT_ID]["aws"].assumed_roles:
        if role.access_key_id == access_key_id:
            expiry = role.expiration
            return expiry if expiry.tzinfo else expiry.replace(tzinfo=UTC)
    return None


def _document(policy) -> dict:
    """A policy document from what moto keeps (a managed policy, an inline policy dict, or JSON text)."""
    from moto.iam.models import Policy

    if isinstance(policy, Policy):
        text = next(v.document for v in policy.versions if v.is_default)
    elif isinstance(policy, dict):
        text = policy["policy_document"]
    else:
        text = policy
    return json.loads(text) if isinstance(text, str) else text


# ---------------------------------------------------------------- an instance's role credentials
ROLE_CREDENTIALS_SECONDS = 3600
REFRESH_BEFORE = timedelta(minutes=15)


def imds_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class RoleCredentials:
    """The temporary credentials EC2 keeps for one instance's role: 1 h each, new ones 15 min before expiry.

    ``mint()`` returns STS credentials (AccessKeyId, SecretAccessKey, SessionToken); ``clock()`` the time.
    """

    def __init__(self, mint: Callable[[], dict], clock: Callable[[], datetime] = utcnow,
                 seconds: int = ROLE_CREDENTIALS_SECONDS, refresh_before: timedelta = REFRESH_BEFORE):  # fmt: skip
        self.mint, self.clock, self.seconds, self.refresh_before = mint, clock, seconds, refresh_before
        self.current: dict | None = None
        self.lock = threading.Lock()

    def get(self) -> dict:
        """The document IMDS serves at ``iam/security-credentials/ROLE``."""
        with self.lock:
            now = self.clock()
            if self.current is None or self.current["Expiration"] - now <= self.refresh_before:
                minted = self.mint()
                self.current = {
                    "AccessKeyId": minted["AccessKeyId"],
                    "SecretAccessKey": minted["SecretAccessKey"],
                    "Token": minted["SessionToken"],
                    "Expiration": now + timedelta(seconds=self.seconds),
                    "LastUpdated": now,
                }
            cur = self.current
        return {
            "Code": "Success",
            "LastUpdated": imds_time(cur["LastUpdated"]),
            "Type": "AWS-HMAC",
            "AccessKeyId": cur["AccessKeyId"],
            "SecretAccessKey": cur["SecretAccessKey"],
            "Token": cur["Token"],
            "Expiration": imds_time(cur["Expiration"]),
        }

    def expiry(self) -> tuple[str, datetime] | None:
        cur = self.current
        return (cur["AccessKeyId"], cur["Expiration"]) if cur else None


def env_lines(endpoint: str, key: tuple[str, str], guest_endpoint: str | None = None) -> list[str]:
    return [
        f"export AWS_ENDPOINT_URL={endpoint}",
        f"export AWS_ACCESS_KEY_ID={key[0]}",
        f"export AWS_SECRET_ACCESS_KEY={key[1]}",
        f"export AWS_DEFAULT_REGION={config.REGION}",
        f"export AWS_REGION={config.REGION}",
        *([f"export BAKERY_SANDBOX_GUEST_ENDPOINT={guest_endpoint}"] if guest_endpoint else []),
    ]
