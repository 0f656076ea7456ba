from __future__ import annotations

import datetime

import pytest
from ansible.module_utils import basic
from ansible_collections.bakery.ec2.plugins.module_utils import _client, _instances
from ansible_collections.bakery.ec2.plugins.modules import ec2_launch
from botocore.stub import ANY
from ec2_fakes import (
    AMI,
    ED_PUB,
    LIVE,
    RSA_PUB,
    RSA_PUB_MD5,
    SG,
    SUBNET,
    T0,
    VPC,
    id_filter,
    instance,
    reservations,
)

ARM_AMI = "ami-0aaaaaaaaaaaaaaa0"


@pytest.fixture
def warnings(monkeypatch):
    """Warnings the module gives, in order."""
    seen = []
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, msg: seen.append(msg))
    return seen


def group_filters(name="web", vpc=None):
    filters = [{"Name": "tag:Name", "Values": [name]}, {"Name": "instance-state-name", "Values": LIVE}]
    if vpc:
        filters.append({"Name": "vpc-id", "Values": [vpc]})
    return {"Filters": filters}


def stub_find(ec2, *instances, name="web"):
    ec2.add_response("describe_instances", reservations(*instances), group_filters(name))


def stub_image(ec2, image_id=AMI, arch="x86_64"):
    ec2.add_response(
        "describe_images",
        {"Images": [{"ImageId": image_id, "Architecture": arch, "State": "available", "RootDeviceName": "/dev/xvda"}]},
        {"ImageIds": [image_id]},
    )


def stub_type(ec2, itype="t3.micro", archs=("x86_64",)):
    ec2.add_response(
        "describe_instance_types",
        {"InstanceTypes": [{"InstanceType": itype, "ProcessorInfo": {"SupportedArchitectures": list(archs)}}]},
        {"InstanceTypes": [itype]},
    )


def stub_default_subnet(ec2):
    ec2.add_response(
        "describe_subnets",
        {
            "Subnets": [
                {"SubnetId": "subnet-0bbbbbbbbbbbbbbb0", "VpcId": VPC, "AvailabilityZone": "us-east-1b"},
                {"SubnetId": SUBNET, "VpcId": VPC, "AvailabilityZone": "us-east-1a"},
            ]
        },
        {"Filters": [{"Name": "default-for-az", "Values": ["true"]}]},
    )


def stub_offerings(ec2, zones=("us-east-1a", "us-east-1b"), itype="t3.micro"):
    ec2.add_response(
        "describe_instance_type_offerings",
        {
            "InstanceTypeOfferings": [
                {"InstanceType": itype, "LocationType": "availability-zone", "Location": zone} for zone in zones
            ]
        },
        {"LocationType": "availability-zone", "Filters": [{"Name": "instance-type", "Values": [itype]}]},
    )


def stub_lookups(ec2, *existing, image=True):
    """The read-only calls of a run with no subnet_id: the group, image, type, zones offering it when
    launching, default or known subnet."""
    stub_find(ec2, *existing)
    if image:
        stub_image(ec2)
    stub_type(ec2)
    if not existing:
        stub_offerings(ec2)
        stub_default_subnet(ec2)


BASE = {"name": "web", "image_id": AMI}


# --- launching --------------------------------------------------------------------------------------


def test_one_run_instances_with_client_token_and_tags_then_waits_pending_to_running(ec2, run_module, slept):
    stub_lookups(ec2)
    token = _instances.client_token("web", "us-east-1", VPC, [], 2)
    ec2.add_response(
        "run_instances",
        {"Instances": [instance("i-00000001", "pending"), instance("i-00000002", "pending")]},
        {
            "ImageId": AMI,
            "InstanceType": "t3.micro",
            "MinCount": 2,
            "MaxCount": 2,
            "ClientToken": token,
            "SubnetId": SUBNET,
            "MetadataOptions": {"HttpTokens": "required"},
            "TagSpecifications": [
                {
                    "ResourceType": "instance",
                    "Tags": [{"Key": "Name", "Value": "web"}, {"Key": "Role", "Value": "app"}],
                },
                {"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": "web"}, {"Key": "Role", "Value": "app"}]},
            ],
            "UserData": ANY,
        },
    )
    # Not visible yet, then pending, then running.
    ec2.add_response("describe_instances", {"Reservations": []}, id_filter("i-00000001", "i-00000002"))
    ec2.add_response(
        "describe_instances",
        reservations(instance("i-00000001", "pending"), instance("i-00000002", "running")),
        id_filter("i-00000001", "i-00000002"),
    )
    ec2.add_response(
        "describe_instances",
        reservations(instance("i-00000001", "running"), instance("i-00000002", "running")),
        id_filter("i-00000001", "i-00000002"),
    )
    res = run_module(ec2_launch, dict(BASE, count=2, tags={"Role": "app"}, user_data="#!/bin/sh\necho hi\n"))
    assert not res.failed, res.result["msg"]
    assert res.result["changed"] is True
    assert res.result["launched_ids"] == ["i-00000001", "i-00000002"]
    assert res.result["instance_ids"] == ["i-00000001", "i-00000002"]
    assert [i["state"]["name"] for i in res.result["instances"]] == ["running", "running"]
    assert res.result["instances"][0]["tags"] == {"Name": "web"}
    assert "echo hi" not in str(res.result)
    # Fast first poll, then backing off.
    assert slept[:2] == [0.25, 0.4]


def test_without_wait_returns_once_new_instances_are_visible(ec2, run_module, slept):
    # EC2 is eventually consistent: the next task finds instances by name, so wait: false still waits
    # (briefly) until DescribeInstances shows what RunInstances launched, not for a state.
    stub_lookups(ec2)
    ec2.add_response("run_instances", {"Instances": [instance("i-00000001", "pending")]})
    ec2.add_response("describe_instances", {"Reservations": []}, id_filter("i-00000001"))
    ec2.add_response("describe_instances", {"Reservations": []}, id_filter("i-00000001"))
    ec2.add_response("describe_instances", reservations(instance("i-00000001", "pending")), id_filter("i-00000001"))
    res = run_module(ec2_launch, dict(BASE, wait=False))
    assert not res.failed, res.result["msg"]
    assert res.result["launched_ids"] == ["i-00000001"]
    assert [i["state"]["name"] for i in res.result["instances"]] == ["pending"]
    assert slept == [0.25, 0.4]
    ec2.assert_no_pending_responses()


def test_pending_instance_from_an_interrupted_run_counts_and_is_waited_for(ec2, run_module):
    stub_lookups(ec2, instance("i-00000001", "pending"))
    ec2.add_response("describe_instances", reservations(instance("i-00000001", "running")), id_filter("i-00000001"))
    res = run_module(ec2_launch, BASE)
    assert not res.failed, res.result["msg"]
    assert res.result["changed"] is False
    assert res.result["launched_ids"] == []
    assert res.result["instance_ids"] == ["i-00000001"]


