"""The instances of ec2_launch's group: requests, drift, waits, and :class:`Fleet` changing them."""

from __future__ import annotations

import datetime

import pytest
from ansible_collections.bakery.ec2.plugins.module_utils import _instances
from ansible_collections.bakery.ec2.plugins.module_utils._changes import Changes
from ansible_collections.bakery.ec2.plugins.module_utils._errors import AwsError, TaskError
from botocore.stub import ANY
from ec2_fakes import AMI, LIVE, SG, SUBNET, T0, VPC, id_filter, instance, reservations

VOLUME = {
    "device_name": "/dev/xvda",
    "size": None,
    "type": "gp3",
    "iops": None,
    "throughput": None,
    "encrypted": True,
    "kms_key_id": None,
    "delete_on_termination": True,
}
PARAMS = {
    "name": "web",
    "count": 1,
    "state": "running",
    "image_id": AMI,
    "instance_type": "t3.micro",
    "subnet_id": None,
    "availability_zone": None,
    "key_name": None,
    "public_key": None,
    "user_data": None,
    "iam_instance_profile": None,
    "volumes": None,
    "metadata_options": None,
    "termination_protection": None,
    "tags": None,
    "purge_tags": True,
    "security_groups": None,
    "firewall": None,
    "wait": True,
    "wait_timeout": 600,
}

spec_of = _instances.LaunchSpec.of  # what ec2_launch hands the instances' code: its options, the image resolved


# --- requests and drift -----------------------------------------------------------------------------


def test_client_token_is_deterministic_and_64_chars():
    one = _instances.client_token("web", "us-east-1", VPC, ["i-2", "i-1"], 3)
    assert one == _instances.client_token("web", "us-east-1", VPC, ["i-1", "i-2"], 3)
    assert len(one) == 64
    assert one != _instances.client_token("web", "us-east-1", VPC, ["i-1"], 3)
    assert one != _instances.client_token("web", "eu-west-1", VPC, ["i-1", "i-2"], 3)
    assert one != _instances.client_token("web", "us-east-1", VPC, ["i-1", "i-2"], 4)


def test_volumes_and_metadata_reach_run_instances():
    params = {
        "name": "db",
        "image_id": AMI,
        "instance_type": "t3.micro",
        "key_name": "deploy",
        "user_data": None,
        "iam_instance_profile": "arn:aws:iam::123456789012:instance-profile/db",
        "tags": None,
        "termination_protection": True,
        "metadata_options": {
            "http_tokens": "required",
            "http_put_response_hop_limit": 2,
            "instance_metadata_tags": None,
        },
        "volumes": [
            {
                "device_name": "/dev/sdf",
                "size": 100,
                "type": "gp3",
                "iops": 4000,
                "throughput": None,
                "encrypted": True,
                "kms_key_id": None,
                "delete_on_termination": True,
            }
        ],
    }
    req = _instances.build_run_request(spec_of(params), SUBNET, [SG], 1, "t")
    assert req["BlockDeviceMappings"] == [
        {
            "DeviceName": "/dev/sdf",
            "Ebs": {
                "VolumeType": "gp3",
                "Encrypted": True,
                "DeleteOnTermination": True,
                "VolumeSize": 100,
                "Iops": 4000,
            },
        }
    ]
    assert req["MetadataOptions"] == {"HttpTokens": "required", "HttpPutResponseHopLimit": 2}
    assert req["IamInstanceProfile"] == {"Arn": params["iam_instance_profile"]}
    assert req["DisableApiTermination"] is True
    assert req["SecurityGroupIds"] == [SG]
    assert req["KeyName"] == "deploy"


def test_root_volume_without_size_takes_the_image_size():
    """EC2 needs a size or a snapshot in an EBS mapping: an encrypted root override keeps the image's size."""
    volume = VOLUME  # /dev/xvda, no size
    image = {"BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": "snap-1", "VolumeSize": 8}}]}
    (mapping,) = _instances.block_device_mappings([volume], image)
    assert mapping == {
        "DeviceName": "/dev/xvda",
        "Ebs": {"VolumeType": "gp3", "Encrypted": True, "DeleteOnTermination": True, "VolumeSize": 8},
    }
    (other,) = _instances.block_device_mappings([dict(volume, device_name="/dev/sdf", size=20)], image)
    assert other["Ebs"]["VolumeSize"] == 20


