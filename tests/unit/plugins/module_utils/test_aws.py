from __future__ import annotations

import boto3
import pytest
from ansible_collections.bakery.ec2.plugins.module_utils import _aws
from botocore.stub import Stubber


def test_tag_round_trip_and_specifications():
    tags = {"b": "2", "a": 1, "Name": "web"}
    assert _aws.dict_to_tags(tags) == [
        {"Key": "Name", "Value": "web"},
        {"Key": "a", "Value": "1"},
        {"Key": "b", "Value": "2"},
    ]
    assert _aws.tags_to_dict(_aws.dict_to_tags(tags)) == {"Name": "web", "a": "1", "b": "2"}
    specs = _aws.tag_specifications({"x": "y"}, "instance", "volume")
    assert [s["ResourceType"] for s in specs] == ["instance", "volume"]
    assert _aws.tag_specifications({}, "instance") == []


@pytest.mark.parametrize(
    ("current", "desired", "purge", "expected"),
    [
        ({"a": "1", "b": "2"}, {"a": "1"}, True, ({}, ["b"])),
        ({"a": "1", "b": "2"}, {"a": "1"}, False, ({}, [])),
        ({"a": "1"}, {"a": "2", "c": "3"}, True, ({"a": "2", "c": "3"}, [])),
        ({"Name": "x", "aws:cloudformation:stack": "s"}, {}, True, ({}, ["Name"])),
    ],
)
def test_compare_tags(current, desired, purge, expected):
    assert _aws.compare_tags(current, desired, purge) == expected


def test_compare_tags_keeps_listed_keys():
    assert _aws.compare_tags({"Name": "web", "x": "1"}, {}, True, keep=("Name",)) == ({}, ["x"])


@pytest.mark.parametrize(
    ("tags", "fragment"),
    [
        ({"aws:foo": "x"}, "reserved prefix 'aws:'"),
        ({"k" * 129: "x"}, "1 to 128 characters"),
        ({"k": "v" * 257}, "longer than 256"),
        ({str(i): "v" for i in range(51)}, "at most 50"),
    ],
)
def test_validate_tags(tags, fragment):
    assert fragment in _aws.validate_tags(tags)


def test_validate_tags_accepts_good_tags():
    assert _aws.validate_tags({"Name": "web", "Env": "prod"}) is None


def test_to_snake_converts_keys_and_tags():
    data = {
        "ImageId": "ami-1",
        "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}],
        "Tags": [{"Key": "Name", "Value": "x"}],
        "ResponseMetadata": {},
    }
    assert _aws.to_snake(data) == {
        "image_id": "ami-1",
        "block_device_mappings": [{"device_name": "/dev/xvda", "ebs": {"volume_size": 8}}],
        "tags": {"Name": "x"},
    }
    assert _aws.snake("DNSName") == "dns_name"
    assert _aws.snake("PrivateIpAddress") == "private_ip_address"


def test_backoff_is_jittered_and_capped():
    delays = list(_aws.backoff_delays(10, base=0.5, cap=20.0, rng=lambda: 1.0))
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 20.0, 20.0, 20.0]
    assert list(_aws.backoff_delays(3, rng=lambda: 0.0)) == [0.0, 0.0]


def test_wait_until_returns_when_state_is_reached(slept):
    states = iter(["pending", "pending", "running"])
    assert _aws.wait_until(lambda: next(states), lambda s: s == "running", 60, "running") == "running"
    assert slept == [0.25, 0.4]


def test_wait_until_times_out_with_last_state():
    now = [0.0]

    def clock():
        now[0] += 1.0
        return now[0]

    with pytest.raises(_aws.WaitTimeout) as caught:
        _aws.wait_until(lambda: "pending", lambda s: False, 5, "instances running", clock=clock)
    assert "pending" in str(caught.value) and "5s" in str(caught.value)