def test_wait_timeout_fails_with_ids_and_last_states(ec2, run_module, monkeypatch):
    now = [0.0]
    monkeypatch.setattr(_client.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(_client.AwsClient, "sleep", staticmethod(lambda delay: now.__setitem__(0, now[0] + delay)))
    stub_lookups(ec2)
    ec2.add_response("run_instances", {"Instances": [instance("i-00000001", "pending")]})
    for _poll in range(4):
        ec2.add_response("describe_instances", reservations(instance("i-00000001", "pending")), id_filter("i-00000001"))
    res = run_module(ec2_launch, dict(BASE, wait_timeout=1))
    assert res.failed
    assert "timed out after 1s" in res.result["msg"]
    assert "i-00000001 pending" in res.result["msg"]
    assert res.result["launched_ids"] == ["i-00000001"]
    assert "\n" not in res.result["msg"]


def test_instance_that_dies_while_waiting_fails_at_once(ec2, run_module):
    stub_lookups(ec2)
    ec2.add_response("run_instances", {"Instances": [instance("i-00000001", "pending")]})
    dead = instance("i-00000001", "terminated", StateReason={"Code": "Server.InternalError", "Message": "boom"})
    ec2.add_response("describe_instances", reservations(dead), id_filter("i-00000001"))
    res = run_module(ec2_launch, BASE)
    assert res.failed
    assert res.result["msg"] == "instance i-00000001 went to terminated while waiting for running: boom"


BOOT_FAILED = {
    "Code": "Server.InternalError",
    "Message": "Server.InternalError: host exited during boot: Failed to create control group inotify object",
}


def test_instance_that_stops_while_booting_fails_the_wait_at_once_with_its_reason(ec2, run_module, slept):
    stub_lookups(ec2)
    ec2.add_response("run_instances", {"Instances": [instance("i-00000001", "pending")]})
    ec2.add_response("describe_instances", reservations(instance("i-00000001", "pending")), id_filter("i-00000001"))
    dead = instance("i-00000001", "stopped", StateReason=BOOT_FAILED)
    ec2.add_response("describe_instances", reservations(dead), id_filter("i-00000001"))
    res = run_module(ec2_launch, BASE)  # the Stubber fails the test on any poll after the stopped one
    assert res.failed
    assert res.result["msg"] == (
        f"instance i-00000001 went to stopped while waiting for running: {BOOT_FAILED['Message']}"
    )
    assert res.result["launched_ids"] == ["i-00000001"]
    assert len(slept) == 1  # one pause between the two polls, none after


def test_each_dead_state_fails_the_wait_for_running_on_the_first_poll(ec2, run_module):
    for state in ("stopped", "shutting-down", "terminated"):
        stub_lookups(ec2)
        ec2.add_response("run_instances", {"Instances": [instance("i-00000001", "pending")]})
        dead = instance("i-00000001", state, StateReason=BOOT_FAILED)
        ec2.add_response("describe_instances", reservations(dead), id_filter("i-00000001"))
        res = run_module(ec2_launch, BASE)
        assert res.failed
        assert res.result["msg"].startswith(f"instance i-00000001 went to {state} while waiting for running: ")
        assert res.result["msg"].endswith(BOOT_FAILED["Message"])
        ec2.assert_no_pending_responses()


def test_a_stale_stopped_answer_after_a_start_is_waited_through(ec2, run_module):
    """Right after StartInstances EC2 may still answer stopped (by its user); that is no failure."""
    by_user = {"Code": "Client.UserInitiatedShutdown", "Message": "Client.UserInitiatedShutdown: User initiated"}
    stub_lookups(ec2, instance("i-00000001", "stopped", StateReason=by_user), image=False)
    ec2.add_response("start_instances", {"StartingInstances": []}, {"InstanceIds": ["i-00000001"]})
    stale = instance("i-00000001", "stopped", StateReason=by_user)
    ec2.add_response("describe_instances", reservations(stale), id_filter("i-00000001"))
    ec2.add_response("describe_instances", reservations(instance("i-00000001", "pending")), id_filter("i-00000001"))
    ec2.add_response("describe_instances", reservations(instance("i-00000001")), id_filter("i-00000001"))
    res = run_module(ec2_launch, {"name": "web"})
    assert not res.failed, res.result["msg"]
    assert res.result["changes"] == ["start i-00000001"]


def test_a_started_instance_that_stops_again_fails_the_wait(ec2, run_module):
    by_user = {"Code": "Client.UserInitiatedShutdown", "Message": "Client.UserInitiatedShutdown: User initiated"}
    stub_lookups(ec2, instance("i-00000001", "stopped", StateReason=by_user), image=False)
    ec2.add_response("start_instances", {"StartingInstances": []}, {"InstanceIds": ["i-00000001"]})
    ec2.add_response("describe_instances", reservations(instance("i-00000001", "pending")), id_filter("i-00000001"))
    again = instance("i-00000001", "stopped", StateReason=by_user)
    ec2.add_response("describe_instances", reservations(again), id_filter("i-00000001"))
    res = run_module(ec2_launch, {"name": "web"})
    assert res.failed
    assert res.result["msg"] == (
        "instance i-00000001 went to stopped while waiting for running: Client.UserInitiatedShutdown: User initiated"
    )


def test_throttling_is_retried_with_the_same_client_token(ec2, run_module, slept):
    stub_lookups(ec2)
    token = _instances.client_token("web", "us-east-1", VPC, [], 1)
    ec2.add_client_error("run_instances", "RequestLimitExceeded", "Request limit exceeded.", 503)
    ec2.add_response(
        "run_instances", {"Instances": [instance("i-00000001", "running")]}, {"ClientToken": token, **run_params()}
    )
    ec2.add_response("describe_instances", reservations(instance("i-00000001")), id_filter("i-00000001"))
    res = run_module(ec2_launch, BASE)
    assert not res.failed, res.result["msg"]
    assert res.result["launched_ids"] == ["i-00000001"]
    assert len(slept) == 1 and 0 <= slept[0] <= 0.5


def run_params(count=1):
    return {
        "ImageId": AMI,
        "InstanceType": "t3.micro",
        "MinCount": count,
        "MaxCount": count,
        "SubnetId": SUBNET,
        "MetadataOptions": {"HttpTokens": "required"},
        "TagSpecifications": [
            {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "web"}]},
            {"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": "web"}]},
        ],
    }


CMK = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def test_a_volume_kms_key_id_is_sent_as_its_mapping_kms_key_with_encrypted_true(ec2, run_module):
    # The key goes into that volume's mapping only; a volume without one is encrypted with the account's default.
    stub_lookups(ec2)
    volumes = [
        {"device_name": "/dev/sdf", "size": 20, "kms_key_id": CMK},
        {"device_name": "/dev/sdg", "size": 10, "type": "gp3", "throughput": 250},
    ]
    request = dict(
        run_params(),
        ClientToken=_instances.client_token("web", "us-east-1", VPC, [], 1),
        BlockDeviceMappings=[
            {
                "DeviceName": "/dev/sdf",
                "Ebs": {
                    "VolumeType": "gp3",
                    "Encrypted": True,
                    "DeleteOnTermination": True,
                    "VolumeSize": 20,
                    "KmsKeyId": CMK,
                },
            },
            {
                "DeviceName": "/dev/sdg",
                "Ebs": {
                    "VolumeType": "gp3",
                    "Encrypted": True,
                    "DeleteOnTermination": True,
                    "VolumeSize": 10,
                    "Throughput": 250,
                },
            },
        ],
    )
    ec2.add_response("run_instances", {"Instances": [instance("i-00000001", "pending")]}, request)
    ec2.add_response("describe_instances", reservations(instance("i-00000001", "running")), id_filter("i-00000001"))
    res = run_module(ec2_launch, dict(BASE, volumes=volumes))
    assert not res.failed, res.result["msg"]
    assert res.result["launched_ids"] == ["i-00000001"]
    ec2.assert_no_pending_responses()


def test_stale_client_token_gets_a_new_deterministic_one(ec2, run_module):
    stub_lookups(ec2)
    first = _instances.client_token("web", "us-east-1", VPC, [], 1)
    second = _instances.client_token("web", "us-east-1", VPC, [], 1, "stale:i-0000000a")
    ec2.add_response(
        "run_instances", {"Instances": [instance("i-0000000a", "terminated")]}, {"ClientToken": first, **run_params()}
    )
    ec2.add_response(
        "run_instances", {"Instances": [instance("i-00000001", "pending")]}, {"ClientToken": second, **run_params()}
    )
    ec2.add_response("describe_instances", reservations(instance("i-00000001")), id_filter("i-00000001"))
    res = run_module(ec2_launch, BASE)
    assert not res.failed, res.result["msg"]
    assert res.result["launched_ids"] == ["i-00000001"]


def stub_used_tokens(ec2, *gone_ids: str) -> str:
    """RunInstances answers each link of the token chain with the terminated instance of an earlier launch; returns
    the chain's next token."""
    salt = ""
    for gone in gone_ids:
        token = _instances.client_token("web", "us-east-1", VPC, [], 1, salt)
        ec2.add_response(
            "run_instances", {"Instances": [instance(gone, "terminated")]}, {"ClientToken": token, **run_params()}
        )
        salt = f"stale:{gone}"
    return _instances.client_token("web", "us-east-1", VPC, [], 1, salt)


