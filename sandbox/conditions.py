"""IAM policy conditions: a statement's ``Condition`` block against the request's context, as IAM evaluates it.

Operators: every one IAM documents (String*, Numeric*, Date*, Bool, BinaryEquals, IpAddress/NotIpAddress, Arn*,
Null), with the ``IfExists`` suffix and the ``ForAnyValue:`` / ``ForAllValues:`` set qualifiers. Semantics follow
the IAM User Guide ("IAM JSON policy elements: Condition operators", "Multivalued context keys"):

- several operators in a block, and several keys under one operator, must all hold; several values for one key
  match when any does (for a negated operator: when none does);
- a key the request's context does not have: false for a positive operator, true for a negated one (``StringNotEquals``,
  ``ArnNotLike``, ``NotIpAddress``, ...), true with ``...IfExists``, true for ``ForAllValues:``, false for
  ``ForAnyValue:``; ``Null`` tests whether the key is there;
- condition key names compare without case, values with case (except ``...IgnoreCase``); ``*`` and ``?`` are
  wildcards in ``StringLike``/``StringNotLike`` and in each of an ARN's six parts for the ``Arn`` operators.

:func:`request_context` gives the keys a request to the sandbox carries (global ``aws:`` keys, the request's tags,
and the service keys listed there); any other key is absent, as a key that does not apply to a request is on AWS.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
from datetime import UTC, datetime

from . import config

Context = dict[str, list[str]]  # condition key (as IAM spells it) -> its values


def _text(value) -> str:
    """A policy or context value as IAM compares it: JSON booleans as ``true``/``false``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@functools.lru_cache(maxsize=4096)
def wildcard(pattern: str, fold: bool = False) -> re.Pattern:
    """IAM's wildcards as a regular expression: ``*`` any run of characters (``/`` and ``:`` included), ``?`` one
    character; ``fold``: without case (actions). Used for policies' actions and resources too (iam.py)."""
    rx = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.compile(f"^{rx}$", re.DOTALL | (re.IGNORECASE if fold else 0))


def _glob(pattern: str, value: str) -> bool:
    return wildcard(pattern).match(value) is not None


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _date(value: str) -> datetime | None:
    """ISO 8601 (``2026-11-30T12:00:00Z``, a date alone) or seconds since the epoch."""
    number = _number(value)
    if number is not None:
        return datetime.fromtimestamp(number, UTC)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _compare(convert, test):
    def compare(have: str, want: str) -> bool:
        a, b = convert(have), convert(want)
        return a is not None and b is not None and test(a, b)

    return compare


def _ip(have: str, want: str) -> bool:
    try:
        return ipaddress.ip_address(have) in ipaddress.ip_network(want, strict=False)
    except ValueError:
        return False


def _arn(have: str, want: str) -> bool:
    """Each of the six colon-separated parts matched on its own (the last one keeps its colons); ``*`` alone is
    any ARN."""
    if want == "*":
        return True
    a, b = have.split(":", 5), want.split(":", 5)
    return len(a) == len(b) == 6 and all(_glob(p, v) for p, v in zip(b, a, strict=True))


_EQ, _LT, _LE = (lambda a, b: a == b), (lambda a, b: a < b), (lambda a, b: a <= b)
_GT, _GE = (lambda a, b: a > b), (lambda a, b: a >= b)
# operator -> (does one context value match one policy value, is the operator negated)
OPERATORS = {
    "StringEquals": (lambda h, w: h == w, False),
    "StringNotEquals": (lambda h, w: h == w, True),
    "StringEqualsIgnoreCase": (lambda h, w: h.casefold() == w.casefold(), False),
    "StringNotEqualsIgnoreCase": (lambda h, w: h.casefold() == w.casefold(), True),
    "StringLike": (lambda h, w: _glob(w, h), False),
    "StringNotLike": (lambda h, w: _glob(w, h), True),
    "NumericEquals": (_compare(_number, _EQ), False),
    "NumericNotEquals": (_compare(_number, _EQ), True),
    "NumericLessThan": (_compare(_number, _LT), False),
    "NumericLessThanEquals": (_compare(_number, _LE), False),
    "NumericGreaterThan": (_compare(_number, _GT), False),
    "NumericGreaterThanEquals": (_compare(_number, _GE), False),
    "DateEquals": (_compare(_date, _EQ), False),
    "DateNotEquals": (_compare(_date, _EQ), True),
    "DateLessThan": (_compare(_date, _LT), False),
    "DateLessThanEquals": (_compare(_date, _LE), False),
    "DateGreaterThan": (_compare(_date, _GT), False),
    "DateGreaterThanEquals": (_compare(_date, _GE), False),
    "Bool": (lambda h, w: h.lower() == w.lower(), False),
    "BinaryEquals": (lambda h, w: h == w, False),
    "IpAddress": (_ip, False),
    "NotIpAddress": (_ip, True),
    "ArnEquals": (_arn, False),
    "ArnLike": (_arn, False),
    "ArnNotEquals": (_arn, True),
    "ArnNotLike": (_arn, True),
}