def test_wait_backoff_never_exceeds_max_delay(slept):
    states = iter(["p"] * 20 + ["ok"])
    _aws.wait_until(lambda: next(states), lambda s: s == "ok", 600, "ok", max_delay=2.0)
    assert max(slept) == 2.0


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"region": None, "access_key": "a", "secret_key": "b"}, "NoRegion"),
        ({"region": "moon-1", "access_key": "a", "secret_key": "b"}, "InvalidRegion"),
        ({"region": "us-east-1", "profile": "does-not-exist-anywhere"}, "ProfileNotFound"),
        ({"region": "us-east-1", "access_key": "a", "secret_key": "b", "endpoint_url": "not a url"}, "InvalidEndpoint"),
    ],
)
def test_build_client_reports_bad_settings(monkeypatch, tmp_path, params, code):
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    with pytest.raises(_aws.AwsError) as caught:
        _aws.build_client(params)
    assert caught.value.code == code


def test_build_client_without_credentials(monkeypatch, tmp_path):
    for var in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(_aws.AwsError) as caught:
        _aws.build_client({"region": "us-east-1"})
    assert caught.value.code == "NoCredentials"


def test_check_id():
    assert _aws.check_id("image", "ami-0123456789abcdef0", "image_id") is None
    assert "not an AMI ID" in _aws.check_id("image", "ami-XYZ", "image_id")
    assert "'i-1'" in _aws.check_id("instance", "i-1", "instance_id")


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
    with pytest.raises(_aws.AwsError) as caught:
        _aws.AwsClient(client).call("describe_images")
    assert len(calls) == 1
    assert str(caught.value) == (
        "DescribeImages: InvalidResponse: the endpoint http://127.0.0.1:9/not-ec2/ did not answer like EC2"
    )


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"secret_key": "s"}, "secret_key (AWS_SECRET_ACCESS_KEY) is set but access_key"),
        ({"access_key": "a"}, "access_key (AWS_ACCESS_KEY_ID) is set but secret_key"),
        ({"session_token": "t"}, "session_token (AWS_SESSION_TOKEN) is set without access_key"),
    ],
)
def test_incomplete_keys_are_refused_before_botocore_sees_them(params, named):
    with pytest.raises(_aws.AwsError) as caught:
        _aws.connection_params_from(params.get)
    assert caught.value.code == "PartialCredentials"
    assert named in str(caught.value)
    assert "s" not in {caught.value.message} and "'t'" not in caught.value.message


def test_chunks_hold_at_most_200_values():
    assert [len(part) for part in _aws.chunks(range(405))] == [200, 200, 5]
    assert list(_aws.chunks([])) == []
    assert list(_aws.chunks("abc", 2)) == [["a", "b"], ["c"]]


def test_long_filters_are_split_into_sets_of_at_most_200_values_that_match_the_same():
    running = {"Name": "instance-state-name", "Values": ["running"]}
    assert _aws.split_filters([running]) == [[running]]
    assert _aws.split_filters([]) == [[]]
    ids = [f"i-{n:017x}" for n in range(450)]
    sets = _aws.split_filters([{"Name": "instance-id", "Values": ids}, running])
    assert [[len(f["Values"]) for f in s] for s in sets] == [[200, 1], [200, 1], [50, 1]]
    assert [v for s in sets for v in s[0]["Values"]] == ids  # each value once, in order
    assert all(s[1] == running for s in sets)  # the short filter is ANDed with every part
    both = _aws.split_filters([{"Name": "a", "Values": list(range(201))}, {"Name": "b", "Values": list(range(300))}])
    assert [[len(f["Values"]) for f in s] for s in both] == [[200, 200], [200, 100], [1, 200], [1, 100]]


def flaky_ec2(*codes):
    """An AwsClient whose AuthorizeSecurityGroupIngress answers the error ``codes`` in turn, then succeeds."""
    client = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="AKIATEST", aws_secret_access_key="x")
    stubber = Stubber(client)
    for code in codes:
        stubber.add_client_error("authorize_security_group_ingress", code, code)
    stubber.add_response("authorize_security_group_ingress", {"Return": True})
    stubber.activate()
    return _aws.AwsClient(client), stubber


