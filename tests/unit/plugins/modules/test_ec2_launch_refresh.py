"""ec2_launch's target_groups and instance_refresh against stubbed EC2 and ELBv2 (botocore Stubber).

Each test stubs every call in order, so it also shows which calls the module makes and when: old instances are
deregistered and drained before they are terminated, new ones are healthy before old ones go.
"""

from __future__ import annotations

import datetime

import pytest
from ansible_collections.bakery.ec2.plugins.module_utils import _client, _instances
from ansible_collections.bakery.ec2.plugins.modules import ec2_launch
from ec2_fakes import AMI, LIVE, SUBNET, T0, VPC, id_filter, instance, reservations

NEW_AMI = "ami-0bbbbbbbbbbbbbbb0"
TG_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-tg/0123456789abcdef"
T1 = T0 + datetime.timedelta(hours=1)
REFRESH = {"name": "web", "image_id": NEW_AMI, "target_groups": ["web-tg"], "instance_refresh": {}}


@pytest.fixture
def elb(stubbed_clients):
    return stubbed_clients(service="elbv2")[1]


@pytest.fixture
def clock(monkeypatch):
    """Waits run on a fake clock that their sleeps advance."""
    now = [0.0]
    monkeypatch.setattr(_client.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(_client.AwsClient, "sleep", staticmethod(lambda delay: now.__setitem__(0, now[0] + delay)))
    return now


def old(iid, **extra):
    return instance(iid, **extra)


def new(iid, state="running"):
    return instance(iid, state, launched=T1, ImageId=NEW_AMI)


def stub_group(ec2, *instances):
    filters = [{"Name": "tag:Name", "Values": ["web"]}, {"Name": "instance-state-name", "Values": LIVE}]
    ec2.add_response("describe_instances", reservations(*instances), {"Filters": filters})


def stub_image_and_type(ec2, image_id=NEW_AMI):
    ec2.add_response(
        "describe_images",
        {"Images": [{"ImageId": image_id, "Architecture": "x86_64", "State": "available"}]},
        {"ImageIds": [image_id]},
    )
    ec2.add_response(
        "describe_instance_types",
        {"InstanceTypes": [{"InstanceType": "t3.micro", "ProcessorInfo": {"SupportedArchitectures": ["x86_64"]}}]},
        {"InstanceTypes": ["t3.micro"]},
    )


def stub_replacement_subnets(ec2):
    """Where replacements go, read before anything changes: the zones offering the type, the default subnets."""
    ec2.add_response(
        "describe_instance_type_offerings",
        {
            "InstanceTypeOfferings": [
                {"InstanceType": "t3.micro", "LocationType": "availability-zone", "Location": "us-east-1a"}
            ]
        },
        {"LocationType": "availability-zone", "Filters": [{"Name": "instance-type", "Values": ["t3.micro"]}]},
    )
    ec2.add_response(
        "describe_subnets",
        {"Subnets": [{"SubnetId": SUBNET, "VpcId": VPC, "AvailabilityZone": "us-east-1a"}]},
        {"Filters": [{"Name": "default-for-az", "Values": ["true"]}]},
    )


def stub_target_group(elb, ref="web-tg"):
    key = "TargetGroupArns" if ref.startswith("arn:") else "Names"
    elb.add_response(
        "describe_target_groups",
        {
            "TargetGroups": [
                {
                    "TargetGroupArn": TG_ARN,
                    "TargetGroupName": "web-tg",
                    "Protocol": "HTTP",
                    "Port": 80,
                    "VpcId": VPC,
                    "TargetType": "instance",
                }
            ]
        },
        {key: [ref]},
    )


def stub_health(elb, **states):
    """DescribeTargetHealth of the group listing ``states`` (instance ID -> state, or (state, reason))."""
    descriptions = []
    for iid, state in states.items():
        state, reason = state if isinstance(state, tuple) else (state, None)
        health = {"State": state}
        if reason:
            health.update(Reason=reason, Description=f"{reason} for {iid}")
        descriptions.append({"Target": {"Id": iid.replace("_", "-"), "Port": 80}, "TargetHealth": health})
    elb.add_response("describe_target_health", {"TargetHealthDescriptions": descriptions}, {"TargetGroupArn": TG_ARN})


def stub_register(elb, operation, *ids):
    elb.add_response(operation, {}, {"TargetGroupArn": TG_ARN, "Targets": [{"Id": iid} for iid in ids]})


def stub_run(ec2, current_ids, *launched, count=1):
    token = _instances.client_token("web", "us-east-1", VPC, list(current_ids), 1, "refresh|")
    ec2.add_response(
        "run_instances",
        {"Instances": [new(iid, "pending") for iid in launched]},
        {
            "ImageId": NEW_AMI,
            "InstanceType": "t3.micro",
            "MinCount": count,
            "MaxCount": count,
            "ClientToken": token,
            "SubnetId": SUBNET,
            "MetadataOptions": {"HttpTokens": "required"},
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "web"}]},
                {"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": "web"}]},
            ],
        },
    )
    return token


