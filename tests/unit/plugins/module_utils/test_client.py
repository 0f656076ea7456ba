"""AwsClient: retries with backoff, resources not shown yet, an endpoint that is not EC2."""

from __future__ import annotations

import boto3
import pytest
from ansible_collections.bakery.ec2.plugins.module_utils import _client, _errors
from botocore.stub import Stubber


def test_backoff_is_jittered_and_capped():
    delays = list(_client.backoff_delays(10, base=0.5, cap=20.0, rng=lambda: 1.0))
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 20.0, 20.0, 20.0]
    assert list(_client.backoff_delays(3, rng=lambda: 0.0)) == [0.0, 0.0]


def test_an_endpoint_that_is_not_ec2_fails_in_one_line_naming_it(monkeypatch):
    """A web page where EC2 XML was expected (wrong endpoint_url) is not retried nor echoed."""
    import boto3
    from botocore.parsers import ResponseParserError

    client = boto3.client(
        "ec2",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9/not-ec2/",
        aws_access_key_id="a",
        aws_secret_access_key="b",
    )
    calls = []

    def describe_images(**kw):
        calls.append(kw)
        raise ResponseParserError("Unable to parse response, invalid XML received: b'<html>" + "x" * 5000 + "'")

    monkeypatch.setattr(client, "describe_images", describe_images)
    with pytest.raises(_errors.AwsError) as caught:
        _client.AwsClient(client).call("describe_images")
    assert len(calls) == 1
    assert str(caught.value) == (
        "DescribeImages: InvalidResponse: the endpoint http://127.0.0.1:9/not-ec2/ did not answer like EC2"
    )


def flaky_ec2(*codes):
    """An AwsClient whose AuthorizeSecurityGroupIngress answers the error ``codes`` in turn, then succeeds."""
    client = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="AKIATEST", aws_secret_access_key="x")
    stubber = Stubber(client)
    for code in codes:
        stubber.add_client_error("authorize_security_group_ingress", code, code)
    stubber.add_response("authorize_security_group_ingress", {"Return": True})
    stubber.activate()
    return _client.AwsClient(client), stubber


def test_call_created_retries_only_the_given_not_found_codes(slept):
    client, stubber = flaky_ec2("InvalidGroup.NotFound", "InvalidGroup.NotFound")
    reply = client.call_created("authorize_security_group_ingress", ("InvalidGroup.NotFound",), GroupId="sg-1")
    assert reply["Return"] is True
    assert len(slept) == 2
    stubber.assert_no_pending_responses()
    client, _stubber = flaky_ec2("InvalidKeyPair.NotFound")
    with pytest.raises(_errors.AwsError, match=r"InvalidKeyPair\.NotFound"):
        client.call_created("authorize_security_group_ingress", ("InvalidGroup.NotFound",), GroupId="sg-1")
    client, _stubber = flaky_ec2("InvalidGroup.NotFound")
    with pytest.raises(_errors.AwsError, match=r"InvalidGroup\.NotFound"):
        client.call("authorize_security_group_ingress", GroupId="sg-1")


def test_call_created_gives_up_after_its_bound_of_at_least_60_seconds(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(_client.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(_client.AwsClient, "sleep", staticmethod(lambda delay: now.__setitem__(0, now[0] + delay)))
    client, stubber = flaky_ec2(*["InvalidGroup.NotFound"] * 300)
    with pytest.raises(_errors.AwsError, match=r"InvalidGroup\.NotFound"):
        client.call_created("authorize_security_group_ingress", ("InvalidGroup.NotFound",), timeout=10, GroupId="sg-1")
    assert now[0] == 60.0
    calls = 301 - len(stubber._queue)
    assert 8 < calls < 100  # backoff, not a busy loop


def test_call_created_asks_again_at_most_two_seconds_apart(monkeypatch):
    """A new resource that EC2 shows late is seen within 2 s of it (the backoff without jitter: 0.5, 1, then 2 s)."""
    now, slept = [0.0], []

    def sleep(delay):
        slept.append(delay)
        now[0] += delay

    monkeypatch.setattr(_client.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(_client.AwsClient, "sleep", staticmethod(sleep))
    backoff = _client.backoff_delays
    monkeypatch.setattr(_client, "backoff_delays", lambda *a, **kw: backoff(*a, **dict(kw, rng=lambda: 1.0)))
    client, stubber = flaky_ec2(*["InvalidGroup.NotFound"] * 6)
    reply = client.call_created("authorize_security_group_ingress", ("InvalidGroup.NotFound",), GroupId="sg-1")
    assert reply["Return"] is True
    assert slept == [0.5, 1.0, 2.0, 2.0, 2.0, 2.0]
    stubber.assert_no_pending_responses()