def holds(block: dict, context: Context) -> bool:
    """Whether a statement's whole ``Condition`` block holds for the request (every operator, every key)."""
    if not isinstance(block, dict):
        return False
    by_name = {key.lower(): values for key, values in context.items()}  # key names compare without case
    for operator, keys in block.items():
        if not isinstance(keys, dict):
            return False
        for key, wanted in keys.items():
            values = wanted if isinstance(wanted, list) else [wanted]
            if not _one(operator, by_name.get(key.lower()), [_text(v) for v in values]):
                return False
    return True


def _one(operator: str, have: list[str] | None, wanted: list[str]) -> bool:
    qualifier, _, name = operator.rpartition(":")
    if_exists = name.endswith("IfExists") and name != "IfExists"
    name = name[: -len("IfExists")] if if_exists else name
    present = bool(have)
    if name == "Null":  # "true": the key must be absent; "false": present
        return any(w.lower() == ("false" if present else "true") for w in wanted)
    if name not in OPERATORS or qualifier not in ("", "ForAnyValue", "ForAllValues"):
        return False  # IAM refuses such a policy when it is written; never a reason to allow or deny here
    match, negated = OPERATORS[name]

    def ok(value: str) -> bool:
        found = any(match(value, w) for w in wanted)
        return not found if negated else found

    if not present:
        if if_exists or qualifier == "ForAllValues":
            return True
        return negated and qualifier != "ForAnyValue"
    if qualifier == "ForAllValues":
        return all(ok(v) for v in have)
    if qualifier == "ForAnyValue" or not negated:
        return any(ok(v) for v in have)
    return all(ok(v) for v in have)  # negated, no qualifier: no value of the key matches


# ---------------------------------------------------------------- what a request carries
_QUERY_TAG = re.compile(r"^(?P<prefix>(?:.+\.)?Tags?\.(?:member\.)?\d+\.)Key$")


def request_tags(service: str, params: dict, body: bytes) -> dict[str, str]:
    """The tags a request sets (``aws:RequestTag/K``, ``aws:TagKeys``): EC2's ``TagSpecification.N.Tag.M`` and
    ``Tag.N`` (CreateTags), ELBv2's, IAM's and SSM's ``Tags.member.N``, DynamoDB's ``Tags`` list."""
    tags: dict[str, str] = {}
    if service == "dynamodb":
        if b'"Tags"' not in (body or b""):  # most requests (items, queries) carry none: no second parse of the body
            return tags
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            return tags
        for tag in doc.get("Tags", []) if isinstance(doc, dict) else []:
            if isinstance(tag, dict) and "Key" in tag:
                tags[str(tag["Key"])] = str(tag.get("Value", ""))
        return tags
    for name, key in params.items():
        m = _QUERY_TAG.match(name)
        if m and isinstance(key, str):
            tags[key] = str(params.get(m.group("prefix") + "Value", ""))
    return tags


def principal_keys(arn: str) -> Context:
    """``aws:PrincipalArn`` (a role session's role), ``aws:PrincipalAccount``, ``aws:PrincipalType``,
    ``aws:username`` (users only)."""
    account = arn.split(":")[4] if arn.count(":") >= 5 else config.ACCOUNT_ID
    resource = arn.split(":", 5)[-1]
    if resource.startswith("assumed-role/"):
        role = resource.split("/")[1]
        return {
            "aws:PrincipalArn": [f"arn:aws:iam::{account}:role/{role}"],
            "aws:PrincipalAccount": [account],
            "aws:PrincipalType": ["AssumedRole"],
        }
    keys = {"aws:PrincipalArn": [arn], "aws:PrincipalAccount": [account], "aws:PrincipalType": ["User"]}
    if resource.startswith("user/"):
        keys["aws:username"] = [resource.rsplit("/", 1)[-1]]
    return keys


def request_context(
    service: str,
    action: str,
    params: dict,
    body: bytes,
    region: str,
    principal_arn: str,
    source_ip: str,
    user_agent: str,
    temporary: bool,
    now: datetime,
) -> Context:
    """The condition keys of one request. ``region``: the region it was signed for."""
    context: Context = {
        "aws:RequestedRegion": [region],
        "aws:CurrentTime": [now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")],
        "aws:EpochTime": [str(int(now.timestamp()))],
        # The sandbox answers plain HTTP on loopback in the place of AWS's HTTPS-only endpoints.
        "aws:SecureTransport": ["true"],
        "aws:ViaAWSService": ["false"],
        "aws:PrincipalIsAWSService": ["false"],
        **principal_keys(principal_arn),
    }
    if source_ip:
        context["aws:SourceIp"] = [source_ip]
    if user_agent:
        context["aws:UserAgent"] = [user_agent]
    if temporary:  # a long-term key's request has no MFA key at all
        context["aws:MultiFactorAuthPresent"] = ["false"]
    tags = request_tags(service, params, body)
    if tags:
        context["aws:TagKeys"] = list(tags)
        for key, value in tags.items():
            context[f"aws:RequestTag/{key}"] = [value]
    if service == "ec2":
        context["ec2:Region"] = [region]
    if service == "iam" and action == "CreateServiceLinkedRole" and params.get("AWSServiceName"):
        context["iam:AWSServiceName"] = [params["AWSServiceName"]]
    return context


def decoded_items(context: Context) -> list[dict]:
    """The context as ``sts:DecodeAuthorizationMessage`` shows it (``context.conditions.items``)."""
    return [
        {"key": key, "values": {"items": [{"value": v} for v in values]}} for key, values in sorted(context.items())
    ]