def test_a_group_launched_many_times_before_walks_the_chain_of_used_tokens_to_a_fresh_one(ec2, run_module):
    """A pipeline's builder group is launched and terminated several times a day: each launch left a used token."""
    stub_lookups(ec2)
    fresh = stub_used_tokens(ec2, "i-0000000a", "i-0000000b", "i-0000000c", "i-0000000d")
    ec2.add_response(
        "run_instances", {"Instances": [instance("i-00000001", "pending")]}, {"ClientToken": fresh, **run_params()}
    )
    ec2.add_response("describe_instances", reservations(instance("i-00000001")), id_filter("i-00000001"))
    res = run_module(ec2_launch, BASE)
    assert not res.failed, res.result["msg"]
    assert res.result["launched_ids"] == ["i-00000001"]
    ec2.assert_no_pending_responses()


def test_a_chain_of_used_tokens_longer_than_the_bound_fails_in_one_line_naming_the_group(ec2, run_module, monkeypatch):
    monkeypatch.setattr(_instances, "TOKEN_HOPS", 2)
    stub_lookups(ec2)
    stub_used_tokens(ec2, "i-0000000a", "i-0000000b")
    res = run_module(ec2_launch, BASE)
    assert res.failed
    msg = res.result["msg"]
    assert "\n" not in msg and "2 client tokens in a row" in msg and "group web" in msg, msg
    assert res.result["launched_ids"] == []
    ec2.assert_no_pending_responses()


def test_rerun_with_everything_in_place_changes_nothing(ec2, run_module):
    stub_lookups(ec2, instance("i-00000001"), instance("i-00000002", launched=T0 + datetime.timedelta(minutes=1)))
    res = run_module(ec2_launch, dict(BASE, count=2, tags={"Name": "web"}))
    assert not res.failed, res.result["msg"]
    assert res.result["changed"] is False
    assert res.result["changes"] == []
    assert res.result["instance_ids"] == ["i-00000001", "i-00000002"]


# --- scaling down -----------------------------------------------------------------------------------


def test_scale_down_terminates_the_oldest_by_launch_time_then_id(ec2, run_module):
    later = T0 + datetime.timedelta(hours=1)
    group = [
        instance("i-0000000c", launched=later),
        instance("i-0000000b", launched=T0),
        instance("i-0000000a", launched=T0),
        instance("i-00000009", launched=later + datetime.timedelta(hours=1)),
    ]
    stub_lookups(ec2, *group)
    ec2.add_response(
        "terminate_instances", {"TerminatingInstances": []}, {"InstanceIds": ["i-0000000a", "i-0000000b", "i-0000000c"]}
    )
    ec2.add_response(
        "describe_instances",
        reservations(instance("i-0000000a", "terminated"), instance("i-0000000b", "shutting-down")),
        id_filter("i-0000000a", "i-0000000b", "i-0000000c"),
    )
    ec2.add_response(
        "describe_instances",
        reservations(instance("i-0000000b", "terminated")),
        id_filter("i-0000000a", "i-0000000b", "i-0000000c"),
    )
    ec2.add_response("describe_instances", reservations(group[3]), id_filter("i-00000009"))
    res = run_module(ec2_launch, dict(BASE, count=1))
    assert not res.failed, res.result["msg"]
    assert res.result["terminated_ids"] == ["i-0000000a", "i-0000000b", "i-0000000c"]
    assert res.result["instance_ids"] == ["i-00000009"]


# --- check mode -------------------------------------------------------------------------------------


def test_check_mode_sends_nothing_that_mutates(ec2, run_module):
    # Only read calls are stubbed; any other call would fail the test (Stubber refuses unexpected calls).
    old = instance("i-00000001", tags={"Name": "web", "Stage": "old"})
    new = instance("i-00000002", launched=T0 + datetime.timedelta(hours=1), state="stopped")
    stub_lookups(ec2, old, new)
    ec2.add_response("describe_key_pairs", {"KeyPairs": []}, {"KeyNames": ["deploy"], "IncludePublicKey": True})
    ec2.add_response(
        "describe_security_groups",
        {"SecurityGroups": []},
        {"Filters": [{"Name": "group-name", "Values": ["web"]}, {"Name": "vpc-id", "Values": [VPC]}]},
    )
    res = run_module(
        ec2_launch,
        dict(
            BASE,
            count=1,
            key_name="deploy",
            public_key=ED_PUB,
            tags={"Stage": "new"},
            firewall=[{"ports": "80", "cidr": ["0.0.0.0/0"]}],
        ),
        check_mode=True,
        diff=True,
    )
    assert not res.failed, res.result["msg"]
    assert res.result["changed"] is True
    assert res.result["terminated_ids"] == ["i-00000001"]
    assert res.result["launched_ids"] == []
    changes = res.result["changes"]
    assert "import key pair deploy" in changes
    assert f"create security group web in {VPC}" in changes
    assert "authorize tcp 80 from 0.0.0.0/0 on web" in changes
    assert "start i-00000002" in changes
    assert "tag i-00000002 with Stage" in changes
    diff = res.result["diff"]
    assert diff["before"]["count"] == 2 and diff["after"]["count"] == 1
    assert diff["after"]["instances"]["i-00000002"] == {"state": "running", "tags": {"Name": "web", "Stage": "new"}}
    assert diff["before"]["firewall"] == [] and diff["after"]["firewall"] == ["tcp 80 from 0.0.0.0/0"]


def test_check_mode_launch_reports_without_run_instances(ec2, run_module):
    stub_lookups(ec2)
    res = run_module(ec2_launch, dict(BASE, count=3), check_mode=True)
    assert res.result["changed"] is True
    assert res.result["changes"] == ["launch 3 instance(s) in " + SUBNET]
    assert res.result["instance_ids"] == []


# --- reconciling in place ---------------------------------------------------------------------------


def test_tags_groups_protection_and_metadata_are_reconciled_in_place(ec2, run_module):
    inst = instance("i-00000001", tags={"Name": "web", "Old": "x"}, groups=("sg-0ffffffffffffffff",))
    stub_lookups(ec2, inst)
    ec2.add_response(
        "describe_security_groups",
        {"SecurityGroups": [{"GroupId": SG, "GroupName": "app", "VpcId": VPC}]},
        {"GroupIds": [SG]},
    )
    ec2.add_response(
        "describe_instance_attribute",
        {"InstanceId": "i-00000001", "DisableApiTermination": {"Value": False}},
        {"Attribute": "disableApiTermination", "InstanceId": "i-00000001"},
    )
    ec2.add_response("create_tags", {}, {"Resources": ["i-00000001"], "Tags": [{"Key": "Role", "Value": "app"}]})
    ec2.add_response("delete_tags", {}, {"Resources": ["i-00000001"], "Tags": [{"Key": "Old"}]})
    ec2.add_response("modify_instance_attribute", {}, {"InstanceId": "i-00000001", "Groups": [SG]})
    ec2.add_response(
        "modify_instance_attribute", {}, {"InstanceId": "i-00000001", "DisableApiTermination": {"Value": True}}
    )
    ec2.add_response(
        "modify_instance_metadata_options",
        {},
        {"InstanceId": "i-00000001", "HttpPutResponseHopLimit": 2},
    )
    ec2.add_response("describe_instances", reservations(inst), id_filter("i-00000001"))
    res = run_module(
        ec2_launch,
        dict(
            BASE,
            tags={"Role": "app"},
            security_groups=[SG],
            termination_protection=True,
            metadata_options={"http_put_response_hop_limit": 2},
        ),
    )
    assert not res.failed, res.result["msg"]
    assert res.result["changed"] is True
    assert len(res.result["changes"]) == 5