def stub_terminate(ec2, *ids):
    ec2.add_response("terminate_instances", {"TerminatingInstances": []}, {"InstanceIds": list(ids)})


# --- a batch ----------------------------------------------------------------------------------------


def test_one_batch_launch_register_healthy_deregister_drain_terminate(ec2, elb, run_module):
    stub_group(ec2, old("i-00000001"))
    stub_image_and_type(ec2)
    stub_target_group(elb)
    stub_replacement_subnets(ec2)
    stub_health(elb, i_00000001="healthy")  # registering the group's running instances: already there
    # Batch 1: launched with its own client token, running, registered, initial -> healthy.
    token = stub_run(ec2, ["i-00000001"], "i-00000002")
    ec2.add_response("describe_instances", reservations(new("i-00000002")), id_filter("i-00000002"))
    stub_health(elb, i_00000001="healthy")
    stub_register(elb, "register_targets", "i-00000002")
    stub_health(elb, i_00000001="healthy", i_00000002="initial")
    stub_health(elb, i_00000001="healthy", i_00000002="healthy")
    # Then the old one: deregistered, draining until gone, terminated.
    stub_health(elb, i_00000001="healthy", i_00000002="healthy")
    stub_register(elb, "deregister_targets", "i-00000001")
    stub_health(elb, i_00000001="draining", i_00000002="healthy")
    stub_health(elb, i_00000002="healthy")
    stub_terminate(ec2, "i-00000001")
    ec2.add_response("describe_instances", reservations(old("i-00000001", state="terminated")), id_filter("i-00000001"))
    ec2.add_response("describe_instances", reservations(new("i-00000002")), id_filter("i-00000002"))
    stub_health(elb, i_00000002="healthy")

    res = run_module(ec2_launch, REFRESH)

    assert not res.failed, res.result["msg"]
    assert res.result["changed"] is True
    assert res.result["instance_refresh"] == {
        "replaced": ["i-00000001"],
        "launched": ["i-00000002"],
        "batches": 1,
        "rolled_back": False,
    }
    assert res.result["instance_ids"] == ["i-00000002"]
    assert res.result["launched_ids"] == ["i-00000002"]
    assert res.result["terminated_ids"] == ["i-00000001"]
    assert res.result["changes"] == [
        f"launch 1 instance(s) in {SUBNET}",
        "register i-00000002 in target group web-tg",
        "deregister i-00000001 from target group web-tg",
        "terminate i-00000001",
    ]
    assert res.result["drift"] == [
        {"instance_id": "i-00000001", "option": "image_id", "current": AMI, "wanted": NEW_AMI}
    ]
    assert res.result["target_health"] == [
        {"instance_id": "i-00000002", "target_group_arn": TG_ARN, "target_group_name": "web-tg", "state": "healthy"}
    ]
    # The token is the batch's own: not the one a plain launch of the group would use.
    assert token != _instances.client_token("web", "us-east-1", VPC, ["i-00000001"], 1)