def test_call_created_retries_only_the_given_not_found_codes(slept):
    client, stubber = flaky_ec2("InvalidGroup.NotFound", "InvalidGroup.NotFound")
    reply = client.call_created("authorize_security_group_ingress", ("InvalidGroup.NotFound",), GroupId="sg-1")
    assert reply["Return"] is True
    assert len(slept) == 2
    stubber.assert_no_pending_responses()
    client, _stubber = flaky_ec2("InvalidKeyPair.NotFound")
    with pytest.raises(_aws.AwsError, match=r"InvalidKeyPair\.NotFound"):
        client.call_created("authorize_security_group_ingress", ("InvalidGroup.NotFound",), GroupId="sg-1")
    client, _stubber = flaky_ec2("InvalidGroup.NotFound")
    with pytest.raises(_aws.AwsError, match=r"InvalidGroup\.NotFound"):
        client.call("authorize_security_group_ingress", GroupId="sg-1")


def test_call_created_gives_up_after_its_bound_of_at_least_60_seconds(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(_aws.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(_aws.AwsClient, "sleep", staticmethod(lambda delay: now.__setitem__(0, now[0] + delay)))
    client, stubber = flaky_ec2(*["InvalidGroup.NotFound"] * 300)
    with pytest.raises(_aws.AwsError, match=r"InvalidGroup\.NotFound"):
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

    monkeypatch.setattr(_aws.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(_aws.AwsClient, "sleep", staticmethod(sleep))
    backoff = _aws.backoff_delays
    monkeypatch.setattr(_aws, "backoff_delays", lambda *a, **kw: backoff(*a, **dict(kw, rng=lambda: 1.0)))
    client, stubber = flaky_ec2(*["InvalidGroup.NotFound"] * 6)
    reply = client.call_created("authorize_security_group_ingress", ("InvalidGroup.NotFound",), GroupId="sg-1")
    assert reply["Return"] is True
    assert slept == [0.5, 1.0, 2.0, 2.0, 2.0, 2.0]
    stubber.assert_no_pending_responses()


def test_changes_record_each_change_and_make_it_only_outside_check_mode(ec2_client):
    client, stub = ec2_client
    ids = [f"i-{n:08x}" for n in range(1, 206)]
    stub.add_response("terminate_instances", {}, {"InstanceIds": ids[:200]})
    stub.add_response("terminate_instances", {}, {"InstanceIds": ids[200:]})
    stub.add_client_error("create_tags", "InvalidInstanceID.NotFound", "not yet")  # a new instance, not visible yet
    stub.add_response("create_tags", {}, {"Resources": ["i-00000001"], "Tags": [{"Key": "a", "Value": "b"}]})
    changes = _aws.Changes(False, client)
    assert changes.act("terminate 205", "terminate_instances", InstanceIds=ids) is None  # in chunks of 200
    changes.act(
        "tag",
        "create_tags",
        ("InvalidInstanceID.NotFound",),
        Resources=["i-00000001"],
        Tags=[{"Key": "a", "Value": "b"}],
    )
    assert changes.will("something done by hand") is True
    assert changes.actions == ["terminate 205", "tag", "something done by hand"]
    planned = _aws.Changes(True, client)  # the Stubber fails the test on any call
    assert planned.act("terminate 205", "terminate_instances", InstanceIds=ids) is None
    assert planned.will("something") is False
    assert planned.actions == ["terminate 205", "something"]


def test_not_found_gives_none_only_for_the_codes_named(ec2_client):
    client, stub = ec2_client
    stub.add_client_error("describe_key_pairs", "InvalidKeyPair.NotFound", "no such key")
    assert _aws.not_found(lambda: client.call("describe_key_pairs"), ("InvalidKeyPair.NotFound",)) is None
    stub.add_client_error("describe_key_pairs", "UnauthorizedOperation", "denied")
    with pytest.raises(_aws.AwsError, match="UnauthorizedOperation"):
        _aws.not_found(lambda: client.call("describe_key_pairs"), ("InvalidKeyPair.NotFound",))
    stub.add_response("describe_key_pairs", {"KeyPairs": []})
    assert _aws.not_found(lambda: client.call("describe_key_pairs")["KeyPairs"], ("InvalidKeyPair.NotFound",)) == []
