"""ec2_launch's subnet_ids against stubbed EC2 (botocore Stubber): a group spread over zones.

New instances go to the zone with the fewest (ties: list order), one RunInstances per zone with its own client token;
scale-in takes from the fullest zone, oldest there first; a zone without capacity sends its share to the next zone;
the group's tags go on instances and volumes in every zone.
"""

from __future__ import annotations

import datetime

import pytest
from ansible.module_utils import basic
from ansible_collections.bakery.ec2.plugins.module_utils import _instances
from ansible_collections.bakery.ec2.plugins.modules import ec2_launch
from ec2_fakes import AMI, LIVE, T0, VPC, id_filter, instance, reservations
from test_ec2_launch import stub_image, stub_offerings, stub_type

A = "subnet-0aaaaaaaaaaaaaaa1"
B = "subnet-0bbbbbbbbbbbbbbb1"
C = "subnet-0cccccccccccccc1"
ZONES = {A: "us-east-1a", B: "us-east-1b", C: "us-east-1c"}
SPREAD = {"name": "web", "image_id": AMI, "subnet_ids": [A, B]}
TAGS = [{"Key": "Name", "Value": "web"}, {"Key": "Role", "Value": "app"}]


@pytest.fixture
def warned(monkeypatch):
    """Warnings the module gives, in order."""
    seen = []
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, msg: seen.append(msg))
    return seen


def in_subnet(iid, subnet, minutes=0, state="running", **extra):
    return instance(
        iid,
        state,
        launched=T0 + datetime.timedelta(minutes=minutes),
        SubnetId=subnet,
        Placement={"AvailabilityZone": ZONES[subnet]},
        **extra,
    )


def stub_subnets(ec2, ids=(A, B), vpcs=None):
    found = [
        {"SubnetId": sid, "VpcId": (vpcs or {}).get(sid, VPC), "AvailabilityZone": ZONES[sid]}
        for sid in ids
        if sid in ZONES
    ]
    ec2.add_response("describe_subnets", {"Subnets": found}, {"Filters": [{"Name": "subnet-id", "Values": list(ids)}]})


def stub_group(ec2, *instances):
    filters = [
        {"Name": "tag:Name", "Values": ["web"]},
        {"Name": "instance-state-name", "Values": LIVE},
        {"Name": "vpc-id", "Values": [VPC]},
    ]
    ec2.add_response("describe_instances", reservations(*instances), {"Filters": filters})


def stub_lookups(ec2, *existing, launching=True, ids=(A, B)):
    """The read-only calls of a run with subnet_ids: the subnets, the group in their VPC, image, type, and the zones
    offering the type when launching."""
    stub_subnets(ec2, ids)
    stub_group(ec2, *existing)
    stub_image(ec2)
    stub_type(ec2)
    if launching:
        stub_offerings(ec2, ("us-east-1a", "us-east-1b", "us-east-1c"))


def token(existing, count, salt):
    return _instances.client_token("web", "us-east-1", VPC, existing, count, salt)


def run_request(subnet, count, client_token, tags=None):
    tags = tags or TAGS
    return {
        "ImageId": AMI,
        "InstanceType": "t3.micro",
        "MinCount": count,
        "MaxCount": count,
        "ClientToken": client_token,
        "SubnetId": subnet,
        "MetadataOptions": {"HttpTokens": "required"},
        "TagSpecifications": [
            {"ResourceType": "instance", "Tags": tags},
            {"ResourceType": "volume", "Tags": tags},
        ],
    }


def test_new_instances_go_to_the_emptiest_zone_with_tags_on_instances_and_volumes_in_every_zone(ec2, run_module):
    old = in_subnet("i-00000001", A, tags={"Name": "web"})  # Role missing: tagged in place
    stub_lookups(ec2, old)
    # us-east-1a has one: us-east-1b gets two, us-east-1a one (the tie after the first goes to the subnet listed first).
    ec2.add_response(
        "run_instances",
        {"Instances": [in_subnet("i-00000002", A, 5, "pending")]},
        run_request(A, 1, token(["i-00000001"], 4, "spread:us-east-1a|")),
    )
    ec2.add_response(
        "run_instances",
        {"Instances": [in_subnet("i-00000003", B, 5, "pending"), in_subnet("i-00000004", B, 5, "pending")]},
        run_request(B, 2, token(["i-00000001"], 4, "spread:us-east-1b|")),
    )
    ec2.add_response("create_tags", {}, {"Resources": ["i-00000001"], "Tags": [{"Key": "Role", "Value": "app"}]})
    after = [old, in_subnet("i-00000002", A, 5), in_subnet("i-00000003", B, 5), in_subnet("i-00000004", B, 5)]
    ec2.add_response("describe_instances", reservations(*after), id_filter(*(i["InstanceId"] for i in after)))
    res = run_module(ec2_launch, dict(SPREAD, count=4, tags={"Role": "app"}))
    assert not res.failed, res.result["msg"]
    assert res.result["launched_ids"] == ["i-00000002", "i-00000003", "i-00000004"]
    assert res.result["zones"] == {"us-east-1a": 2, "us-east-1b": 2}
    assert res.result["changes"] == [
        f"launch 1 instance(s) in {A}",
        f"launch 2 instance(s) in {B}",
        "tag i-00000001 with Role",
    ]