def test_health_timeout_rolls_the_batch_back_and_fails_in_one_line(ec2, elb, run_module, clock):
    stub_group(ec2, old("i-00000001"))
    stub_image_and_type(ec2)
    stub_target_group(elb)
    stub_replacement_subnets(ec2)
    stub_health(elb, i_00000001="healthy")
    stub_run(ec2, ["i-00000001"], "i-00000002")
    ec2.add_response("describe_instances", reservations(new("i-00000002")), id_filter("i-00000002"))
    stub_health(elb, i_00000001="healthy")
    stub_register(elb, "register_targets", "i-00000002")
    stub_health(elb, i_00000001="healthy", i_00000002="initial")  # t=0
    stub_health(elb, i_00000001="healthy", i_00000002=("unhealthy", "Target.ResponseCodeMismatch"))  # t=1: timeout
    # Rollback: the new one deregistered (no draining to wait for: it never served) and terminated.
    stub_health(elb, i_00000001="healthy", i_00000002=("unhealthy", "Target.ResponseCodeMismatch"))
    stub_register(elb, "deregister_targets", "i-00000002")
    stub_terminate(ec2, "i-00000002")
    stub_health(elb, i_00000001="healthy", i_00000002="draining")  # the old one is still registered

    res = run_module(ec2_launch, dict(REFRESH, instance_refresh={"health_timeout": 1}))

    assert res.failed
    msg = res.result["msg"]
    assert "\n" not in msg
    assert msg.startswith("instance_refresh: new instance(s) i-00000002 not healthy in every target group after 1s")
    assert "i-00000002 unhealthy (Target.ResponseCodeMismatch) in web-tg" in msg
    assert "rolled back" in msg and "(i-00000001)" in msg
    assert res.result["instance_refresh"]["rolled_back"] is True
    assert res.result["instance_refresh"]["replaced"] == []
    assert res.result["instance_refresh"]["launched"] == ["i-00000002"]
    assert res.result["terminated_ids"] == ["i-00000002"]
    assert res.result["changes"] == [
        f"launch 1 instance(s) in {SUBNET}",
        "register i-00000002 in target group web-tg",
        "deregister i-00000002 from target group web-tg",
        "terminate i-00000002",
    ]


def test_rerun_after_a_kill_brings_the_batch_in_flight_in_then_removes_the_old(ec2, elb, run_module):
    # The run before was killed after its batch was launched: one instance too many, no launch now.
    stub_group(ec2, old("i-00000001"), new("i-00000002"))
    stub_image_and_type(ec2)
    stub_target_group(elb)
    stub_replacement_subnets(ec2)
    # The old one, about to go, is not registered again; the new one is registered and checked first.
    stub_health(elb)
    stub_register(elb, "register_targets", "i-00000002")
    stub_health(elb, i_00000002="initial")
    stub_health(elb, i_00000002="initial")
    stub_health(elb, i_00000002="healthy")
    stub_health(elb, i_00000002="healthy")
    stub_terminate(ec2, "i-00000001")  # it was no longer registered: nothing to deregister or drain
    ec2.add_response("describe_instances", reservations(old("i-00000001", state="terminated")), id_filter("i-00000001"))
    ec2.add_response("describe_instances", reservations(new("i-00000002")), id_filter("i-00000002"))
    stub_health(elb, i_00000002="healthy")

    res = run_module(ec2_launch, REFRESH)

    assert not res.failed, res.result["msg"]
    assert res.result["launched_ids"] == []
    assert res.result["instance_refresh"] == {
        "replaced": ["i-00000001"],
        "launched": [],
        "batches": 1,
        "rolled_back": False,
    }
    assert res.result["changes"] == ["register i-00000002 in target group web-tg", "terminate i-00000001"]


