"""Where ec2_launch puts new instances: the subnet given, zones offering the type, the default subnets."""

from __future__ import annotations

import datetime

import pytest
from ansible_collections.bakery.ec2.plugins.module_utils import _placement
from ansible_collections.bakery.ec2.plugins.module_utils._errors import TaskError
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


# --- subnet_ids: the subnets, spreading new instances, scale-in ---------------------------------------------


def stub_subnets(stub, found, asked):
    stub.add_response("describe_subnets", {"Subnets": found}, {"Filters": [{"Name": "subnet-id", "Values": asked}]})


def test_subnet_ids_are_read_in_one_call_and_kept_in_their_order(ec2_client):
    client, stub = ec2_client
    a, b = subnet("us-east-1a"), subnet("us-east-1b")
    stub_subnets(stub, [a, b], [b["SubnetId"], a["SubnetId"]])
    assert _placement.find_subnets(client, [b["SubnetId"], a["SubnetId"]]) == [b, a]


@pytest.mark.parametrize(
    ("found", "msg"),
    [
        ([subnet("us-east-1a")], "subnet_ids: 'subnet-0bbbbbbbbbbbbbbbb' not found in us-east-1"),
        (
            [subnet("us-east-1a"), subnet("us-east-1b", vpc=OTHER_VPC)],
            f"subnet_ids: subnet-0bbbbbbbbbbbbbbbb is in {OTHER_VPC} but subnet-0aaaaaaaaaaaaaaaa is in {VPC}; "
            "give subnets of one VPC",
        ),
        (
            [subnet("us-east-1a"), subnet("us-east-1a", sid="subnet-0bbbbbbbbbbbbbbbb")],
            "subnet_ids: subnet-0aaaaaaaaaaaaaaaa and subnet-0bbbbbbbbbbbbbbbb are both in us-east-1a; "
            "give one subnet per zone",
        ),
    ],
)
def test_subnet_ids_unknown_in_two_vpcs_or_two_in_a_zone_are_refused_naming_them(ec2_client, found, msg):
    client, stub = ec2_client
    asked = ["subnet-0aaaaaaaaaaaaaaaa", "subnet-0bbbbbbbbbbbbbbbb"]
    stub_subnets(stub, found, asked)
    with pytest.raises(TaskError) as err:
        _placement.find_subnets(client, asked)
    assert str(err.value) == msg


def test_launch_subnets_refuse_a_listed_subnet_whose_zone_lacks_the_type(ec2_client):
    client, stub = ec2_client
    listed = [subnet("us-east-1a"), subnet("us-east-1e")]
    stub_offerings(stub, ("us-east-1a", "us-east-1b"))
    with pytest.raises(TaskError) as err:
        _placement.launch_subnets(client, "t3.micro", None, None, [], 1, listed)
    assert str(err.value) == (
        "subnet_ids: subnet-0eeeeeeeeeeeeeeee is in us-east-1e, which does not offer instance_type 't3.micro' "
        "(offered in us-east-1a, us-east-1b); nothing was created"
    )
    # Nothing to launch: no offerings asked, the listed subnets are the places.
    assert _placement.launch_subnets(client, "t3.micro", None, None, [], 0, listed) == listed


A = subnet("us-east-1a")
B = subnet("us-east-1b")
C = subnet("us-east-1c")


def placed(plan):
    return [([s["AvailabilityZone"][-1] for s in tried], count) for tried, count in plan]


@pytest.mark.parametrize(
    ("zones", "missing", "expected"),
    [
        # An empty group: round robin in list order; a zone without capacity sends its share to the emptiest other.
        ([], 2, [(["a", "c", "b"], 1), (["b", "c", "a"], 1)]),
        ([], 4, [(["a", "b", "c"], 2), (["b", "c", "a"], 1), (["c", "b", "a"], 1)]),
        # The fullest zone gets nothing until the others catch up; ties go to the subnet listed first.
        (["us-east-1a", "us-east-1a", "us-east-1b"], 2, [(["b", "c", "a"], 1), (["c", "a", "b"], 1)]),
        (
            ["us-east-1a", "us-east-1a", "us-east-1b"],
            4,
            [(["a", "b", "c"], 1), (["b", "c", "a"], 1), (["c", "b", "a"], 2)],
        ),
        # An instance outside the listed zones does not count for any of them.
        (["us-east-1d"], 1, [(["a", "b", "c"], 1)]),
        ([], 0, []),
    ],
)
def test_spread_puts_each_new_instance_in_the_zone_with_the_fewest(zones, missing, expected):
    assert placed(_placement.spread([A, B, C], zones, missing)) == expected


def test_spread_tries_the_emptiest_other_zone_when_one_has_no_capacity():
    # us-east-1c holds 3 already, us-east-1b 1: the new one goes to us-east-1a, then us-east-1b, then us-east-1c.
    plan = _placement.spread([C, B, A], ["us-east-1c"] * 3 + ["us-east-1b"], 1)
    assert placed(plan) == [(["a", "b", "c"], 1)]


def test_zone_counts_list_every_listed_zone_then_others():
    assert _placement.zone_counts([A, B], ["us-east-1d", "us-east-1a"]) == {
        "us-east-1a": 1,
        "us-east-1b": 0,
        "us-east-1d": 1,
    }


def at(iid, zone, minutes):
    return instance(iid, launched=T0 + datetime.timedelta(minutes=minutes), Placement={"AvailabilityZone": zone})


def test_scale_in_takes_outside_zones_first_then_the_fullest_zone_oldest_there_first():
    group = [
        at("i-00000000", "us-east-1b", 0),  # the oldest of the group, in the emptier zone: stays
        at("i-00000001", "us-east-1a", 1),
        at("i-00000002", "us-east-1a", 2),
        at("i-00000003", "us-east-1a", 3),
        at("i-00000004", "us-east-1c", 4),  # not a listed zone: goes first
    ]
    going = _placement.surplus_of([A, B], group, 3)
    assert [inst["InstanceId"] for inst in going] == ["i-00000001", "i-00000002", "i-00000004"]


def test_scale_in_ties_take_from_the_zone_listed_last_undoing_a_scale_out():
    group = [at("i-00000001", "us-east-1a", 1), at("i-00000002", "us-east-1b", 2), at("i-00000003", "us-east-1c", 3)]
    going = _placement.surplus_of([A, B, C], group, 2)
    assert [inst["InstanceId"] for inst in going] == ["i-00000002", "i-00000003"]
    # What stays is where a launch of one into an empty group would go.
    assert placed(_placement.spread([A, B, C], [], 1))[0][0][0] == "a"
