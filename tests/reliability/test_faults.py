"""The sandbox's fault injector (sandbox/faults.py) does what it says, and is off and bounded by default.

Runs against the sandbox's API front without hosts (fixture ``api``), which is the same middleware.
"""

from __future__ import annotations

import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError
from conftest import ACCESS_KEY, SECRET_KEY, consistency_window, post, until_listed

from sandbox.faults import parse_chaos

ONE_TRY = Config(retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=10)


def raw_client(api, key=ACCESS_KEY):
    return boto3.client(
        "ec2",
        region_name="us-east-1",
        endpoint_url=api,
        aws_access_key_id=key,
        aws_secret_access_key=SECRET_KEY,
        config=ONE_TRY,
    )


def chaos(api, **spec):
    spec.setdefault("access_key", ACCESS_KEY)
    return post(f"{api}/_sandbox/chaos", spec)


def outcome(call):
    try:
        call()
        return "ok"
    except ClientError as err:
        return f"{err.response['ResponseMetadata']['HTTPStatusCode']} {err.response['Error']['Code']}"
    except (ConnectionClosedError, EndpointConnectionError):
        return "dropped"


def test_off_by_default(api):
    status = post(f"{api}/_sandbox/chaos", method="GET")
    assert status["active"] is False and status["spec"] is None
    ec2 = raw_client(api)
    assert all(outcome(ec2.describe_regions) == "ok" for _attempt in range(20))


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("throttle", {"503 RequestLimitExceeded"}),
        ("error", {"500 InternalError", "503 Unavailable"}),
        ("drop_before", {"dropped"}),
        ("drop_after", {"dropped"}),
    ],
)
def test_each_kind_gives_what_a_client_sees_on_aws(api, kind, expected):
    chaos(api, seed=1, **{kind: 1.0})
    ec2 = raw_client(api)
    seen = {outcome(ec2.describe_regions) for _attempt in range(12)}
    assert seen == expected


def test_error_bodies_are_ec2_error_xml(api):
    import urllib.request

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    chaos(api, seed=3, error=1.0)
    req = AWSRequest("POST", api + "/", data="Action=DescribeRegions&Version=2016-11-15")
    req.headers["Content-Type"] = "application/x-www-form-urlencoded"
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "ec2", "us-east-1").add_auth(req)
    prepared = urllib.request.Request(api + "/", data=req.data.encode(), headers=dict(req.headers), method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(prepared, timeout=10)
    body = err.value.read().decode()
    assert err.value.code in (500, 503)
    assert body.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    assert "<Response><Errors><Error><Code>" in body and "<RequestID>" in body


def test_lost_answer_after_the_action_happened(api, ec2):
    """drop_after: moto acted (the key pair exists) but the client got no answer."""
    chaos(api, seed=1, drop_after=1.0, actions=["CreateKeyPair"])
    assert outcome(lambda: raw_client(api).create_key_pair(KeyName="lost-answer")) == "dropped"
    names = until_listed(lambda: [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]])
    assert names == ["lost-answer"]


def test_dropped_before_moto_nothing_happened(api, ec2):
    chaos(api, seed=1, drop_before=1.0, actions=["CreateKeyPair"])
    assert outcome(lambda: raw_client(api).create_key_pair(KeyName="never-made")) == "dropped"
    time.sleep(consistency_window())  # a key pair made a moment ago would still be left out of the listing
    assert ec2.describe_key_pairs()["KeyPairs"] == []


