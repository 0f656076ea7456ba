"""The sandbox's record of changing calls (sandbox/core.py ``_audit``): one log line per call, without root or hosts."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sandbox import core
from sandbox.faults import INTERNAL_AGENT, is_internal

SIGNED = {"HTTP_AUTHORIZATION": "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20261130/us-east-1/ec2/aws4_request, x"}


def test_a_changing_call_is_recorded_with_its_resources_outcome_and_caller(caplog):
    caplog.set_level(logging.INFO, logger="sandbox")
    params = {"Action": "TerminateInstances", "InstanceId.1": "i-0b", "InstanceId.2": "i-0a", "DryRun": "false"}
    core._audit("TerminateInstances", "us-east-1", params, ("200 OK", [], b"<ok/>"), SIGNED, False)
    refused = b"<Response><Errors><Error><Code>InvalidTarget</Code><Message>x</Message></Error></Errors></Response>"
    params = {"Action": "DeregisterTargets", "Targets.member.1.Id": "i-0c", "TargetGroupArn": "arn:aws:x"}
    core._audit("DeregisterTargets", "eu-west-1", params, ("400 Bad Request", [], refused), SIGNED, False)
    mine = {"HTTP_USER_AGENT": f"Boto3/1.40 {INTERNAL_AGENT}"}
    core._audit("CreateTags", "us-east-1", {"ResourceId.1": "snap-01"}, ("200 OK", [], b""), mine, is_internal(mine))
    assert [r.getMessage() for r in caplog.records] == [
        "call us-east-1 TerminateInstances i-0a,i-0b -> 200 (by AKIAEXAMPLE)",
        "call eu-west-1 DeregisterTargets i-0c -> 400 InvalidTarget (by AKIAEXAMPLE)",
        "call us-east-1 CreateTags snap-01 -> 200 (by sandbox)",
    ]


def test_a_changing_ssm_call_is_recorded_with_its_parameter_and_json_error_code(caplog):
    caplog.set_level(logging.INFO, logger="sandbox")
    signed = {"HTTP_AUTHORIZATION": SIGNED["HTTP_AUTHORIZATION"].replace("/ec2/", "/ssm/")}
    refused = b'{"__type": "com.amazonaws.ssm#ParameterAlreadyExists", "message": "x"}'
    core._audit("PutParameter", "us-east-1", {}, ("400 Bad Request", [], refused), signed, False, ["/bakery/a"])
    core._audit("DeleteParameter", "eu-west-1", {}, ("200 OK", [], b"{}"), signed, False, ["/bakery/a"])
    assert [r.getMessage() for r in caplog.records] == [
        "call us-east-1 PutParameter /bakery/a -> 400 ParameterAlreadyExists (by AKIAEXAMPLE)",
        "call eu-west-1 DeleteParameter /bakery/a -> 200 (by AKIAEXAMPLE)",
    ]
