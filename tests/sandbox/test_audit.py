"""The sandbox's record of changing calls (sandbox/middleware.py ``audit``): a log line per call, no root or hosts."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sandbox import middleware
from sandbox.faults import INTERNAL_AGENT, is_internal
from sandbox.services.base import Service, parse

SIGNED = {"HTTP_AUTHORIZATION": "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20261130/us-east-1/ec2/aws4_request, x"}


def ids(params: dict) -> list[str]:
    """The resources a service names for a call's audit line (EC2 and ELB: the EC2 IDs among its parameters)."""
    environ = {**SIGNED, "REQUEST_METHOD": "POST"}
    return Service(None, None).audit_ids(parse(environ, "&".join(f"{k}={v}" for k, v in params.items()).encode()))


def test_a_changing_call_is_recorded_with_its_resources_outcome_and_caller(caplog):
    caplog.set_level(logging.INFO, logger="sandbox")
    params = {"Action": "TerminateInstances", "InstanceId.1": "i-0b", "InstanceId.2": "i-0a", "DryRun": "false"}
    middleware.audit("TerminateInstances", "us-east-1", params, ("200 OK", [], b"<ok/>"), SIGNED, False, ids(params))
    refused = b"<Response><Errors><Error><Code>InvalidTarget</Code><Message>x</Message></Error></Errors></Response>"
    params = {"Action": "DeregisterTargets", "Targets.member.1.Id": "i-0c", "TargetGroupArn": "arn:aws:x"}
    answer = ("400 Bad Request", [], refused)
    middleware.audit("DeregisterTargets", "eu-west-1", params, answer, SIGNED, False, ids(params))
    mine = {"HTTP_USER_AGENT": f"Boto3/1.40 {INTERNAL_AGENT}"}
    tags = {"ResourceId.1": "snap-01"}
    middleware.audit("CreateTags", "us-east-1", tags, ("200 OK", [], b""), mine, is_internal(mine), ids(tags))
    assert [r.getMessage() for r in caplog.records] == [
        "call us-east-1 TerminateInstances i-0a,i-0b -> 200 (by AKIAEXAMPLE)",
        "call eu-west-1 DeregisterTargets i-0c -> 400 InvalidTarget (by AKIAEXAMPLE)",
        "call us-east-1 CreateTags snap-01 -> 200 (by sandbox)",
    ]


def test_a_changing_ssm_call_is_recorded_with_its_parameter_and_json_error_code(caplog):
    caplog.set_level(logging.INFO, logger="sandbox")
    signed = {"HTTP_AUTHORIZATION": SIGNED["HTTP_AUTHORIZATION"].replace("/ec2/", "/ssm/")}
    refused = b'{"__type": "com.amazonaws.ssm#ParameterAlreadyExists", "message": "x"}'
    middleware.audit("PutParameter", "us-east-1", {}, ("400 Bad Request", [], refused), signed, False, ["/bakery/a"])
    middleware.audit("DeleteParameter", "eu-west-1", {}, ("200 OK", [], b"{}"), signed, False, ["/bakery/a"])
    assert [r.getMessage() for r in caplog.records] == [
        "call us-east-1 PutParameter /bakery/a -> 400 ParameterAlreadyExists (by AKIAEXAMPLE)",
        "call eu-west-1 DeleteParameter /bakery/a -> 200 (by AKIAEXAMPLE)",
    ]
