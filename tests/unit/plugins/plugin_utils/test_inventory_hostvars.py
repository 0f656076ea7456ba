"""The inventory's host variables: from botocore's instances, and straight from DescribeInstances XML pages."""

from __future__ import annotations

import json

from ansible.vars.reserved import get_reserved_names
from ansible_collections.bakery.ec2.plugins.plugin_utils._inventory_hostvars import (
    PageParser,
    instance_hostvars,
    set_region,
    snake_name,
)
from ansible_collections.bakery.ec2.tests.unit.plugins.ec2_data import MODEL, botocore_parse, instance, load_stub

# --- host variables -----------------------------------------------------------------------------


def test_hostvars_names_like_aws_ec2_with_ec2_tags():
    reservation = {"OwnerId": "123456789012", "ReservationId": "r-0123456789abcdef0"}
    hv = instance_hostvars(instance(tags={"Name": "web-1", "Role": "web"}), reservation, region="eu-west-1")
    assert hv["instance_id"] == "i-0123456789abcdef0"
    assert hv["instance_type"] == "t3.micro"
    assert hv["state"] == {"code": 16, "name": "running"}
    assert hv["placement"] == {"availability_zone": "eu-west-1b", "tenancy": "default", "region": "eu-west-1"}
    assert hv["launch_time"] == "2026-03-01T12:00:00+00:00"
    assert hv["security_groups"] == [{"group_id": "sg-0123456789abcdef0", "group_name": "web"}]
    assert hv["ec2_tags"] == {"Name": "web-1", "Role": "web"}
    assert hv["owner_id"] == "123456789012"
    assert hv["reservation_id"] == "r-0123456789abcdef0"
    assert "tags" not in hv
    json.dumps(hv)  # plain data, cacheable as JSON


def test_hostvars_never_use_a_reserved_name():
    reserved = get_reserved_names()
    fields = dict.fromkeys(("Name", "Environment", "Vars", "Port", "Connection", "Hosts"), "x")
    hv = instance_hostvars(instance(**fields))
    assert not reserved & set(hv)
    assert hv["ec2_name"] == "x" and hv["ec2_environment"] == "x" and hv["ec2_port"] == "x"
    # Every top-level field EC2 documents for an instance, too.
    members = MODEL.shape_for("Instance").members
    hv = instance_hostvars({name: "v" for name in members if name != "Tags"})
    assert not reserved & set(hv)


def test_hostvars_without_tags_have_an_empty_ec2_tags():
    data = instance()
    del data["Tags"]
    assert instance_hostvars(data)["ec2_tags"] == {}


def test_snake_names_match_the_api_model():
    assert snake_name("PrivateIpAddress") == "private_ip_address"
    assert snake_name("Ipv6Address") == "ipv6_address"
    assert snake_name("EbsOptimized") == "ebs_optimized"
    assert snake_name("IamInstanceProfile") == "iam_instance_profile"


# --- page parsing ------------------------------------------------------------------------------


def test_page_parser_gives_exactly_what_botocore_and_instance_hostvars_give():
    stub = load_stub()
    pages = stub.build_pages(["eu-west-1", "us-east-1"], 1300, page_size=500)
    parser = PageParser(MODEL, {})
    compared = 0
    for region in ("eu-west-1", "us-east-1"):
        for body in pages[region]:
            ours, token = parser.parse(body)
            theirs = botocore_parse(body)
            expected = [instance_hostvars(inst, res) for res in theirs["Reservations"] for inst in res["Instances"]]
            assert ours == expected
            assert token == theirs.get("NextToken")
            compared += len(ours)
    assert compared == 1300


def test_page_parser_edge_cases():
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/'
        b'2016-11-15/"><requestId>x</requestId><reservationSet><item><reservationId>r-1</reservationId>'
        b"<ownerId>123456789012</ownerId><requesterId>940372691376</requesterId><instancesSet><item>"
        b"<instanceId>i-1</instanceId><instanceState><code>80</code><name>stopped</name></instanceState>"
        b"<tagSet><item><key>Empty</key><value/></item><item><key>Name</key><value>a</value></item></tagSet>"
        b"<unknownNewField>ignored</unknownNewField><productCodes/><ebsOptimized>false</ebsOptimized>"
        b"<networkInterfaceSet><item><tagSet><item><key>k</key><value>v</value></item></tagSet></item>"
        b"</networkInterfaceSet></item></instancesSet></item></reservationSet></DescribeInstancesResponse>"
    )
    ours, token = PageParser(MODEL, {}).parse(body)
    theirs = botocore_parse(body)["Reservations"]
    assert ours == [instance_hostvars(theirs[0]["Instances"][0], theirs[0])]
    assert ours[0]["ec2_tags"] == {"Empty": "", "Name": "a"}
    assert ours[0]["requester_id"] == "940372691376"
    assert token is None


def test_page_parser_shares_equal_short_strings_between_hosts():
    stub = load_stub()
    strings = {}
    hosts, _token = PageParser(MODEL, strings).parse(stub.render_pages("eu-west-1", 50, 1, 50, 1)[0])
    zones = {id(h["placement"]["availability_zone"]) for h in hosts}
    assert len(zones) == len({h["placement"]["availability_zone"] for h in hosts})  # one object per value
    assert all(h["vpc_id"] is strings[h["vpc_id"]] for h in hosts)


def test_page_parser_hook_leaves_botocore_an_empty_page_and_keeps_errors_for_botocore():
    stub = load_stub()
    parser = PageParser(MODEL, {})
    response = {"status_code": 200, "body": stub.render_pages("eu-west-1", 3, 1, 2, 1)[0]}
    custom = {}
    parser.hook(response, custom)
    assert len(custom["BakeryHostVars"]) == 2 and custom["NextToken"] == "eu-west-1.1"
    assert response["body"] == b"<DescribeInstancesResponse/>"  # the raw page is not kept
    error = {"status_code": 400, "body": b"<Response><Errors/></Response>"}
    parser.hook(error, custom := {})
    assert custom == {} and error["body"] == b"<Response><Errors/></Response>"


def test_set_region_adds_placement_when_missing():
    hostvars = {"instance_id": "i-1"}
    set_region(hostvars, "eu-west-1")
    assert hostvars["placement"] == {"region": "eu-west-1"}