def test_rerun_after_a_kill_with_a_bad_batch_rolls_it_back_and_registers_the_old_again(ec2, elb, run_module, clock):
    stub_group(ec2, old("i-00000001"), old("i-00000003"), new("i-00000002"))
    stub_image_and_type(ec2)
    stub_target_group(elb)
    stub_replacement_subnets(ec2)
    stub_health(elb, i_00000003="healthy")  # i-00000001 was deregistered by the killed run
    stub_register(elb, "register_targets", "i-00000002")
    stub_health(elb, i_00000003="healthy", i_00000002="initial")
    stub_health(elb, i_00000003="healthy", i_00000002="initial")
    stub_health(elb, i_00000003="healthy", i_00000002=("unhealthy", "Target.Timeout"))
    stub_health(elb, i_00000003="healthy", i_00000002=("unhealthy", "Target.Timeout"))
    stub_register(elb, "deregister_targets", "i-00000002")
    stub_terminate(ec2, "i-00000002")
    stub_health(elb, i_00000003="healthy", i_00000002="draining")
    stub_register(elb, "register_targets", "i-00000001")

    res = run_module(ec2_launch, dict(REFRESH, count=2, instance_refresh={"health_timeout": 1}))

    assert res.failed
    assert "i-00000002 unhealthy (Target.Timeout) in web-tg" in res.result["msg"]
    assert res.result["changes"][-1] == "register i-00000001 in target group web-tg"
    assert res.result["terminated_ids"] == ["i-00000002"]


def test_rerun_onto_the_same_image_replaces_nothing_and_only_reads(ec2, elb, run_module):
    stub_group(ec2, new("i-00000002"))
    stub_image_and_type(ec2)
    stub_target_group(elb)
    stub_health(elb, i_00000002="healthy")
    stub_health(elb, i_00000002="healthy")

    res = run_module(ec2_launch, REFRESH)

    assert not res.failed, res.result["msg"]
    assert res.result["changed"] is False
    assert res.result["changes"] == []
    assert res.result["drift"] == []
    assert res.result["instance_refresh"] == {"replaced": [], "launched": [], "batches": 0, "rolled_back": False}
    assert res.result["target_health"][0]["state"] == "healthy"


def test_check_mode_and_diff_say_what_would_be_replaced(ec2, elb, run_module):
    stub_group(ec2, old("i-00000001"), old("i-00000003"))
    stub_image_and_type(ec2)
    stub_target_group(elb, TG_ARN)
    stub_replacement_subnets(ec2)
    stub_health(elb, i_00000001="healthy", i_00000003="healthy")
    stub_health(elb, i_00000001="healthy", i_00000003="healthy")

    args = dict(REFRESH, count=2, target_groups=[TG_ARN], instance_refresh={"min_healthy_percentage": 50})
    res = run_module(ec2_launch, args, check_mode=True, diff=True)

    assert not res.failed, res.result["msg"]
    assert res.result["changed"] is True
    assert res.result["changes"] == [
        "replace i-00000001 with 1 new instance(s) (batch 1 of 2)",
        "replace i-00000003 with 1 new instance(s) (batch 2 of 2)",
    ]
    assert res.result["instance_refresh"] == {
        "replaced": ["i-00000001", "i-00000003"],
        "launched": [],
        "batches": 2,
        "rolled_back": False,
    }
    assert res.result["diff"]["after"]["instance_ids"] == ["(replacing i-00000001)", "(replacing i-00000003)"]
    assert res.result["diff"]["before"]["instance_ids"] == ["i-00000001", "i-00000003"]


# --- bad input --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("refresh", "message"),
    [
        ({"batch_size": 0}, "instance_refresh.batch_size: 0 is not a number of instances (1 or more)"),
        ({"min_healthy_percentage": 101}, "instance_refresh.min_healthy_percentage: 101 is not between 0 and 100"),
        ({"min_healthy_percentage": -1}, "instance_refresh.min_healthy_percentage: -1 is not between 0 and 100"),
        (
            {"batch_size": 2, "min_healthy_percentage": 50},
            "instance_refresh: batch_size (2) and min_healthy_percentage (50) are mutually exclusive; give one",
        ),
        ({"health_timeout": 0}, "instance_refresh.health_timeout: 0 is not a number of seconds (1 or more)"),
        ({"instance_warmup": -5}, "instance_refresh.instance_warmup: -5 is negative"),
    ],
)
def test_bad_refresh_options_fail_in_one_line_before_any_call(ec2, elb, run_module, refresh, message):
    res = run_module(ec2_launch, dict(REFRESH, instance_refresh=refresh))
    assert res.failed
    assert res.result["msg"] == message


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        (["web_tg"], "target_groups: 'web_tg' is not a target group name (1 to 32 letters, digits and hyphens) or ARN"),
        (["arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/x/1"], "is not a target group ARN"),
    ],
)
def test_malformed_target_group_fails_before_any_call(ec2, elb, run_module, groups, message):
    res = run_module(ec2_launch, dict(REFRESH, target_groups=groups))
    assert res.failed
    assert message in res.result["msg"]