def test_a_rerun_with_the_count_met_changes_nothing_even_when_unbalanced(ec2, run_module):
    # Two in us-east-1a, none in us-east-1b: running instances are never moved; no offerings asked either.
    stub_lookups(ec2, in_subnet("i-00000001", A), in_subnet("i-00000002", A, 1), launching=False)
    res = run_module(ec2_launch, dict(SPREAD, count=2))
    assert not res.failed, res.result["msg"]
    assert res.result["changed"] is False
    assert res.result["zones"] == {"us-east-1a": 2, "us-east-1b": 0}
    assert res.result["drift"] == []


def test_check_mode_says_where_each_would_go_and_launches_nothing(ec2, run_module):
    stub_lookups(ec2, ids=(A, B, C))
    res = run_module(ec2_launch, dict(SPREAD, subnet_ids=[A, B, C], count=2), check_mode=True)
    assert not res.failed, res.result["msg"]
    assert res.result["changed"] is True
    assert res.result["changes"] == [f"launch 1 instance(s) in {A}", f"launch 1 instance(s) in {B}"]
    assert res.result["zones"] == {"us-east-1a": 1, "us-east-1b": 1, "us-east-1c": 0}


def test_scale_in_takes_from_the_fullest_zone_oldest_there_first(ec2, run_module):
    group = [
        in_subnet("i-00000000", B, 0),  # the oldest of the group, alone in us-east-1b: stays
        in_subnet("i-00000001", A, 1),
        in_subnet("i-00000002", A, 2),
        in_subnet("i-00000003", A, 3),
    ]
    stub_lookups(ec2, *group, launching=False)
    ec2.add_response("terminate_instances", {"TerminatingInstances": []}, {"InstanceIds": ["i-00000001", "i-00000002"]})
    ec2.add_response(
        "describe_instances",
        reservations(instance("i-00000001", "terminated"), instance("i-00000002", "terminated")),
        id_filter("i-00000001", "i-00000002"),
    )
    ec2.add_response("describe_instances", reservations(group[0], group[3]), id_filter("i-00000000", "i-00000003"))
    res = run_module(ec2_launch, dict(SPREAD, count=2))
    assert not res.failed, res.result["msg"]
    assert res.result["terminated_ids"] == ["i-00000001", "i-00000002"]
    assert res.result["instance_ids"] == ["i-00000000", "i-00000003"]
    assert res.result["zones"] == {"us-east-1a": 1, "us-east-1b": 1}


def test_a_zone_without_capacity_sends_its_share_to_the_next_zone_with_a_new_token(ec2, run_module, warned):
    stub_lookups(ec2)
    ec2.add_client_error("run_instances", "InsufficientInstanceCapacity", "no t3.micro capacity in us-east-1a", 500)
    moved = token([], 2, "spread:us-east-1a|zone:us-east-1b|")
    ec2.add_response(
        "run_instances", {"Instances": [in_subnet("i-00000001", B, state="pending")]}, run_request(B, 1, moved)
    )
    own = token([], 2, "spread:us-east-1b|")
    ec2.add_response(
        "run_instances", {"Instances": [in_subnet("i-00000002", B, state="pending")]}, run_request(B, 1, own)
    )
    after = [in_subnet("i-00000001", B), in_subnet("i-00000002", B)]
    ec2.add_response("describe_instances", reservations(*after), id_filter("i-00000001", "i-00000002"))
    res = run_module(ec2_launch, dict(SPREAD, count=2, tags={"Role": "app"}))
    assert not res.failed, res.result["msg"]
    assert moved != own
    assert warned == ["InsufficientInstanceCapacity for t3.micro in us-east-1a: trying us-east-1b"]
    assert res.result["zones"] == {"us-east-1a": 0, "us-east-1b": 2}