@pytest.mark.parametrize(
    ("image", "itype", "msg"),
    [
        (
            {"EnaSupport": False},
            {"NetworkInfo": {"EnaSupport": "required"}},
            f"instance_type: 't3.micro' needs ENA networking but image {AMI} does not have ENA support enabled",
        ),
        (
            {"BootMode": "uefi"},
            {"SupportedBootModes": ["legacy-bios"]},
            f"instance_type: 't3.micro' boots legacy-bios but image {AMI} boots uefi only",
        ),
        (
            {"BootMode": "legacy-bios"},
            {"SupportedBootModes": ["uefi"]},
            f"instance_type: 't3.micro' boots uefi but image {AMI} boots legacy-bios only",
        ),
        ({"BootMode": "uefi-preferred"}, {"SupportedBootModes": ["legacy-bios"]}, None),
        ({"EnaSupport": True}, {"NetworkInfo": {"EnaSupport": "required"}, "SupportedBootModes": ["uefi"]}, None),
        ({}, {"NetworkInfo": {"EnaSupport": "required"}, "SupportedBootModes": ["uefi"]}, None),
    ],
)
def test_image_and_type_compatibility(image, itype, msg):
    image = dict(image, ImageId=AMI)
    assert _instances.image_type_mismatch(image, dict(itype, InstanceType="t3.micro")) == msg


def test_new_instances_get_imdsv2_required_and_the_hop_limit():
    params = {"metadata_options": None}
    assert _instances.metadata_request(params["metadata_options"]) == {"HttpTokens": "required"}
    given = {"http_tokens": None, "http_put_response_hop_limit": 2, "instance_metadata_tags": None}
    assert _instances.metadata_request(given) == {"HttpTokens": "required", "HttpPutResponseHopLimit": 2}


def test_metadata_changes_only_in_the_suboptions_given():
    current = {"HttpTokens": "optional", "HttpPutResponseHopLimit": 1, "InstanceMetadataTags": "disabled"}
    assert _instances.metadata_changes(current, None) == {}
    given = {"http_tokens": None, "http_put_response_hop_limit": 2, "instance_metadata_tags": "disabled"}
    assert _instances.metadata_changes(current, given) == {"HttpPutResponseHopLimit": 2}


def test_oldest_first_by_launch_time_then_id():
    later = T0 + datetime.timedelta(minutes=1)
    group = [instance("i-0000000c", launched=later), instance("i-0000000b"), instance("i-0000000a")]
    assert [i["InstanceId"] for i in _instances.oldest_first(group)] == ["i-0000000a", "i-0000000b", "i-0000000c"]


def test_drift_names_what_cannot_change_in_place():
    inst = instance(
        "i-00000001",
        KeyName="old",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeId": "vol-1"}}],
    )
    params = dict(
        PARAMS,
        image_id="ami-0bbbbbbbbbbbbbbb0",
        availability_zone="us-east-1a",
        key_name="new",
        volumes=[
            dict(VOLUME, device_name="/dev/xvda", size=20),
            dict(VOLUME, device_name="/dev/sdf", size=100),
        ],
    )
    volumes = {"vol-1": {"VolumeId": "vol-1", "Size": 8, "VolumeType": "gp3", "Encrypted": True}}
    drift = _instances.instance_drift(inst, spec_of(params), volumes)
    assert [(d["option"], d["current"], d["wanted"]) for d in drift] == [
        ("image_id", AMI, "ami-0bbbbbbbbbbbbbbb0"),
        ("key_name", "old", "new"),
        ("volumes[/dev/xvda].size", 8, 20),
        ("volumes[/dev/sdf]", None, "attached"),
    ]
    assert {d["instance_id"] for d in drift} == {"i-00000001"}


# --- reading EC2 ------------------------------------------------------------------------------------


def test_the_group_is_found_by_name_among_live_instances_oldest_first(ec2_client):
    client, stub = ec2_client
    filters = [
        {"Name": "tag:Name", "Values": ["web"]},
        {"Name": "instance-state-name", "Values": LIVE},
        {"Name": "vpc-id", "Values": [VPC]},
    ]
    later = instance("i-00000001", launched=T0 + datetime.timedelta(hours=1))
    stub.add_response("describe_instances", reservations(later, instance("i-00000002")), {"Filters": filters})
    assert [i["InstanceId"] for i in _instances.find_instances(client, "web", VPC)] == ["i-00000002", "i-00000001"]


