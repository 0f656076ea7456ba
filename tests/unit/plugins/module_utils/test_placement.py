"""Where ec2_launch puts new instances: the subnet given, zones offering the type, the default subnets."""

from __future__ import annotations

import datetime

import pytest
from ansible_collections.bakery.ec2.plugins.module_utils import _placement
from ansible_collections.bakery.ec2.plugins.module_utils._aws import TaskError
from ec2_fakes import SUBNET, T0, VPC, instance

OTHER_VPC = "vpc-0ffffffffffffffff"
DEFAULTS = {"Filters": [{"Name": "default-for-az", "Values": ["true"]}]}


def subnet(zone, vpc=VPC, sid=None):
    return {"SubnetId": sid or f"subnet-0{zone[-1] * 16}", "VpcId": vpc, "AvailabilityZone": zone}


def stub_offerings(stub, zones, itype="t3.micro"):
    stub.add_response(
        "describe_instance_type_offerings",
        {"InstanceTypeOfferings": [{"InstanceType": itype, "Location": zone} for zone in zones]},
        {"LocationType": "availability-zone", "Filters": [{"Name": "instance-type", "Values": [itype]}]},
    )


def test_the_subnet_given_must_exist_and_agree_with_the_zone(ec2_client):
    client, stub = ec2_client
    stub.add_response("describe_subnets", {"Subnets": [subnet("us-east-1a", sid=SUBNET)]}, {"SubnetIds": [SUBNET]})
    assert _placement.find_subnet(client, SUBNET, "us-east-1a")["VpcId"] == VPC
    stub.add_response("describe_subnets", {"Subnets": [subnet("us-east-1a", sid=SUBNET)]}, {"SubnetIds": [SUBNET]})
    with pytest.raises(TaskError) as err:
        _placement.find_subnet(client, SUBNET, "us-east-1b")
    assert str(err.value) == f"availability_zone: 'us-east-1b' conflicts with subnet {SUBNET} in us-east-1a"
    stub.add_client_error("describe_subnets", "InvalidSubnetID.NotFound", "no such subnet")
    with pytest.raises(TaskError) as err:
        _placement.find_subnet(client, SUBNET)
    assert str(err.value) == f"subnet_id: '{SUBNET}' not found in us-east-1"


def test_zones_offering_the_type(ec2_client):
    client, stub = ec2_client
    stub_offerings(stub, ("us-east-1a", "us-east-1c"))
    assert _placement.offering_zones(client, "t3.micro") == {"us-east-1a", "us-east-1c"}
    stub_offerings(stub, ())
    with pytest.raises(TaskError) as err:
        _placement.offering_zones(client, "t3.micro")
    assert str(err.value) == "instance_type: 't3.micro' is not offered in any zone of us-east-1"


def test_candidates_are_the_groups_subnets_newest_first_then_default_ones_one_per_zone_one_vpc(ec2_client):
    client, stub = ec2_client
    older = instance("i-00000001", SubnetId="subnet-0cccccccccccccccc", Placement={"AvailabilityZone": "us-east-1c"})
    newer = instance("i-00000002", launched=T0 + datetime.timedelta(hours=1))  # SUBNET in us-east-1a
    stub.add_response(
        "describe_subnets",
        {
            "Subnets": [
                subnet("us-east-1d"),
                subnet("us-east-1b"),
                subnet("us-east-1a"),  # a zone the group has a subnet in already
                subnet("us-east-1f", vpc=OTHER_VPC),  # not the VPC of the first candidate
            ]
        },
        DEFAULTS,
    )
    zones = {"us-east-1a", "us-east-1b", "us-east-1c", "us-east-1f"}  # us-east-1d does not offer the type
    found = _placement.candidate_subnets(client, None, [older, newer], zones)
    assert [(s["SubnetId"], s["AvailabilityZone"]) for s in found] == [
        (SUBNET, "us-east-1a"),
        ("subnet-0cccccccccccccccc", "us-east-1c"),
        ("subnet-0bbbbbbbbbbbbbbbb", "us-east-1b"),
    ]


def test_existing_instances_subnets_suffice_when_zones_are_not_checked(ec2_client):
    client, _stub = ec2_client  # no call: nothing to launch needs the default subnets
    found = _placement.candidate_subnets(client, None, [instance("i-00000001")], None)
    assert [s["SubnetId"] for s in found] == [SUBNET]


def test_a_pinned_zone_asks_only_for_its_default_subnet(ec2_client):
    client, stub = ec2_client
    stub.add_response(
        "describe_subnets",
        {"Subnets": [subnet("us-east-1b")]},
        {
            "Filters": [
                {"Name": "default-for-az", "Values": ["true"]},
                {"Name": "availability-zone", "Values": ["us-east-1b"]},
            ]
        },
    )
    found = _placement.candidate_subnets(client, "us-east-1b", [instance("i-00000001")], {"us-east-1a", "us-east-1b"})
    assert [s["AvailabilityZone"] for s in found] == ["us-east-1b"]


def test_launch_subnets_refuse_a_pinned_zone_without_the_type_before_anything_is_made(ec2_client):
    client, stub = ec2_client
    stub_offerings(stub, ("us-east-1a", "us-east-1b"))
    with pytest.raises(TaskError) as err:
        _placement.launch_subnets(client, "t3.micro", None, "us-east-1e", [], 1)
    assert str(err.value) == (
        "instance_type: 't3.micro' is not offered in us-east-1e (offered in us-east-1a, us-east-1b); "
        "nothing was created"
    )
    stub_offerings(stub, ("us-east-1a",))
    with pytest.raises(TaskError, match="is not offered in us-east-1b"):
        _placement.launch_subnets(client, "t3.micro", subnet("us-east-1b"), None, [], 1)


def test_launch_subnets_keep_the_subnet_given_and_check_zones_only_when_launching(ec2_client):
    client, stub = ec2_client
    given = subnet("us-east-1a", sid=SUBNET)
    stub_offerings(stub, ("us-east-1a",))
    assert _placement.launch_subnets(client, "t3.micro", given, None, [], 2) == [given]
    # Nothing to launch: no offerings asked, the group's own subnets are where it is.
    assert (
        _placement.launch_subnets(client, "t3.micro", None, None, [instance("i-00000001")], 0)[0]["SubnetId"] == SUBNET
    )