def test_unknown_target_group_fails_in_one_line_and_changes_nothing(ec2, elb, run_module):
    stub_group(ec2, old("i-00000001"))
    stub_image_and_type(ec2)
    elb.add_client_error(
        "describe_target_groups",
        "TargetGroupNotFound",
        "One or more target groups not found",
        expected_params={"Names": ["nope"]},
    )
    res = run_module(ec2_launch, dict(REFRESH, target_groups=["nope", "web-tg"]))
    assert res.failed
    assert res.result["msg"] == "target_groups: 'nope' not found in us-east-1"
    assert res.result["changes"] == []
    assert res.result["changed"] is False


# --- removing instances: deregistered and drained first ---------------------------------------------


def test_scale_down_deregisters_and_waits_for_draining_before_terminating(ec2, elb, run_module):
    stub_group(ec2, old("i-00000001"), old("i-00000003", launched=T1))
    stub_image_and_type(ec2, AMI)
    stub_target_group(elb)
    stub_health(elb, i_00000001="healthy", i_00000003="healthy")
    stub_register(elb, "deregister_targets", "i-00000001")
    stub_health(elb, i_00000001="draining", i_00000003="healthy")
    stub_health(elb, i_00000003="healthy")
    stub_terminate(ec2, "i-00000001")
    stub_health(elb, i_00000003="healthy")  # the one kept is registered already
    ec2.add_response("describe_instances", reservations(old("i-00000001", state="terminated")), id_filter("i-00000001"))
    ec2.add_response("describe_instances", reservations(old("i-00000003", launched=T1)), id_filter("i-00000003"))
    stub_health(elb, i_00000003="healthy")

    res = run_module(ec2_launch, {"name": "web", "image_id": AMI, "count": 1, "target_groups": ["web-tg"]})

    assert not res.failed, res.result["msg"]
    assert res.result["changes"] == ["deregister i-00000001 from target group web-tg", "terminate i-00000001"]
    assert res.result["instance_ids"] == ["i-00000003"]


def test_absent_deregisters_and_drains_before_terminating(ec2, elb, run_module):
    stub_group(ec2, old("i-00000001"))
    stub_target_group(elb)
    stub_health(elb, i_00000001="healthy")
    stub_register(elb, "deregister_targets", "i-00000001")
    stub_health(elb, i_00000001="draining")
    stub_health(elb)
    stub_terminate(ec2, "i-00000001")
    ec2.add_response("describe_instances", reservations(old("i-00000001", state="terminated")), id_filter("i-00000001"))
    ec2.add_response("describe_security_groups", {"SecurityGroups": []})

    res = run_module(ec2_launch, {"name": "web", "state": "absent", "target_groups": ["web-tg"]})

    assert not res.failed, res.result["msg"]
    assert res.result["changes"] == ["deregister i-00000001 from target group web-tg", "terminate i-00000001"]
    assert "target_health" not in res.result


def test_new_instances_are_registered_and_waited_for_until_healthy(ec2, elb, run_module, clock):
    stub_group(ec2, old("i-00000001"))
    stub_image_and_type(ec2, AMI)
    stub_target_group(elb)
    stub_health(elb)
    stub_register(elb, "register_targets", "i-00000001")
    stub_health(elb, i_00000001="initial")
    stub_health(elb, i_00000001=("unhealthy", "Target.FailedHealthChecks"))
    res = run_module(ec2_launch, {"name": "web", "image_id": AMI, "target_groups": ["web-tg"], "wait_timeout": 1})
    assert res.failed
    assert res.result["msg"] == (
        "target_groups: not healthy after 1s: i-00000001 unhealthy (Target.FailedHealthChecks) in web-tg"
    )
    assert res.result["changes"] == ["register i-00000001 in target group web-tg"]