def test_ids_and_volumes_are_asked_for_in_chunks_of_200(ec2_client):
    client, stub = ec2_client
    ids = [f"i-{n:08x}" for n in range(1, 206)]
    stub.add_response("describe_instances", reservations(*(instance(i) for i in ids[:200])), id_filter(*ids[:200]))
    stub.add_response("describe_instances", reservations(*(instance(i) for i in ids[200:])), id_filter(*ids[200:]))
    assert len(_instances.describe_ids(client, ids)) == 205
    vols = [f"vol-{n:08x}" for n in range(1, 206)]
    group = [
        instance(f"i-{n:08x}", BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeId": vol}}])
        for n, vol in enumerate(vols, 1)
    ]
    for part in (vols[:200], vols[200:]):
        stub.add_response(
            "describe_volumes",
            {"Volumes": [{"VolumeId": v} for v in part]},
            {"Filters": [{"Name": "volume-id", "Values": part}]},
        )
    assert len(_instances.volumes_of(client, group, [VOLUME])) == 205
    assert _instances.volumes_of(client, group, None) == {}  # volumes not given: nothing to compare, no call


def test_a_volume_gone_since_its_instance_was_described_is_left_out_not_an_error(ec2_client):
    # An instance terminated (or launched) between DescribeInstances and DescribeVolumes: EC2 fails a VolumeIds
    # request naming a volume it does not show (InvalidVolume.NotFound), a volume-id filter leaves it out.
    client, stub = ec2_client
    group = [
        instance(iid, BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeId": vol}}])
        for iid, vol in (("i-00000001", "vol-00000001"), ("i-00000002", "vol-00000002"))
    ]
    small = {"VolumeId": "vol-00000002", "Size": 4, "VolumeType": "gp3", "Encrypted": True}
    wanted = {"Filters": [{"Name": "volume-id", "Values": ["vol-00000001", "vol-00000002"]}]}
    stub.add_response("describe_volumes", {"Volumes": [small]}, wanted)
    volumes = _instances.volumes_of(client, group, [VOLUME])
    assert volumes == {"vol-00000002": small}
    params = {"image_id": None, "instance_type": None, "subnet_id": None, "availability_zone": None,
              "key_name": None, "volumes": [dict(VOLUME, size=8)]}  # fmt: skip
    assert _instances.instance_drift(group[0], spec_of(params), volumes) == []  # nothing known to compare
    assert [d["option"] for d in _instances.instance_drift(group[1], spec_of(params), volumes)] == [
        "volumes[/dev/xvda].size"
    ]


def test_what_still_uses_a_resource_counts_instances_shutting_down(ec2_client):
    client, stub = ec2_client
    filters = [
        {"Name": "instance.group-id", "Values": [SG]},
        {"Name": "instance-state-name", "Values": [*LIVE, "shutting-down"]},
    ]
    stub.add_response("describe_instances", reservations(instance("i-00000001", "shutting-down")), {"Filters": filters})
    assert _instances.instance_ids_with(client, "instance.group-id", SG) == {"i-00000001"}


def test_an_image_must_exist_here_and_be_available(ec2_client):
    client, stub = ec2_client
    stub.add_client_error("describe_images", "InvalidAMIID.NotFound", "no such image")
    with pytest.raises(TaskError, match=r"^image_id: 'ami-0123456789abcdef0' not found in us-east-1 \(named by SSM"):
        _instances.check_image(client, AMI, "/aws/service/debian")
    stub.add_response("describe_images", {"Images": [{"ImageId": AMI, "State": "pending"}]}, {"ImageIds": [AMI]})
    with pytest.raises(TaskError) as err:
        _instances.check_image(client, AMI)
    assert str(err.value) == f"image_id: '{AMI}' is pending, not available"


def test_the_type_must_run_the_images_architecture(ec2_client):
    client, stub = ec2_client
    stub.add_response(
        "describe_instance_types",
        {"InstanceTypes": [{"InstanceType": "t4g.micro", "ProcessorInfo": {"SupportedArchitectures": ["arm64"]}}]},
        {"InstanceTypes": ["t4g.micro"]},
    )
    with pytest.raises(TaskError) as err:
        _instances.check_instance_type(client, "t4g.micro", {"ImageId": AMI, "Architecture": "x86_64"})
    assert str(err.value) == f"instance_type: 't4g.micro' runs arm64 but image {AMI} is x86_64"


# --- waits ------------------------------------------------------------------------------------------


def test_waiting_for_terminated_counts_instances_gone_from_view(ec2_client):
    client, stub = ec2_client
    stub.add_response(
        "describe_instances",
        reservations(instance("i-00000001", "shutting-down")),
        id_filter("i-00000001", "i-00000002"),
    )
    stub.add_response("describe_instances", {"Reservations": []}, id_filter("i-00000001", "i-00000002"))
    assert _instances.wait_for_state(client, ["i-00000001", "i-00000002"], "terminated", 60) == []


def test_waiting_for_running_asks_at_least_once_a_second(ec2_client, slept):
    client, stub = ec2_client
    for state in ["pending"] * 6 + ["running"]:
        stub.add_response("describe_instances", reservations(instance("i-00000001", state)), id_filter("i-00000001"))
    running = _instances.wait_for_state(client, ["i-00000001"], "running", 60)
    assert [inst["InstanceId"] for inst in running] == ["i-00000001"]
    # Short first delays (a fast boot is seen fast), then never more than a second between two questions.
    assert slept[0] < 0.5
    assert max(slept) == 1.0
    assert len(slept) == 6


def test_an_instance_that_stops_while_booting_fails_the_wait_with_its_reason(ec2_client):
    client, stub = ec2_client
    reason = {"Code": "Server.InternalError", "Message": "host exited during boot"}
    stub.add_response("describe_instances", reservations(instance("i-00000001", "pending")), id_filter("i-00000001"))
    stub.add_response(
        "describe_instances",
        reservations(instance("i-00000001", "stopped", StateReason=reason)),
        id_filter("i-00000001"),
    )
    with pytest.raises(TaskError) as err:
        _instances.wait_for_state(client, ["i-00000001"], "running", 60)
    assert str(err.value) == "instance i-00000001 went to stopped while waiting for running: host exited during boot"


def test_wait_visible_returns_once_every_new_instance_is_shown(ec2_client, slept):
    client, stub = ec2_client
    stub.add_response("describe_instances", reservations(instance("i-00000001")), id_filter("i-00000001", "i-00000002"))
    both = reservations(instance("i-00000001"), instance("i-00000002", "pending"))
    stub.add_response("describe_instances", both, id_filter("i-00000001", "i-00000002"))
    found = _instances.wait_visible(client, ["i-00000001", "i-00000002"], ["i-00000002"])
    assert [i["InstanceId"] for i in found] == ["i-00000001", "i-00000002"]
    assert slept == [0.25]


# --- Fleet: changing the group ----------------------------------------------------------------------

ZONE_B = {"SubnetId": "subnet-0bbbbbbbbbbbbbbb0", "VpcId": VPC, "AvailabilityZone": "us-east-1b"}
ZONE_A = {"SubnetId": SUBNET, "VpcId": VPC, "AvailabilityZone": "us-east-1a"}


def fleet(client, check_mode=False, **params):
    warnings = []
    return _instances.Fleet(Changes(check_mode, client), spec_of(dict(PARAMS, **params)), warnings.append), warnings


def run_request(token, subnet=SUBNET, count=1, **extra):
    return dict(
        {
            "ImageId": AMI,
            "InstanceType": "t3.micro",
            "MinCount": count,
            "MaxCount": count,
            "ClientToken": token,
            "SubnetId": subnet,
            "MetadataOptions": {"HttpTokens": "required"},
            "TagSpecifications": ANY,
        },
        **extra,
    )


def test_launch_moves_to_the_next_zone_without_capacity_with_its_own_token(ec2_client):
    client, stub = ec2_client
    first = _instances.client_token("web", "us-east-1", VPC, ["i-00000009"], 2)
    second = _instances.client_token("web", "us-east-1", VPC, ["i-00000009"], 2, "zone:us-east-1b|")
    stub.add_client_error(
        "run_instances",
        "InsufficientInstanceCapacity",
        "no capacity",
        500,
        expected_params=run_request(first, SecurityGroupIds=[SG]),
    )
    stub.add_response(
        "run_instances",
        {"Instances": [instance("i-00000001", "pending")]},
        run_request(second, ZONE_B["SubnetId"], SecurityGroupIds=[SG]),
    )
    group, warnings = fleet(client, count=2)
    group.launch(1, [ZONE_A, ZONE_B], ["i-00000009"], [SG], None, ())
    assert group.launched == ["i-00000001"]
    assert group.touched is True
    assert group.changes.actions == ["launch 1 instance(s) in subnet-0bbbbbbbbbbbbbbb0"]
    assert warnings == ["InsufficientInstanceCapacity for t3.micro in us-east-1a: trying us-east-1b"]


def test_launch_in_a_single_subnet_fails_with_ec2s_answer(ec2_client):
    client, stub = ec2_client
    stub.add_client_error("run_instances", "Unsupported", "not supported here")
    group, _warnings = fleet(client)
    with pytest.raises(AwsError) as err:
        group.launch(1, [ZONE_A], [], None, None, ())
    assert err.value.code == "Unsupported"
    assert group.changes.actions == []


def test_a_token_used_with_other_parameters_or_for_instances_now_gone_is_derived_again(ec2_client):
    client, stub = ec2_client
    first = _instances.client_token("web", "us-east-1", VPC, [], 1)
    stub.add_client_error(
        "run_instances", "IdempotentParameterMismatch", "token reused", expected_params=run_request(first)
    )
    stub.add_response("run_instances", {"Instances": [instance("i-0000000a", "terminated")]}, run_request(ANY))
    stub.add_response("run_instances", {"Instances": [instance("i-00000001", "pending")]}, run_request(ANY))
    sent = []
    client.client.meta.events.register(
        "provide-client-params.ec2.RunInstances", lambda params, **_kw: sent.append(params["ClientToken"])
    )
    group, _warnings = fleet(client)
    group.launch(1, [ZONE_A], [], None, None, ())
    assert group.launched == ["i-00000001"]
    assert sent[0] == first and len(set(sent)) == 3 and all(len(t) == 64 for t in sent)
    assert group.changes.actions == [f"launch 1 instance(s) in {SUBNET}"]


def test_check_mode_plans_a_launch_without_calling_ec2(ec2_client):
    client, _stub = ec2_client
    group, _warnings = fleet(client, check_mode=True)
    group.launch(3, [ZONE_A, ZONE_B], [], None, None, ())
    assert group.changes.actions == [f"launch 3 instance(s) in {SUBNET}"]
    assert group.launched == []


def test_terminate_removes_protection_first_when_asked(ec2_client):
    client, stub = ec2_client
    for iid, protected in (("i-00000001", True), ("i-00000002", False)):
        stub.add_response(
            "describe_instance_attribute",
            {"InstanceId": iid, "DisableApiTermination": {"Value": protected}},
            {"Attribute": "disableApiTermination", "InstanceId": iid},
        )
    stub.add_response(
        "modify_instance_attribute", {}, {"InstanceId": "i-00000001", "DisableApiTermination": {"Value": False}}
    )
    stub.add_response("terminate_instances", {}, {"InstanceIds": ["i-00000001", "i-00000002"]})
    group, _warnings = fleet(client, termination_protection=False)
    group.terminate([instance("i-00000001"), instance("i-00000002")])
    assert group.terminated == ["i-00000001", "i-00000002"]
    assert group.changes.actions == ["remove termination protection of i-00000001", "terminate i-00000001, i-00000002"]


def test_reconcile_retries_not_found_only_for_a_group_this_run_created(ec2_client, slept):
    client, stub = ec2_client
    stub.add_client_error("modify_instance_attribute", "InvalidGroup.NotFound", "not yet")
    stub.add_response("modify_instance_attribute", {}, {"InstanceId": "i-00000001", "Groups": [SG]})
    group, _warnings = fleet(client)
    group.reconcile([instance("i-00000001", groups=())], [SG], ("InvalidGroup.NotFound",))
    assert group.changes.actions == [f"set security groups of i-00000001 to {SG}"]
    assert group.touched is True and len(slept) == 1
    stub.add_client_error("modify_instance_attribute", "InvalidGroup.NotFound", "no such group")
    with pytest.raises(AwsError):
        group.reconcile([instance("i-00000001", groups=())], [SG])


def test_reconcile_leaves_tags_groups_and_metadata_alone_unless_given(ec2_client):
    client, _stub = ec2_client
    group, _warnings = fleet(client)
    group.reconcile([instance("i-00000001", tags={"Name": "web", "Other": "x"}, groups=())], None)
    assert group.changes.actions == [] and group.touched is False


def test_apply_state_starts_after_a_stop_ends_and_waits_for_running(ec2_client):
    client, stub = ec2_client
    stub.add_response("describe_instances", reservations(instance("i-00000002", "stopped")), id_filter("i-00000002"))
    stub.add_response("start_instances", {}, {"InstanceIds": ["i-00000001", "i-00000002"]})
    running = reservations(instance("i-00000001"), instance("i-00000002"))
    stub.add_response("describe_instances", running, id_filter("i-00000001", "i-00000002"))
    group, _warnings = fleet(client)
    waited = group.apply_state([instance("i-00000001", "stopped"), instance("i-00000002", "stopping")])
    assert [i["State"]["Name"] for i in waited] == ["running", "running"]
    assert group.changes.actions == ["start i-00000001, i-00000002"]


def test_apply_state_stops_new_instances_retrying_while_ec2_does_not_show_them(ec2_client):
    client, stub = ec2_client
    stub.add_client_error("stop_instances", "InvalidInstanceID.NotFound", "not yet")
    stub.add_response("stop_instances", {}, {"InstanceIds": ["i-00000001"]})
    group, _warnings = fleet(client, state="stopped", wait=False)
    group.launched = ["i-00000001"]
    assert group.apply_state([]) is None
    assert group.changes.actions == ["stop i-00000001"]


KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.mark.parametrize(
    ("code", "message"),
    [("Client.InternalError", "Client.InternalError: Client error on launch"),
     ("Client.InvalidKMSKey.InvalidState", "Client.InvalidKMSKey.InvalidState: The KMS key provided is in an "
                                           "incorrect state")],
)  # fmt: skip
def test_an_instance_ec2_could_not_encrypt_fails_the_wait_naming_kms_and_the_keys(ec2_client, code, message):
    """RunInstances answered 200; the instance then ended terminated: one line naming KMS, the key the launch named
    and the account's default EBS key, and what the caller needs on them."""
    client, stub = ec2_client
    reason = {"Code": code, "Message": message}
    stub.add_response(
        "describe_instances",
        reservations(instance("i-00000001", "terminated", StateReason=reason)),
        id_filter("i-00000001"),
    )
    stub.add_response("get_ebs_default_kms_key_id", {"KmsKeyId": KEY}, {})
    with pytest.raises(TaskError) as err:
        _instances.wait_for_state(client, ["i-00000001"], "running", 60, ["alias/web"])
    text = str(err.value)
    assert text.startswith(f"instance i-00000001 went to terminated while waiting for running: {message} (KMS: ")
    assert f"alias/web, {KEY} (the account's default EBS key)" in text
    assert "kms:CreateGrant (for AWS resources), kms:Decrypt, kms:DescribeKey" in text and "\n" not in text


def test_encrypted_false_is_no_drift_when_the_account_encrypts_every_volume(ec2_client):
    """With EBS encryption by default on, the volume is encrypted whatever was asked: no drift (no replacement by
    instance_refresh); GetEbsEncryptionByDefault is read only when encrypted: false is asked."""
    client, stub = ec2_client
    inst = instance("i-00000001", BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeId": "vol-1"}}])
    params = dict(PARAMS, volumes=[dict(VOLUME, encrypted=False)])
    volumes = {"vol-1": {"VolumeId": "vol-1", "Size": 8, "VolumeType": "gp3", "Encrypted": True}}
    assert _instances.encryption_forced(client, [VOLUME]) is None  # no call: stubber has nothing queued
    stub.add_response("get_ebs_encryption_by_default", {"EbsEncryptionByDefault": True}, {})
    forced = _instances.encryption_forced(client, params["volumes"])
    assert forced is True
    assert _instances.instance_drift(inst, spec_of(params), volumes, forced) == []
    drift = _instances.instance_drift(inst, spec_of(params), volumes, False)
    assert [(d["option"], d["current"], d["wanted"]) for d in drift] == [("volumes[/dev/xvda].encrypted", True, False)]
