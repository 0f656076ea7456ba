"""IAM policy conditions as the sandbox evaluates them (sandbox/conditions.py), against the IAM User Guide's rules:
operators, IfExists, ForAnyValue/ForAllValues, absent keys, key names without case, and the keys a request carries.
Pure functions: no sandbox needed."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from sandbox import conditions, iam

ACCOUNT = "123456789012"
USER_ARN = f"arn:aws:iam::{ACCOUNT}:user/alice"
NOW = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
CONTEXT = {
    "aws:RequestedRegion": ["us-east-1"],
    "aws:SourceIp": ["127.0.0.1"],
    "aws:SecureTransport": ["true"],
    "aws:EpochTime": [str(int(NOW.timestamp()))],
    "aws:CurrentTime": ["2026-11-30T12:00:00Z"],
    "aws:PrincipalArn": [USER_ARN],
    "aws:TagKeys": ["Name", "BakeryFlow"],
    "aws:RequestTag/Name": ["web-1"],
}


def holds(operator: str, key: str, values, context=None) -> bool:
    return conditions.holds({operator: {key: values}}, CONTEXT if context is None else context)


@pytest.mark.parametrize(
    ("operator", "key", "values", "expected"),
    [
        ("StringEquals", "aws:RequestedRegion", "us-east-1", True),
        ("StringEquals", "aws:RequestedRegion", ["eu-west-1", "us-east-1"], True),  # any value of the policy
        ("StringEquals", "aws:RequestedRegion", "US-EAST-1", False),  # values compare with case
        ("StringEquals", "AWS:requestedregion", "us-east-1", True),  # key names without
        ("StringEqualsIgnoreCase", "aws:RequestedRegion", "US-EAST-1", True),
        ("StringNotEquals", "aws:RequestedRegion", ["eu-west-1", "us-west-2"], True),
        ("StringNotEquals", "aws:RequestedRegion", ["eu-west-1", "us-east-1"], False),  # matches one: not "not equal"
        ("StringNotEqualsIgnoreCase", "aws:RequestedRegion", "US-EAST-1", False),
        ("StringLike", "aws:RequestedRegion", "us-*", True),
        ("StringLike", "aws:RequestedRegion", "us-east-?", True),
        ("StringLike", "aws:RequestedRegion", "eu-*", False),
        ("StringEquals", "aws:RequestedRegion", "us-*", False),  # no wildcard in StringEquals
        ("StringNotLike", "aws:RequestedRegion", "eu-*", True),
        ("Bool", "aws:SecureTransport", "true", True),
        ("Bool", "aws:SecureTransport", True, True),  # a JSON boolean in the policy
        ("Bool", "aws:SecureTransport", "false", False),
        ("NumericLessThan", "aws:EpochTime", str(int(NOW.timestamp()) + 1), True),
        ("NumericGreaterThanEquals", "aws:EpochTime", str(int(NOW.timestamp())), True),
        ("NumericGreaterThan", "aws:EpochTime", "not a number", False),
        ("DateLessThan", "aws:CurrentTime", "2027-01-01T00:00:00Z", True),
        ("DateGreaterThan", "aws:CurrentTime", "2027-01-01T00:00:00Z", False),
        ("DateEquals", "aws:CurrentTime", str(int(NOW.timestamp())), True),  # epoch seconds against ISO 8601
        ("DateNotEquals", "aws:CurrentTime", "2026-11-30T12:00:00+00:00", False),
        ("IpAddress", "aws:SourceIp", "127.0.0.0/8", True),
        ("IpAddress", "aws:SourceIp", ["10.0.0.0/8", "203.0.113.7"], False),
        ("NotIpAddress", "aws:SourceIp", "10.0.0.0/8", True),
        ("ArnLike", "aws:PrincipalArn", f"arn:aws:iam::{ACCOUNT}:user/*", True),
        ("ArnEquals", "aws:PrincipalArn", "arn:aws:iam::*:user/alice", True),
        ("ArnLike", "aws:PrincipalArn", f"arn:aws:iam::{ACCOUNT}:role/*", False),
        ("ArnLike", "aws:PrincipalArn", "arn:aws:*", False),  # each of the six parts on its own: too few parts
        ("ArnLike", "aws:PrincipalArn", "*", True),
        ("ArnNotLike", "aws:PrincipalArn", f"arn:aws:iam::{ACCOUNT}:role/*", True),
    ],
)
def test_operators(operator, key, values, expected):
    assert holds(operator, key, values) is expected


@pytest.mark.parametrize(
    ("operator", "expected"),
    [
        ("StringEquals", False),  # positive operator, key absent: false
        ("StringLike", False),
        ("ArnLike", False),
        ("IpAddress", False),
        ("StringNotEquals", True),  # negated operator, key absent: true
        ("StringNotLike", True),
        ("ArnNotLike", True),
        ("NotIpAddress", True),
        ("StringEqualsIfExists", True),  # IfExists: true when absent
        ("NumericLessThanIfExists", True),
        ("ForAllValues:StringEquals", True),  # no values: every one of none matches
        ("ForAnyValue:StringEquals", False),
        ("ForAnyValue:StringNotEquals", False),
    ],
)
def test_a_key_the_request_does_not_have(operator, expected):
    assert holds(operator, "aws:RequestTag/Owner", "team-a") is expected


def test_if_exists_still_tests_a_key_that_is_there():
    assert holds("StringEqualsIfExists", "aws:RequestedRegion", "us-east-1")
    assert not holds("StringEqualsIfExists", "aws:RequestedRegion", "eu-west-1")


def test_null_tests_whether_the_key_is_there():
    assert holds("Null", "aws:RequestTag/Owner", "true")
    assert not holds("Null", "aws:RequestTag/Owner", "false")
    assert holds("Null", "aws:RequestTag/Name", "false")
    assert not holds("Null", "aws:RequestTag/Name", True)


def test_set_qualifiers_over_a_multivalued_key():
    assert holds("ForAllValues:StringEquals", "aws:TagKeys", ["Name", "BakeryFlow", "Owner"])
    assert not holds("ForAllValues:StringEquals", "aws:TagKeys", ["Name"])  # BakeryFlow is not allowed
    assert holds("ForAnyValue:StringEquals", "aws:TagKeys", ["Name"])
    assert not holds("ForAnyValue:StringEquals", "aws:TagKeys", ["Owner"])
    assert holds("ForAnyValue:StringNotEquals", "aws:TagKeys", ["Name"])  # BakeryFlow is not Name
    assert not holds("ForAllValues:StringNotEquals", "aws:TagKeys", ["Name"])
    assert holds("ForAllValues:StringLike", "aws:TagKeys", ["Name", "Bakery*"])


def test_every_operator_and_every_key_of_a_block_must_hold():
    block = {
        "StringEquals": {"aws:RequestedRegion": "us-east-1", "aws:RequestTag/Name": "web-1"},
        "Bool": {"aws:SecureTransport": "true"},
    }
    assert conditions.holds(block, CONTEXT)
    block["StringEquals"]["aws:RequestTag/Name"] = "web-2"
    assert not conditions.holds(block, CONTEXT)


def test_an_operator_iam_does_not_know_never_applies():
    assert not holds("StringSortOf", "aws:RequestedRegion", "us-east-1")
    assert not holds("ForSomeValues:StringEquals", "aws:RequestedRegion", "us-east-1")
    assert not conditions.holds("not a block", CONTEXT)


def test_evaluate_applies_a_statement_only_when_its_condition_holds():
    region_only = {
        "Statement": [
            {"Effect": "Allow", "Action": "ec2:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "*", "Resource": "*",
             "Condition": {"StringNotEquals": {"aws:RequestedRegion": ["us-east-1", "eu-west-1"]}}},
        ]
    }  # fmt: skip
    assert iam.evaluate([region_only], "ec2:RunInstances", "*", CONTEXT) == iam.ALLOW
    west = dict(CONTEXT, **{"aws:RequestedRegion": ["us-west-2"]})
    assert iam.evaluate([region_only], "ec2:RunInstances", "*", west) == iam.EXPLICIT_DENY
    # Without a context every key is absent: the negated condition holds, the deny applies.
    assert iam.evaluate([region_only], "ec2:RunInstances", "*") == iam.EXPLICIT_DENY
    tag_on_create = {"Statement": [{"Effect": "Allow", "Action": "ec2:CreateTags", "Resource": "*",
                                    "Condition": {"StringEquals": {"ec2:CreateAction": "RunInstances"}}}]}  # fmt: skip
    assert iam.evaluate([tag_on_create], "ec2:CreateTags", "*", {"ec2:CreateAction": ["RunInstances"]}) == iam.ALLOW
    assert iam.evaluate([tag_on_create], "ec2:CreateTags", "*", CONTEXT) == iam.IMPLICIT_DENY


def test_request_context_of_a_user_and_of_a_role_session():
    params = {
        "Action": "RunInstances",
        "TagSpecification.1.ResourceType": "instance",
        "TagSpecification.1.Tag.1.Key": "Name",
        "TagSpecification.1.Tag.1.Value": "web-1",
        "TagSpecification.2.Tag.1.Key": "BakeryFlow",
        "TagSpecification.2.Tag.1.Value": "demo",
    }
    ctx = conditions.request_context("ec2", "RunInstances", params, b"", "eu-west-1", USER_ARN, "127.0.0.1",
                                     "Boto3/1.40", temporary=False, now=NOW)  # fmt: skip
    assert ctx["aws:RequestedRegion"] == ctx["ec2:Region"] == ["eu-west-1"]
    assert ctx["aws:PrincipalArn"] == [USER_ARN] and ctx["aws:username"] == ["alice"]
    assert ctx["aws:PrincipalType"] == ["User"] and ctx["aws:PrincipalAccount"] == [ACCOUNT]
    assert sorted(ctx["aws:TagKeys"]) == ["BakeryFlow", "Name"]
    assert ctx["aws:RequestTag/Name"] == ["web-1"] and ctx["aws:RequestTag/BakeryFlow"] == ["demo"]
    assert ctx["aws:CurrentTime"] == ["2026-11-30T12:00:00Z"] and ctx["aws:SourceIp"] == ["127.0.0.1"]
    assert "aws:MultiFactorAuthPresent" not in ctx  # a long-term key carries no MFA key

    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/bakery-web/i-0123"
    ctx = conditions.request_context("dynamodb", "CreateTable", {}, json.dumps({"Tags": [{"Key": "Owner",
                                     "Value": "web"}]}).encode(), "us-east-1", session, "", "", True, NOW)  # fmt: skip
    assert ctx["aws:PrincipalArn"] == [f"arn:aws:iam::{ACCOUNT}:role/bakery-web"]
    assert ctx["aws:PrincipalType"] == ["AssumedRole"] and "aws:username" not in ctx
    assert ctx["aws:MultiFactorAuthPresent"] == ["false"]
    assert ctx["aws:RequestTag/Owner"] == ["web"] and "ec2:Region" not in ctx


def test_tags_of_each_query_service():
    assert conditions.request_tags("ec2", {"Tag.1.Key": "Name", "Tag.1.Value": "x", "ResourceId.1": "i-1"}, b"") == {
        "Name": "x"
    }
    elb = {"Tags.member.1.Key": "BakeryFlow", "Tags.member.1.Value": "demo", "Tags.member.2.Key": "Empty"}
    assert conditions.request_tags("elasticloadbalancing", elb, b"") == {"BakeryFlow": "demo", "Empty": ""}
    assert conditions.request_tags("dynamodb", {}, b"not json") == {}


def test_the_decoded_message_lists_the_request_context():
    context = {"aws:RequestedRegion": ["us-west-2"], "ec2:Region": ["us-west-2"]}
    message = iam.unauthorized_message(USER_ARN, "ec2:RunInstances", "*", iam.EXPLICIT_DENY, context)
    decoded = json.loads(iam.decode_message(message.rsplit(": ", 1)[1]))
    assert decoded["explicitDeny"] is True
    assert decoded["context"]["conditions"]["items"] == [
        {"key": "aws:RequestedRegion", "values": {"items": [{"value": "us-west-2"}]}},
        {"key": "ec2:Region", "values": {"items": [{"value": "us-west-2"}]}},
    ]