def test_stop_waits_for_pending_then_stops_and_waits(ec2, run_module):
    stub_lookups(ec2, instance("i-00000001", "pending"), image=False)
    ec2.add_response("describe_instances", reservations(instance("i-00000001")), id_filter("i-00000001"))
    ec2.add_response("stop_instances", {"StoppingInstances": []}, {"InstanceIds": ["i-00000001"]})
    ec2.add_response("describe_instances", reservations(instance("i-00000001", "stopping")), id_filter("i-00000001"))
    ec2.add_response("describe_instances", reservations(instance("i-00000001", "stopped")), id_filter("i-00000001"))
    res = run_module(ec2_launch, {"name": "web", "state": "stopped"})
    assert not res.failed, res.result["msg"]
    assert res.result["changes"] == ["stop i-00000001"]
    assert res.result["instances"][0]["state"]["name"] == "stopped"


def test_drift_is_reported_with_a_warning_never_replaced(ec2, run_module, warnings):
    stub_find(ec2, instance("i-00000001"))
    stub_image(ec2, "ami-0bbbbbbbbbbbbbbb0")
    stub_type(ec2, "t3.large")
    res = run_module(ec2_launch, {"name": "web", "image_id": "ami-0bbbbbbbbbbbbbbb0", "instance_type": "t3.large"})
    assert not res.failed, res.result["msg"]
    assert res.result["changed"] is False
    assert {(d["option"], d["current"], d["wanted"]) for d in res.result["drift"]} == {
        ("image_id", AMI, "ami-0bbbbbbbbbbbbbbb0"),
        ("instance_type", "t3.micro", "t3.large"),
    }
    assert len(warnings) == 2
    assert warnings[0].startswith(f"i-00000001: image_id is '{AMI}', wanted 'ami-0bbbbbbbbbbbbbbb0'; not changed")


# --- firewall ---------------------------------------------------------------------------------------


def test_firewall_rules_are_made_exact_and_ssh_to_world_warns(ec2, run_module, warnings):
    stub_lookups(ec2, instance("i-00000001"), image=False)
    ec2.add_response(
        "describe_security_groups",
        {
            "SecurityGroups": [
                {
                    "GroupId": SG,
                    "GroupName": "web",
                    "VpcId": VPC,
                    "Tags": [{"Key": "ManagedBy", "Value": "bakery.ec2.ec2_launch"}],
                    "IpPermissions": [
                        {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
                        {"IpProtocol": "tcp", "FromPort": 25, "ToPort": 25, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]},
                    ],
                }
            ]
        },
    )
    ec2.add_response(
        "revoke_security_group_ingress",
        {},
        {
            "GroupId": SG,
            "IpPermissions": [
                {"IpProtocol": "tcp", "FromPort": 25, "ToPort": 25, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}
            ],
        },
    )
    ec2.add_response(
        "authorize_security_group_ingress",
        {},
        {
            "GroupId": SG,
            "IpPermissions": [
                {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": SG}]},
                {
                    "IpProtocol": "tcp",
                    "FromPort": 22,
                    "ToPort": 22,
                    "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
                    "Ipv6Ranges": [{"CidrIpv6": "2001:db8::/32"}],
                },
            ],
        },
    )
    rules = [
        {"ports": 80, "cidr": ["0.0.0.0/0"]},
        {"ports": "22", "cidr": ["0.0.0.0/0", "2001:db8:0::/32"]},
        {"proto": "all", "source_group": "web"},
    ]
    res = run_module(ec2_launch, {"name": "web", "firewall": rules})
    assert not res.failed, res.result["msg"]
    assert res.result["security_group_id"] == SG
    assert warnings == ["firewall: port 22 of 'web' is open to the whole internet"]


def test_foreign_group_with_the_same_name_is_not_taken_over(ec2, run_module):
    stub_lookups(ec2, instance("i-00000001"), image=False)
    ec2.add_response(
        "describe_security_groups", {"SecurityGroups": [{"GroupId": SG, "GroupName": "web", "VpcId": VPC}]}
    )
    res = run_module(ec2_launch, {"name": "web", "firewall": [{"ports": 80, "cidr": ["0.0.0.0/0"]}]})
    assert res.failed
    assert "was not made by ec2_launch" in res.result["msg"]


# --- absent -----------------------------------------------------------------------------------------


def test_absent_terminates_waits_and_deletes_the_group_retrying_dependency_violation(ec2, run_module, slept):
    stub_find(ec2, instance("i-00000001"))
    ec2.add_response("terminate_instances", {"TerminatingInstances": []}, {"InstanceIds": ["i-00000001"]})
    ec2.add_response("describe_instances", reservations(instance("i-00000001", "terminated")), id_filter("i-00000001"))
    managed = [
        {"Name": "group-name", "Values": ["web"]},
        {"Name": "tag:ManagedBy", "Values": ["bakery.ec2.ec2_launch"]},
    ]
    ec2.add_response(
        "describe_security_groups",
        {"SecurityGroups": [{"GroupId": SG, "GroupName": "web", "VpcId": VPC}]},
        {"Filters": managed},
    )
    ec2.add_response(
        "describe_instances",
        {"Reservations": []},
        {
            "Filters": [
                {"Name": "instance.group-id", "Values": [SG]},
                {"Name": "instance-state-name", "Values": [*LIVE, "shutting-down"]},
            ]
        },
    )
    ec2.add_client_error("delete_security_group", "DependencyViolation", "resource sg has a dependent object")
    ec2.add_response("delete_security_group", {}, {"GroupId": SG})
    res = run_module(ec2_launch, {"name": "web", "state": "absent"})
    assert not res.failed, res.result["msg"]
    assert res.result["terminated_ids"] == ["i-00000001"]
    assert res.result["changes"] == ["terminate i-00000001", f"delete security group web ({SG})"]
    assert res.result["instances"] == []
    assert slept == [0.25]


def test_absent_with_nothing_there_is_unchanged(ec2, run_module):
    stub_find(ec2)
    ec2.add_response("describe_security_groups", {"SecurityGroups": []})
    res = run_module(ec2_launch, {"name": "web", "state": "absent"})
    assert res.result["changed"] is False


# --- key pairs --------------------------------------------------------------------------------------


def test_public_key_import_when_missing(ec2, run_module):
    stub_lookups(ec2, instance("i-00000001", KeyName="deploy"), image=False)
    ec2.add_client_error("describe_key_pairs", "InvalidKeyPair.NotFound", "The key pair 'deploy' does not exist")
    ec2.add_response(
        "import_key_pair",
        {"KeyName": "deploy", "KeyFingerprint": "x"},
        {"KeyName": "deploy", "PublicKeyMaterial": ED_PUB.encode()},
    )
    res = run_module(ec2_launch, {"name": "web", "key_name": "deploy", "public_key": ED_PUB})
    assert not res.failed, res.result["msg"]
    assert res.result["changes"] == ["import key pair deploy"]


@pytest.mark.parametrize("with_public_key", [True, False])
def test_existing_key_with_the_same_public_key_is_accepted(ec2, run_module, with_public_key):
    stub_lookups(ec2, instance("i-00000001", KeyName="deploy"), image=False)
    pair = {"KeyName": "deploy", "KeyFingerprint": RSA_PUB_MD5}  # as EC2 shows an imported RSA key
    if with_public_key:
        pair["PublicKey"] = RSA_PUB.replace("test@example", "other comment")
    ec2.add_response("describe_key_pairs", {"KeyPairs": [pair]})
    res = run_module(ec2_launch, {"name": "web", "key_name": "deploy", "public_key": RSA_PUB})
    assert not res.failed, res.result["msg"]
    assert res.result["changed"] is False


def test_existing_key_with_another_public_key_fails(ec2, run_module):
    stub_lookups(ec2, instance("i-00000001", KeyName="deploy"), image=False)
    ec2.add_response(
        "describe_key_pairs", {"KeyPairs": [{"KeyName": "deploy", "KeyFingerprint": "aa:bb", "PublicKey": RSA_PUB}]}
    )
    res = run_module(ec2_launch, {"name": "web", "key_name": "deploy", "public_key": ED_PUB})
    assert res.failed
    assert res.result["msg"].startswith("public_key: key pair 'deploy' exists with another key")


def test_existing_key_pair_by_name_alone_is_used_whatever_key_it_holds(ec2, run_module):
    """AWX's Machine credential route: the key pair exists, no key material is given; nothing is imported."""
    stub_lookups(ec2, instance("i-00000001", KeyName="deploy"), image=False)
    ec2.add_response(
        "describe_key_pairs",
        {"KeyPairs": [{"KeyName": "deploy", "KeyFingerprint": "aa:bb", "PublicKey": RSA_PUB}]},
        {"KeyNames": ["deploy"], "IncludePublicKey": True},
    )
    res = run_module(ec2_launch, {"name": "web", "key_name": "deploy"})
    assert not res.failed, res.result["msg"]
    assert res.result["changed"] is False


# --- bad input --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "msg"),
    [
        ({"count": -1}, "count: -1 is negative; give the number of instances to have (0 or more)"),
        ({"image_id": "ami-xyz"}, "image_id: 'ami-xyz' is not an AMI ID (ami- followed by 8 to 17 hex digits)"),
        ({"subnet_id": "sub-1"}, "subnet_id: 'sub-1' is not a subnet ID (subnet- followed by 8 to 17 hex digits)"),
        ({"tags": {"aws:owner": "me"}}, "tags: tag key 'aws:owner' uses the reserved prefix 'aws:'"),
        ({"tags": {"Name": "db"}}, "tags: Name 'db' conflicts with name 'web'"),
        ({"user_data": "é" * 8193}, "user_data: 16386 bytes, EC2 allows at most 16384"),
        ({"firewall": [{"ports": 22, "cidr": ["10.0.0/8x"]}]}, "firewall[0].cidr: '10.0.0/8x' is not a valid CIDR"),
        ({"firewall": [{"ports": 22, "cidr": ["10.0.0.1/8"]}]}, "firewall[0].cidr: '10.0.0.1/8' is not a valid CIDR"),
        ({"firewall": [{"ports": 65536, "cidr": ["10.0.0.0/8"]}]}, "firewall[0].ports: port 65536 is out of range"),
        ({"firewall": [{"ports": "1-70000", "cidr": ["::/0"]}]}, "port 70000 in '1-70000' is out of range 0-65535"),
        (
            {"firewall": [{"ports": "443-80", "cidr": ["::/0"]}]},
            "firewall[0].ports: '443-80' starts above where it ends",
        ),
        ({"firewall": [{"ports": "http", "cidr": ["::/0"]}]}, "firewall[0].ports: 'http' is not a port or a from-to"),
        ({"firewall": [{"cidr": ["::/0"]}]}, "firewall[0]: ports is required with proto tcp"),
        ({"firewall": [{"proto": "icmp", "ports": 8, "cidr": ["::/0"]}]}, "ports 8 cannot be used with proto icmp"),
        ({"firewall": [{"ports": 80}]}, "firewall[0]: give exactly one of cidr or source_group"),
        ({"firewall": [{"ports": 80, "source_group": "sg-12"}]}, "'sg-12' is not a security group ID"),
        ({"security_groups": ["sg-zz"]}, "security_groups: 'sg-zz' is not a security group ID"),
        ({"key_name": "k", "public_key": "ssh-dss AAAA"}, "public_key: not an OpenSSH ssh-rsa or ssh-ed25519"),
        ({"key_name": "k", "public_key": "ssh-rsa AAAAC3NzaC1lZDI1NTE5"}, "public_key: not an OpenSSH"),
        ({"metadata_options": {"http_put_response_hop_limit": 65}}, "hop_limit: 65 is not between 1 and 64"),
        ({"volumes": [{"device_name": "/dev/sdf", "type": "gp2", "iops": 3000}]}, "volumes[0].iops: cannot be set"),
        (
            {"volumes": [{"device_name": "/dev/sdf", "type": "io2", "iops": 3000, "throughput": 200}]},
            "throughput: cannot",
        ),
        ({"volumes": [{"device_name": "/dev/sdf", "type": "io1"}]}, "volumes[0].iops: required for volume type 'io1'"),
        (
            {"volumes": [{"device_name": "/dev/sdf", "type": "io2", "iops": None}]},
            "iops: required for volume type 'io2'",
        ),
        ({"volumes": [{"device_name": "/dev/sdf", "type": "st1", "throughput": 250}]}, "throughput: cannot be set for"),
        ({"volumes": [{"device_name": "/dev/sdf", "size": 0}]}, "volumes[0].size: 0 is not a size in GiB"),
        ({"volumes": [{"device_name": "/dev/sdf"}, {"device_name": "/dev/sdf"}]}, "'/dev/sdf' is listed twice"),
        ({"wait_timeout": -5}, "wait_timeout: -5 is negative"),
        ({"name": ""}, "name: '' is blank; give the group's name"),
        ({"name": " "}, "name: ' ' is blank"),
        ({"name": "", "state": "absent"}, "name: '' is blank"),
    ],
)
def test_bad_input_fails_before_any_aws_call(ec2, run_module, args, msg):
    # Nothing is stubbed: a single AWS call would fail the test with another message.
    res = run_module(ec2_launch, dict(BASE, **args))
    assert res.failed
    assert msg in res.result["msg"]
    assert "\n" not in res.result["msg"]