def test_lost_run_instances_retried_with_its_client_token_makes_one_instance(api, ec2):
    """The retry of a lost RunInstances answer (same ClientToken) gets the same reservation."""
    chaos(api, seed=1, drop_after=1.0, actions=["RunInstances"], max_faults=1)
    image = integration_image(ec2)
    req = {"ImageId": image, "MinCount": 1, "MaxCount": 1, "ClientToken": "reliability-token-1"}
    assert outcome(lambda: raw_client(api).run_instances(**req)) == "dropped"
    again = raw_client(api).run_instances(**req)
    live = until_listed(
        lambda: [i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
    )
    assert live == [again["Instances"][0]["InstanceId"]]


def integration_image(ec2):
    return ec2.describe_images(Owners=["136693071363"])["Images"][0]["ImageId"]


def test_only_the_scoped_access_key_is_faulted(api):
    chaos(api, seed=1, throttle=1.0)
    assert outcome(raw_client(api, key="AKIDSOMEONEELSE").describe_regions) == "ok"
    assert outcome(raw_client(api).describe_regions) == "503 RequestLimitExceeded"


def test_latency_is_added(api):
    chaos(api, seed=1, latency=1.0, latency_ms=400)
    ec2 = raw_client(api)
    start = time.monotonic()
    for _attempt in range(5):
        ec2.describe_regions()
    assert time.monotonic() - start >= 0.4  # five draws of U(0, 0.4 s): at least one is large
    stats = post(f"{api}/_sandbox/chaos", method="GET")["stats"]
    assert stats["kinds"] == {"latency": 5} and stats["latency_seconds"] > 0.4


def test_same_seed_same_sequence(api):
    def sequence(seed):
        chaos(api, seed=seed, throttle=0.3, error=0.2, drop_before=0.1)
        ec2 = raw_client(api)
        return [outcome(ec2.describe_regions) for _attempt in range(30)]

    first = sequence(7)
    assert first == sequence(7)
    assert first != sequence(8)
    assert {"ok", "503 RequestLimitExceeded", "dropped"} <= set(first)


def test_rates_are_kept(api):
    chaos(api, seed=11, throttle=0.2, error=0.05, drop_before=0.025, drop_after=0.025)
    ec2 = raw_client(api)
    for _attempt in range(400):
        outcome(ec2.describe_regions)
    stats = post(f"{api}/_sandbox/chaos", method="GET")["stats"]
    assert stats["requests"] == 400
    assert 50 <= stats["kinds"]["throttle"] <= 110  # 80 expected
    assert 20 <= stats["faults"] <= 160  # 120 expected


def test_bounded_in_count(api):
    chaos(api, seed=1, throttle=1.0, max_faults=3)
    ec2 = raw_client(api)
    assert [outcome(ec2.describe_regions) for _attempt in range(5)] == ["503 RequestLimitExceeded"] * 3 + ["ok"] * 2
    status = post(f"{api}/_sandbox/chaos", method="GET")
    assert status["active"] is False and status["stats"]["faults"] == 3


def test_bounded_in_time(api):
    chaos(api, seed=1, throttle=1.0, seconds=1)
    ec2 = raw_client(api)
    assert outcome(ec2.describe_regions) == "503 RequestLimitExceeded"
    time.sleep(1.1)
    assert outcome(ec2.describe_regions) == "ok"
    assert post(f"{api}/_sandbox/chaos", method="GET")["active"] is False


def test_delete_turns_it_off(api):
    chaos(api, seed=1, throttle=1.0)
    post(f"{api}/_sandbox/chaos", method="DELETE")
    assert outcome(raw_client(api).describe_regions) == "ok"


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ({"throttle": 1.5}, "throttle: 1.5"),
        ({"throttle": 0.6, "error": 0.6}, "add up to more than 1"),
        ({"max_faults": 0}, "max_faults: 0"),
        ({"max_faults": 10**6}, "max_faults: 1000000"),
        ({"seconds": 86400}, "seconds: 86400"),
        ({"latency_ms": 60000}, "latency_ms: 60000"),
        ({"thrtotle": 0.2}, "thrtotle"),
    ],
)
def test_bad_specs_are_refused_naming_the_value(api, spec, named):
    with pytest.raises(ValueError, match=named.replace("(", r"\(")):
        parse_chaos(spec)
    req_error = None
    try:
        post(f"{api}/_sandbox/chaos", spec)
    except Exception as err:  # urllib.error.HTTPError
        req_error = err.read().decode()
    assert req_error and named in req_error
    assert post(f"{api}/_sandbox/chaos", method="GET")["active"] is False


def test_targeted_faults_still_work(api):
    post(f"{api}/_sandbox/faults", {"action": "DescribeRegions", "code": "RequestLimitExceeded", "count": 2})
    ec2 = raw_client(api)
    assert [outcome(ec2.describe_regions) for _attempt in range(3)] == ["503 RequestLimitExceeded"] * 2 + ["ok"]