def test_a_subnet_whose_zone_lacks_the_type_is_refused_before_anything_changes(ec2, run_module):
    stub_subnets(ec2)
    stub_group(ec2)
    stub_image(ec2)
    stub_type(ec2)
    stub_offerings(ec2, ("us-east-1a",))
    res = run_module(ec2_launch, dict(SPREAD, firewall=[{"ports": 80, "cidr": ["::/0"]}]))
    assert res.failed
    assert res.result["msg"] == (
        f"subnet_ids: {B} is in us-east-1b, which does not offer instance_type 't3.micro' (offered in us-east-1a); "
        "nothing was created"
    )
    assert res.result["changes"] == []


@pytest.mark.parametrize(
    ("args", "msg"),
    [
        ({"subnet_id": A}, f"subnet_ids: cannot be given with subnet_id '{A}'; give one of them"),
        ({"availability_zone": "us-east-1a"}, "subnet_ids: cannot be given with availability_zone 'us-east-1a'"),
        ({"subnet_ids": []}, "subnet_ids: empty; give one subnet per zone to spread over, or leave it out"),
        ({"subnet_ids": [A, "sub-1"]}, "subnet_ids: 'sub-1' is not a subnet ID"),
        ({"subnet_ids": [A, B, A]}, f"subnet_ids: '{A}' is listed twice"),
    ],
)
def test_bad_subnet_ids_fail_before_any_aws_call(ec2, run_module, args, msg):
    res = run_module(ec2_launch, dict(SPREAD, **args))
    assert res.failed
    assert msg in res.result["msg"]
    assert "\n" not in res.result["msg"]


@pytest.mark.parametrize(
    ("vpcs", "msg"),
    [
        ({}, f"subnet_ids: '{C}' not found in us-east-1"),
        ({B: "vpc-0ffffffffffffffff"}, f"subnet_ids: {B} is in vpc-0ffffffffffffffff but {A} is in {VPC}"),
    ],
)
def test_unknown_subnet_or_two_vpcs_fail_before_anything_changes(ec2, run_module, vpcs, msg):
    ids = (A, B) if vpcs else (A, C)
    found = [A, B] if vpcs else [A]  # C is not there
    ec2.add_response(
        "describe_subnets",
        {"Subnets": [{"SubnetId": sid, "VpcId": vpcs.get(sid, VPC), "AvailabilityZone": ZONES[sid]} for sid in found]},
        {"Filters": [{"Name": "subnet-id", "Values": list(ids)}]},
    )
    res = run_module(ec2_launch, dict(SPREAD, subnet_ids=list(ids), count=2))
    assert res.failed
    assert res.result["msg"].startswith(msg)
    assert res.result["changes"] == []


def test_refresh_puts_a_replacement_next_to_what_stays_and_reports_an_instance_outside_as_drift(ec2, run_module):
    kept = in_subnet("i-00000001", A, 0)
    outside = in_subnet("i-00000002", C, 1)  # in a subnet subnet_ids does not list: drift
    stub_subnets(ec2)
    stub_group(ec2, kept, outside)
    stub_image(ec2)
    stub_type(ec2)
    stub_offerings(ec2, ("us-east-1a", "us-east-1b", "us-east-1c"))  # where replacements go, checked first
    # The batch's own client token: the refresh's salt, then the zone spread puts it in.
    batch_token = token(["i-00000001", "i-00000002"], 2, "refresh|spread:us-east-1b|")
    ec2.add_response(
        "run_instances",
        {"Instances": [in_subnet("i-00000003", B, 5, "pending")]},
        run_request(B, 1, batch_token, [{"Key": "Name", "Value": "web"}]),
    )
    ec2.add_response("describe_instances", reservations(in_subnet("i-00000003", B, 5)), id_filter("i-00000003"))
    ec2.add_response("terminate_instances", {"TerminatingInstances": []}, {"InstanceIds": ["i-00000002"]})
    ec2.add_response("describe_instances", reservations(), id_filter("i-00000002"))
    ec2.add_response(
        "describe_instances",
        reservations(kept, in_subnet("i-00000003", B, 5)),
        id_filter("i-00000001", "i-00000003"),
    )
    res = run_module(ec2_launch, dict(SPREAD, count=2, instance_refresh={}))
    assert not res.failed, res.result["msg"]
    assert res.result["instance_refresh"]["replaced"] == ["i-00000002"]
    assert res.result["zones"] == {"us-east-1a": 1, "us-east-1b": 1}
    assert res.result["changes"][0] == f"launch 1 instance(s) in {B}"
    assert res.result["drift"] == [
        {"instance_id": "i-00000002", "option": "subnet_ids", "current": C, "wanted": [A, B]}
    ]