def test_public_key_without_key_name_is_refused(ec2, run_module):
    res = run_module(ec2_launch, dict(BASE, public_key=ED_PUB))
    assert res.failed
    assert "key_name" in res.result["msg"]


def test_public_key_without_cryptography_fails_naming_the_library_before_any_aws_call(ec2, run_module, monkeypatch):
    monkeypatch.setattr(ec2_launch, "HAS_CRYPTOGRAPHY", False)
    res = run_module(ec2_launch, dict(BASE, key_name="deploy", public_key=ED_PUB))
    assert res.failed
    assert "Failed to import the required Python library (cryptography)" in res.result["msg"]
    assert "\n" not in res.result["msg"]
    # Without public_key the library is not needed.
    stub_lookups(ec2, instance("i-00000001"))
    assert not run_module(ec2_launch, BASE).failed


def not_found(ec2, operation, code, message="not found"):
    ec2.add_client_error(operation, code, message)


@pytest.mark.parametrize(
    ("setup", "args", "msg"),
    [
        (
            lambda ec2: not_found(ec2, "describe_images", "InvalidAMIID.NotFound"),
            {},
            f"image_id: '{AMI}' not found in us-east-1; AMI IDs are per region, so an ID from another region does "
            "not exist here: find this region's with bakery.ec2.ami_find, or copy the image here",
        ),
        (
            lambda ec2: (stub_image(ec2), not_found(ec2, "describe_instance_types", "InvalidInstanceType")),
            {"instance_type": "t9.huge"},
            "instance_type: 't9.huge' is not offered in us-east-1",
        ),
        (
            lambda ec2: (stub_image(ec2, ARM_AMI, "arm64"), stub_type(ec2)),
            {"image_id": ARM_AMI},
            f"instance_type: 't3.micro' runs x86_64 but image {ARM_AMI} is arm64",
        ),
        (
            lambda ec2: (stub_image(ec2), stub_type(ec2, "t4g.micro", ("arm64",))),
            {"instance_type": "t4g.micro"},
            f"instance_type: 't4g.micro' runs arm64 but image {AMI} is x86_64",
        ),
        (
            lambda ec2: (
                stub_image(ec2),
                stub_type(ec2),
                stub_offerings(ec2),
                stub_default_subnet(ec2),
                stub_no_key(ec2),
            ),
            {"key_name": "nope"},
            "key_name: key pair 'nope' not found in us-east-1",
        ),
        (
            lambda ec2: (
                stub_image(ec2),
                stub_type(ec2),
                stub_offerings(ec2),
                stub_default_subnet(ec2),
                ec2.add_response("describe_security_groups", {"SecurityGroups": []}),
            ),
            {"security_groups": ["db-clients"]},
            f"security_groups: security group 'db-clients' not found in {VPC}",
        ),
        (
            lambda ec2: (
                stub_image(ec2),
                stub_type(ec2),
                stub_offerings(ec2),
                stub_default_subnet(ec2),
                not_found(ec2, "describe_security_groups", "InvalidGroup.NotFound"),
            ),
            {"security_groups": [SG]},
            f"security_groups: security group '{SG}' not found in {VPC}",
        ),
        (
            lambda ec2: (
                stub_image(ec2),
                stub_type(ec2),
                stub_offerings(ec2, ("us-east-1z",)),
                ec2.add_response("describe_subnets", {"Subnets": []}),
            ),
            {"availability_zone": "us-east-1z"},
            "no default subnet in us-east-1z to launch into; give subnet_id",
        ),
    ],
)
def test_unknown_resources_fail_before_anything_changes(ec2, run_module, setup, args, msg):
    stub_find(ec2)
    setup(ec2)
    res = run_module(ec2_launch, dict(BASE, **args))
    assert res.failed
    assert res.result["msg"] == msg


def stub_no_key(ec2):
    not_found(ec2, "describe_key_pairs", "InvalidKeyPair.NotFound")


def test_unknown_subnet_and_conflicting_zone(ec2, run_module):
    not_found(ec2, "describe_subnets", "InvalidSubnetID.NotFound")
    res = run_module(ec2_launch, dict(BASE, subnet_id=SUBNET))
    assert res.result["msg"] == f"subnet_id: '{SUBNET}' not found in us-east-1"
    ec2.add_response(
        "describe_subnets", {"Subnets": [{"SubnetId": SUBNET, "VpcId": VPC, "AvailabilityZone": "us-east-1a"}]}
    )
    res = run_module(ec2_launch, dict(BASE, subnet_id=SUBNET, availability_zone="us-east-1b"))
    assert res.result["msg"] == f"availability_zone: 'us-east-1b' conflicts with subnet {SUBNET} in us-east-1a"


def test_launch_without_image_id_is_refused(ec2, run_module):
    stub_find(ec2)
    stub_type(ec2)
    res = run_module(ec2_launch, {"name": "web", "count": 2})
    assert res.result["msg"] == "image_id is required to launch 2 instance(s) named 'web'"


# --- key pair removal with state: absent -------------------------------------------------------------

KEY_USERS = {
    "Filters": [
        {"Name": "key-name", "Values": ["deploy"]},
        {"Name": "instance-state-name", "Values": [*LIVE, "shutting-down"]},
    ]
}


def stub_absent_without_instances(ec2):
    stub_find(ec2)
    ec2.add_response("describe_security_groups", {"SecurityGroups": []})


def test_absent_deletes_the_imported_key_pair_once_unused(ec2, run_module):
    stub_absent_without_instances(ec2)
    ec2.add_response(
        "describe_key_pairs",
        {"KeyPairs": [{"KeyName": "deploy", "KeyFingerprint": "x", "PublicKey": ED_PUB}]},
        {"KeyNames": ["deploy"], "IncludePublicKey": True},
    )
    ec2.add_response("describe_instances", {"Reservations": []}, KEY_USERS)
    ec2.add_response("delete_key_pair", {}, {"KeyName": "deploy"})
    res = run_module(ec2_launch, {"name": "web", "state": "absent", "key_name": "deploy", "public_key": ED_PUB})
    assert not res.failed, res.result["msg"]
    assert res.result["changes"] == ["delete key pair deploy"]


def test_absent_without_public_key_leaves_the_key_pair_alone(ec2, run_module):
    """A key pair this task did not import (no public_key given) is never looked at or deleted."""
    stub_absent_without_instances(ec2)
    res = run_module(ec2_launch, {"name": "web", "state": "absent", "key_name": "deploy"})
    assert not res.failed, res.result["msg"]
    assert res.result["changed"] is False


def test_absent_keeps_a_key_pair_other_instances_use(ec2, run_module, warnings):
    stub_absent_without_instances(ec2)
    ec2.add_response("describe_key_pairs", {"KeyPairs": [{"KeyName": "deploy", "PublicKey": ED_PUB}]})
    ec2.add_response("describe_instances", reservations(instance("i-00000009", KeyName="deploy")), KEY_USERS)
    res = run_module(ec2_launch, {"name": "web", "state": "absent", "key_name": "deploy", "public_key": ED_PUB})
    assert res.result["changed"] is False
    assert warnings == ["key pair deploy kept: instances i-00000009 still use it"]


def test_absent_keeps_a_key_pair_holding_another_key(ec2, run_module, warnings):
    stub_absent_without_instances(ec2)
    ec2.add_response("describe_key_pairs", {"KeyPairs": [{"KeyName": "deploy", "PublicKey": RSA_PUB}]})
    res = run_module(ec2_launch, {"name": "web", "state": "absent", "key_name": "deploy", "public_key": ED_PUB})
    assert res.result["changed"] is False
    assert warnings == ["key pair deploy kept: it holds another key than public_key"]


def test_absent_in_check_mode_plans_the_key_deletion_without_making_it(ec2, run_module):
    stub_find(ec2, instance("i-00000001", KeyName="deploy"))
    ec2.add_response("describe_security_groups", {"SecurityGroups": []})
    ec2.add_response("describe_key_pairs", {"KeyPairs": [{"KeyName": "deploy", "PublicKey": ED_PUB}]})
    ec2.add_response("describe_instances", reservations(instance("i-00000001", KeyName="deploy")), KEY_USERS)
    res = run_module(
        ec2_launch, {"name": "web", "state": "absent", "key_name": "deploy", "public_key": ED_PUB}, check_mode=True
    )
    assert res.result["changes"] == ["terminate i-00000001", "delete key pair deploy"]


# --- on real AWS: eventual consistency, lost answers, filter limit, zones and types, metadata ------------

NEW_SG = "sg-0eeeeeeeeeeeeeee0"
MANAGED_GROUP = {
    "GroupId": NEW_SG,
    "GroupName": "web",
    "VpcId": VPC,
    "Tags": [{"Key": "Name", "Value": "web"}, {"Key": "ManagedBy", "Value": "bakery.ec2.ec2_launch"}],
    "IpPermissions": [],
}
HTTP_RULE = [{"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
GROUP_LOOKUP = {"Filters": [{"Name": "group-name", "Values": ["web"]}, {"Name": "vpc-id", "Values": [VPC]}]}


def stub_new_key_and_group(ec2):
    """A first run with key_name/public_key and firewall: nothing exists yet."""
    stub_lookups(ec2)
    ec2.add_client_error("describe_key_pairs", "InvalidKeyPair.NotFound", "The key pair 'deploy' does not exist")
    ec2.add_response("describe_security_groups", {"SecurityGroups": []}, GROUP_LOOKUP)


NEW_KEY_AND_GROUP = dict(BASE, key_name="deploy", public_key=ED_PUB, firewall=[{"ports": 80, "cidr": ["0.0.0.0/0"]}])


def test_not_found_for_what_this_run_created_is_retried(ec2, run_module, slept):
    stub_new_key_and_group(ec2)
    ec2.add_response("import_key_pair", {"KeyName": "deploy", "KeyFingerprint": "x"})
    ec2.add_response("create_security_group", {"GroupId": NEW_SG})
    # EC2 does not show the new group and key to every call at once.
    ec2.add_client_error(
        "authorize_security_group_ingress", "InvalidGroup.NotFound", "The security group does not exist"
    )
    ec2.add_client_error("authorize_security_group_ingress", "InvalidGroupId.NotFound", "not yet")
    ec2.add_response("authorize_security_group_ingress", {}, {"GroupId": NEW_SG, "IpPermissions": HTTP_RULE})
    ec2.add_client_error("run_instances", "InvalidKeyPair.NotFound", "The key pair 'deploy' does not exist")
    ec2.add_client_error("run_instances", "InvalidGroup.NotFound", "The security group does not exist")
    ec2.add_response("run_instances", {"Instances": [instance("i-00000001", "pending")]})
    ec2.add_response("describe_instances", reservations(instance("i-00000001")), id_filter("i-00000001"))
    res = run_module(ec2_launch, NEW_KEY_AND_GROUP)
    assert not res.failed, res.result["msg"]
    assert res.result["launched_ids"] == ["i-00000001"]
    assert res.result["security_group_id"] == NEW_SG
    assert len(slept) == 4  # one per NotFound; the first poll sees it running


def test_not_found_for_a_group_this_run_did_not_create_is_not_retried(ec2, run_module, slept):
    stub_lookups(ec2)
    ec2.add_response(
        "describe_security_groups", {"SecurityGroups": [{"GroupId": SG, "VpcId": VPC}]}, {"GroupIds": [SG]}
    )
    ec2.add_client_error("run_instances", "InvalidGroup.NotFound", f"The security group '{SG}' does not exist")
    res = run_module(ec2_launch, dict(BASE, security_groups=[SG]))
    assert res.failed
    assert "InvalidGroup.NotFound" in res.result["msg"]
    assert slept == []


def test_new_instances_stopped_at_once_are_retried_while_not_visible(ec2, run_module):
    stub_lookups(ec2)
    ec2.add_response("run_instances", {"Instances": [instance("i-00000001", "pending")]})
    ec2.add_client_error("stop_instances", "InvalidInstanceID.NotFound", "The instance ID does not exist")
    ec2.add_response("stop_instances", {"StoppingInstances": []}, {"InstanceIds": ["i-00000001"]})
    ec2.add_response("describe_instances", reservations(instance("i-00000001", "stopping")), id_filter("i-00000001"))
    res = run_module(ec2_launch, dict(BASE, state="stopped", wait=False))
    assert not res.failed, res.result["msg"]
    assert res.result["changes"] == [f"launch 1 instance(s) in {SUBNET}", "stop i-00000001"]


def test_duplicates_after_lost_answers_count_as_created(ec2, run_module):
    stub_new_key_and_group(ec2)
    # Each create reached EC2, but its answer was lost; the retry meets what the first attempt made.
    ec2.add_client_error("import_key_pair", "InternalError", "An internal error has occurred", 500)
    ec2.add_client_error("import_key_pair", "InvalidKeyPair.Duplicate", "The keypair 'deploy' already exists.")
    ec2.add_response(
        "describe_key_pairs",
        {"KeyPairs": [{"KeyName": "deploy", "KeyFingerprint": "x", "PublicKey": ED_PUB}]},
        {"KeyNames": ["deploy"], "IncludePublicKey": True},
    )
    ec2.add_client_error("create_security_group", "ServiceUnavailable", "Service unavailable", 503)
    ec2.add_client_error("create_security_group", "InvalidGroup.Duplicate", "The security group 'web' already exists")
    ec2.add_response("describe_security_groups", {"SecurityGroups": [MANAGED_GROUP]}, GROUP_LOOKUP)
    ec2.add_client_error("authorize_security_group_ingress", "InternalError", "An internal error has occurred", 500)
    ec2.add_client_error("authorize_security_group_ingress", "InvalidPermission.Duplicate", "already exists")
    ec2.add_response(
        "describe_security_groups",
        {"SecurityGroups": [dict(MANAGED_GROUP, IpPermissions=HTTP_RULE)]},
        {"GroupIds": [NEW_SG]},
    )
    ec2.add_response("run_instances", {"Instances": [instance("i-00000001", "pending")]})
    ec2.add_response("describe_instances", reservations(instance("i-00000001")), id_filter("i-00000001"))
    res = run_module(ec2_launch, NEW_KEY_AND_GROUP)
    assert not res.failed, res.result["msg"]
    assert res.result["security_group_id"] == NEW_SG
    assert res.result["changes"][:3] == [
        "import key pair deploy",
        f"create security group web in {VPC}",
        "authorize tcp 80 from 0.0.0.0/0 on web",
    ]


def test_duplicate_that_is_not_ours_fails(ec2, run_module):
    stub_new_key_and_group(ec2)
    ec2.add_client_error("import_key_pair", "InvalidKeyPair.Duplicate", "The keypair 'deploy' already exists.")
    ec2.add_response(
        "describe_key_pairs", {"KeyPairs": [{"KeyName": "deploy", "KeyFingerprint": "x", "PublicKey": RSA_PUB}]}
    )
    res = run_module(ec2_launch, NEW_KEY_AND_GROUP)
    assert res.failed
    assert res.result["msg"].startswith("public_key: key pair 'deploy' appeared meanwhile with another key")
    stub_new_key_and_group(ec2)
    ec2.add_response("import_key_pair", {"KeyName": "deploy", "KeyFingerprint": "x"})
    ec2.add_client_error("create_security_group", "InvalidGroup.Duplicate", "The security group 'web' already exists")
    ec2.add_response("describe_security_groups", {"SecurityGroups": [dict(MANAGED_GROUP, Tags=[])]}, GROUP_LOOKUP)
    res = run_module(ec2_launch, NEW_KEY_AND_GROUP)
    assert res.failed
    assert "appeared meanwhile" in res.result["msg"] and "not made by ec2_launch" in res.result["msg"]


def test_partial_duplicate_authorizes_only_what_is_missing(ec2, run_module):
    stub_lookups(ec2, instance("i-00000001", groups=(SG,)), image=False)
    ec2.add_response("describe_security_groups", {"SecurityGroups": [dict(MANAGED_GROUP, GroupId=SG)]}, GROUP_LOOKUP)
    ssh = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}
    ec2.add_client_error("authorize_security_group_ingress", "InvalidPermission.Duplicate", "already exists")
    ec2.add_response(
        "describe_security_groups",
        {"SecurityGroups": [dict(MANAGED_GROUP, GroupId=SG, IpPermissions=HTTP_RULE)]},
        {"GroupIds": [SG]},
    )
    ec2.add_response("authorize_security_group_ingress", {}, {"GroupId": SG, "IpPermissions": [ssh]})
    rules = [{"ports": 80, "cidr": ["0.0.0.0/0"]}, {"ports": 22, "cidr": ["10.0.0.0/8"]}]
    res = run_module(ec2_launch, {"name": "web", "firewall": rules})
    assert not res.failed, res.result["msg"]


def record_requests(ec2):
    """Every request's parameters, as sent (after the Stubber validated them)."""
    sent = []
    ec2.client.meta.events.register("provide-client-params.ec2", lambda params, **_kw: sent.append(params))
    return sent


def list_lengths(value):
    """Lengths of every list of strings inside a request (filter values, ID lists)."""
    if isinstance(value, dict):
        return [n for item in value.values() for n in list_lengths(item)]
    if isinstance(value, list):
        own = [len(value)] if value and all(isinstance(v, str) for v in value) else []
        return own + [n for item in value for n in list_lengths(item)]
    return []


def test_205_instances_launch_wait_and_terminate_in_chunks_of_200(ec2, run_module):
    sent = record_requests(ec2)
    ids = [f"i-{n:08x}" for n in range(1, 206)]
    stub_lookups(ec2)
    ec2.add_response("run_instances", {"Instances": [instance(iid, "pending") for iid in ids]})
    ec2.add_response("describe_instances", reservations(*(instance(i) for i in ids[:200])), id_filter(*ids[:200]))
    ec2.add_response("describe_instances", reservations(*(instance(i) for i in ids[200:])), id_filter(*ids[200:]))
    res = run_module(ec2_launch, dict(BASE, count=205))
    assert not res.failed, res.result["msg"]
    assert len(res.result["instance_ids"]) == 205
    stub_find(ec2, *(instance(i) for i in ids))
    ec2.add_response("terminate_instances", {"TerminatingInstances": []}, {"InstanceIds": ids[:200]})
    ec2.add_response("terminate_instances", {"TerminatingInstances": []}, {"InstanceIds": ids[200:]})
    ec2.add_response("describe_instances", {"Reservations": []}, id_filter(*ids[:200]))
    ec2.add_response("describe_instances", {"Reservations": []}, id_filter(*ids[200:]))
    ec2.add_response("describe_security_groups", {"SecurityGroups": []})
    res = run_module(ec2_launch, {"name": "web", "state": "absent"})
    assert not res.failed, res.result["msg"]
    assert len(res.result["terminated_ids"]) == 205
    assert max(n for params in sent for n in list_lengths(params)) == 200


def test_default_subnet_is_chosen_among_zones_offering_the_type(ec2, run_module):
    stub_find(ec2)
    stub_image(ec2)
    stub_type(ec2)
    stub_offerings(ec2, ("us-east-1b", "us-east-1c"))
    stub_default_subnet(ec2)
    ec2.add_response(
        "run_instances", {"Instances": [instance("i-00000001")]}, {"SubnetId": "subnet-0bbbbbbbbbbbbbbb0", **ANYTHING}
    )
    ec2.add_response("describe_instances", reservations(instance("i-00000001")), id_filter("i-00000001"))
    res = run_module(ec2_launch, BASE)
    assert not res.failed, res.result["msg"]
    assert res.result["changes"] == ["launch 1 instance(s) in subnet-0bbbbbbbbbbbbbbb0"]


ANYTHING = dict.fromkeys(
    ("ImageId", "InstanceType", "MinCount", "MaxCount", "ClientToken", "MetadataOptions", "TagSpecifications"), ANY
)


@pytest.mark.parametrize("code", ["Unsupported", "InsufficientInstanceCapacity"])
def test_no_capacity_moves_to_the_next_offering_zone_with_a_new_token(ec2, run_module, warnings, code):
    stub_lookups(ec2)
    first = _instances.client_token("web", "us-east-1", VPC, [], 1)
    second = _instances.client_token("web", "us-east-1", VPC, [], 1, "zone:us-east-1b|")
    ec2.add_client_error("run_instances", code, "We currently do not have sufficient t3.micro capacity", 500)
    # Not retried in the same zone: the next request goes to the next zone.
    ec2.add_response(
        "run_instances",
        {"Instances": [instance("i-00000001", Placement={"AvailabilityZone": "us-east-1b"})]},
        dict(ANYTHING, SubnetId="subnet-0bbbbbbbbbbbbbbb0", ClientToken=second),
    )
    ec2.add_response("describe_instances", reservations(instance("i-00000001")), id_filter("i-00000001"))
    res = run_module(ec2_launch, BASE)
    assert not res.failed, res.result["msg"]
    assert first != second
    assert res.result["changes"] == ["launch 1 instance(s) in subnet-0bbbbbbbbbbbbbbb0"]
    assert warnings == [f"{code} for t3.micro in us-east-1a: trying us-east-1b"]


def test_no_capacity_in_a_pinned_zone_fails_without_trying_another(ec2, run_module):
    stub_find(ec2)
    stub_image(ec2)
    stub_type(ec2)
    stub_offerings(ec2)
    ec2.add_response(
        "describe_subnets",
        {"Subnets": [{"SubnetId": SUBNET, "VpcId": VPC, "AvailabilityZone": "us-east-1a"}]},
        {
            "Filters": [
                {"Name": "default-for-az", "Values": ["true"]},
                {"Name": "availability-zone", "Values": ["us-east-1a"]},
            ]
        },
    )
    ec2.add_client_error("run_instances", "InsufficientInstanceCapacity", "no capacity")
    res = run_module(ec2_launch, dict(BASE, availability_zone="us-east-1a"))
    assert res.failed
    assert res.result["error"]["code"] == "InsufficientInstanceCapacity"


def test_no_zone_with_capacity_fails_naming_the_zones_tried(ec2, run_module):
    stub_lookups(ec2)
    ec2.add_client_error("run_instances", "InsufficientInstanceCapacity", "no capacity")
    ec2.add_client_error("run_instances", "Unsupported", "not supported")
    res = run_module(ec2_launch, BASE)
    assert res.failed
    assert res.result["msg"] == (
        "no zone could launch 1 t3.micro instance(s); "
        "tried us-east-1a (InsufficientInstanceCapacity), us-east-1b (Unsupported)"
    )


def test_pinned_zone_without_the_type_fails_before_anything_is_created(ec2, run_module):
    stub_find(ec2)
    stub_image(ec2)
    stub_type(ec2)
    stub_offerings(ec2)
    res = run_module(ec2_launch, dict(BASE, availability_zone="us-east-1e", firewall=[{"ports": 80, "cidr": ["::/0"]}]))
    assert res.failed
    assert res.result["msg"] == (
        "instance_type: 't3.micro' is not offered in us-east-1e (offered in us-east-1a, us-east-1b); "
        "nothing was created"
    )
    assert res.result["changes"] == []
    ec2.add_response(
        "describe_subnets", {"Subnets": [{"SubnetId": SUBNET, "VpcId": VPC, "AvailabilityZone": "us-east-1e"}]}
    )
    ec2.add_response("describe_instances", reservations(), group_filters(vpc=VPC))
    stub_image(ec2)
    stub_type(ec2)
    stub_offerings(ec2)
    res = run_module(ec2_launch, dict(BASE, subnet_id=SUBNET))
    assert res.result["msg"].startswith("instance_type: 't3.micro' is not offered in us-east-1e")


def test_type_not_offered_anywhere_fails(ec2, run_module):
    stub_find(ec2)
    stub_image(ec2)
    stub_type(ec2)
    stub_offerings(ec2, ())
    res = run_module(ec2_launch, BASE)
    assert res.result["msg"] == "instance_type: 't3.micro' is not offered in any zone of us-east-1"


def test_incompatible_image_fails_before_anything_is_created(ec2, run_module):
    stub_find(ec2)
    ec2.add_response("describe_images", {"Images": [{"ImageId": AMI, "Architecture": "x86_64", "EnaSupport": False}]})
    ec2.add_response(
        "describe_instance_types",
        {"InstanceTypes": [{"InstanceType": "t3.micro", "NetworkInfo": {"EnaSupport": "required"}}]},
    )
    res = run_module(ec2_launch, BASE)
    assert res.failed
    assert "needs ENA networking" in res.result["msg"]


def test_existing_metadata_options_are_left_alone_unless_given(ec2, run_module):
    imdsv1 = instance("i-00000001", MetadataOptions={"HttpTokens": "optional", "HttpPutResponseHopLimit": 1})
    stub_lookups(ec2, imdsv1)
    res = run_module(ec2_launch, BASE)
    assert not res.failed, res.result["msg"]
    assert res.result["changed"] is False
    stub_lookups(ec2, imdsv1)
    ec2.add_response(
        "modify_instance_metadata_options",
        {},
        {"InstanceId": "i-00000001", "HttpTokens": "required", "HttpPutResponseHopLimit": 2},
    )
    ec2.add_response("describe_instances", reservations(imdsv1), id_filter("i-00000001"))
    res = run_module(
        ec2_launch, dict(BASE, metadata_options={"http_tokens": "required", "http_put_response_hop_limit": 2})
    )
    assert not res.failed, res.result["msg"]
    assert res.result["changes"] == [
        "set metadata options of i-00000001: HttpPutResponseHopLimit=2, HttpTokens=required"
    ]


def test_group_delete_whose_answer_was_lost_counts_as_deleted(ec2, run_module):
    stub_find(ec2)
    ec2.add_response(
        "describe_security_groups", {"SecurityGroups": [{"GroupId": SG, "GroupName": "web", "VpcId": VPC}]}
    )
    ec2.add_response("describe_instances", {"Reservations": []})
    ec2.add_client_error("delete_security_group", "InternalError", "An internal error has occurred", 500)
    ec2.add_client_error("delete_security_group", "InvalidGroup.NotFound", f"The security group '{SG}' does not exist")
    res = run_module(ec2_launch, {"name": "web", "state": "absent"})
    assert not res.failed, res.result["msg"]
    assert res.result["changes"] == [f"delete security group web ({SG})"]
