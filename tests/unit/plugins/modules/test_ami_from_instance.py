from __future__ import annotations

import threading
import time

import pytest
from ansible.module_utils import basic
from ansible_collections.bakery.ec2.plugins.module_utils import _client, _images, _tags
from ansible_collections.bakery.ec2.plugins.modules import ami_from_instance as mod
from botocore.parsers import ResponseParserError

INSTANCE = "i-0123456789abcdef0"
BASE = "ami-0base0000000000001"
NEW = "ami-0new00000000000001"
OLD = "ami-0old00000000000001"
SNAP = "snap-0123456789abcdef0"
OLD_SNAP = "snap-0old0000000000001"
NAME = "web-2026-11-20"
LINEAGE = {"bakery:source-instance-id": INSTANCE, "bakery:source-image-id": BASE}
REBOOT = f", rebooting {INSTANCE} (no_reboot is false)"


def instance(instance_id=INSTANCE, state="running", name="web-build"):
    return {
        "InstanceId": instance_id,
        "ImageId": BASE,
        "State": {"Name": state},
        "Tags": [{"Key": "Name", "Value": name}],
    }


def image(image_id=NEW, state="available", snapshots=(SNAP,), tags=None, name=NAME, **extra):
    img = {
        "ImageId": image_id,
        "Name": name,
        "State": state,
        "OwnerId": "123456789012",
        "CreationDate": "2026-11-20T10:00:00.000Z",
        "RootDeviceName": "/dev/xvda",
        "BlockDeviceMappings": [
            {"DeviceName": f"/dev/xvd{chr(97 + i)}", "Ebs": {"SnapshotId": s, "VolumeSize": 8}}
            for i, s in enumerate(snapshots)
        ],
        "Tags": _tags.dict_to_tags(tags or {}),
    }
    img.update(extra)
    return img


@pytest.fixture
def warned(monkeypatch):
    """The warnings the module gave."""
    messages = []
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, msg: messages.append(msg))
    return messages


def stub_instance(stub, *instances, **params):
    params = params or {"InstanceIds": [INSTANCE]}
    stub.add_response(
        "describe_instances",
        {"Reservations": [{"ReservationId": "r-1", "Instances": list(instances or [instance()])}]},
        params,
    )


def stub_lookup(stub, *images, name=NAME):
    stub.add_response(
        "describe_images",
        {"Images": list(images)},
        {"Owners": ["self"], "Filters": [{"Name": "name", "Values": [name]}]},
    )


def stub_describe(stub, img):
    stub.add_response("describe_images", {"Images": [img]}, {"ImageIds": [img["ImageId"]]})


def stub_snapshots(stub, tags_by_id):
    stub.add_response(
        "describe_snapshots",
        {"Snapshots": [{"SnapshotId": sid, "Tags": _tags.dict_to_tags(tags)} for sid, tags in tags_by_id.items()]},
        {"SnapshotIds": list(tags_by_id)},
    )


def stub_create_tags(stub, resources, tags):
    stub.add_response("create_tags", {}, {"Resources": resources, "Tags": _tags.dict_to_tags(tags)})


def stub_regions(stub, *names):
    stub.add_response("describe_regions", {"Regions": [{"RegionName": n} for n in names]}, {})


def create_params(tags, snapshots=True, no_reboot=False, **extra):
    specs = [{"ResourceType": "image", "Tags": _tags.dict_to_tags(tags)}]
    if snapshots:
        specs.append({"ResourceType": "snapshot", "Tags": _tags.dict_to_tags(tags)})
    return {"InstanceId": INSTANCE, "Name": NAME, "NoReboot": no_reboot, "TagSpecifications": specs, **extra}


def test_name_is_looked_up_first_then_image_and_snapshots_tagged_at_creation(ec2, run_module, slept):
    stub_instance(ec2)
    stub_lookup(ec2)
    wanted = dict(LINEAGE, Role="web")
    ec2.add_response("create_image", {"ImageId": NEW}, create_params(wanted, Description="web server"))
    stub_describe(ec2, image(state="pending", snapshots=()))
    stub_describe(ec2, image(tags=wanted))
    stub_snapshots(ec2, {SNAP: wanted})  # tagged by CreateImage: no CreateTags
    res = run_module(mod, {"instance_id": INSTANCE, "name": NAME, "description": "web server", "tags": {"Role": "web"}})
    assert not res.failed, res.result
    assert res.result["changed"] is True
    assert res.result["image_id"] == NEW
    assert res.result["snapshot_ids"] == [SNAP]
    assert res.result["image"]["tags"] == wanted
    assert res.result["image"]["block_device_mappings"][0]["ebs"]["snapshot_id"] == SNAP
    assert res.result["copies"] == {}
    assert res.result["actions"] == [f"create image {NAME!r} from {INSTANCE} (us-east-1){REBOOT}"]
    # pending -> available: one short first delay
    assert slept == [0.25]


@pytest.mark.parametrize("refusal", ["InvalidParameterValue", "InvalidResponse"])
def test_endpoint_refusing_snapshot_tags_at_creation_gets_them_afterwards(ec2, run_module, refusal, monkeypatch):
    stub_instance(ec2)
    stub_lookup(ec2)
    if refusal == "InvalidResponse":  # moto: a web page with HTTP 500, which botocore cannot parse
        create_image = ec2.client.create_image

        def web_page(**params):
            if any(spec["ResourceType"] == "snapshot" for spec in params.get("TagSpecifications", [])):
                raise ResponseParserError("Unable to parse response (<html>500 Internal Server Error</html>)")
            return create_image(**params)

        monkeypatch.setattr(ec2.client, "create_image", web_page, raising=False)
    else:
        ec2.add_client_error("create_image", refusal, "snapshot tags not supported", 400, create_params(LINEAGE))
    ec2.add_response("create_image", {"ImageId": NEW}, create_params(LINEAGE, snapshots=False))
    stub_describe(ec2, image(tags=LINEAGE))
    stub_snapshots(ec2, {SNAP: {}})
    stub_create_tags(ec2, [SNAP], LINEAGE)
    res = run_module(mod, {"instance_id": INSTANCE, "name": NAME})
    assert not res.failed, res.result
    assert res.result["image_id"] == NEW
    assert res.result["actions"][1].startswith(f"tag {SNAP} (us-east-1) with")


def test_pending_polls_back_off_from_a_short_first_delay(ec2, run_module, slept):
    stub_instance(ec2)
    stub_lookup(ec2)
    ec2.add_response("create_image", {"ImageId": NEW})
    for _poll in range(7):
        stub_describe(ec2, image(state="pending", snapshots=()))
    stub_describe(ec2, image(tags=LINEAGE))
    stub_snapshots(ec2, {SNAP: LINEAGE})
    res = run_module(mod, {"instance_id": INSTANCE, "name": NAME})
    assert not res.failed, res.result
    assert res.result["image"]["state"] == "available"
    assert slept[0] == 0.25
    # Growing pauses, never more than 1.5 s: the task ends within 2 s of the image being available.
    assert slept == sorted(slept) and slept[-1] == _images.IMAGE_POLL_MAX_S == 1.5 and len(slept) == 7


def test_no_tags_and_no_lineage_sends_no_tag_specification(ec2, run_module):
    stub_instance(ec2)
    stub_lookup(ec2)
    ec2.add_response("create_image", {"ImageId": NEW}, {"InstanceId": INSTANCE, "Name": NAME, "NoReboot": True})
    stub_describe(ec2, image())
    stub_snapshots(ec2, {SNAP: {}})
    res = run_module(mod, {"instance_id": INSTANCE, "name": NAME, "lineage_tags": False, "no_reboot": True})
    assert not res.failed, res.result
    assert res.result["image"]["tags"] == {}


def test_existing_image_is_kept_and_nothing_changes(ec2, run_module):
    stub_instance(ec2)
    tags = dict(LINEAGE, Role="web")
    stub_lookup(ec2, image(tags=tags))
    stub_snapshots(ec2, {SNAP: tags})
    res = run_module(mod, {"instance_id": INSTANCE, "name": NAME, "tags": {"Role": "web"}})
    assert not res.failed, res.result
    assert res.result["changed"] is False
    assert res.result["actions"] == []
    assert res.result["image_id"] == NEW
    assert res.result["image"]["tags"] == tags


def test_rerun_reconciles_tags_on_image_and_snapshots_but_never_lineage(ec2, run_module):
    stub_instance(ec2, instance(instance_id="i-0ffffffffffffffff"), InstanceIds=["i-0ffffffffffffffff"])
    # Made earlier from another instance: its lineage stays as it is.
    stub_lookup(ec2, image(tags=dict(LINEAGE, Role="db", Old="x")))
    ec2.add_response("create_tags", {}, {"Resources": [NEW], "Tags": [{"Key": "Role", "Value": "web"}]})
    ec2.add_response("delete_tags", {}, {"Resources": [NEW], "Tags": [{"Key": "Old"}]})
    stub_snapshots(ec2, {SNAP: {}})
    stub_create_tags(ec2, [SNAP], dict(LINEAGE, Role="web"))
    res = run_module(mod, {"instance_id": "i-0ffffffffffffffff", "name": NAME, "tags": {"Role": "web"}})
    assert not res.failed, res.result
    assert res.result["changed"] is True
    assert res.result["image"]["tags"] == dict(LINEAGE, Role="web")


def test_race_into_duplicate_name_returns_the_existing_image(ec2, run_module):
    stub_instance(ec2)
    stub_lookup(ec2)
    ec2.add_client_error(
        "create_image", "InvalidAMIName.Duplicate", f"AMI name {NAME} is already in use by AMI {OLD}", 400
    )
    stub_lookup(ec2, image(OLD, tags=LINEAGE))
    stub_snapshots(ec2, {SNAP: LINEAGE})
    res = run_module(mod, {"instance_id": INSTANCE, "name": NAME})
    assert not res.failed, res.result
    assert res.result["image_id"] == OLD
    assert res.result["changed"] is False


def test_failed_image_is_removed_with_its_snapshots_and_fails_with_the_reason(ec2, run_module):
    stub_instance(ec2)
    stub_lookup(ec2)
    ec2.add_response("create_image", {"ImageId": NEW})
    stub_describe(ec2, image(state="pending", snapshots=()))
    reason = {"Code": "Client.InternalError", "Message": "Client.InternalError: snapshot failed"}
    stub_describe(ec2, image(state="failed", StateReason=reason))
    ec2.add_response("deregister_image", {}, {"ImageId": NEW})
    ec2.add_response("delete_snapshot", {}, {"SnapshotId": SNAP})
    res = run_module(mod, {"instance_id": INSTANCE, "name": NAME})
    assert res.failed
    msg = res.result["msg"]
    assert "\n" not in msg
    assert msg.startswith("CreateImage: Client.InternalError: image ami-0new00000000000001")
    assert "ended failed: Client.InternalError: snapshot failed" in msg
    assert f"removed it and its snapshots {SNAP}" in msg


VOLUME = "vol-0123456789abcdef0"
VOLUME_KEY = "arn:aws:kms:us-east-1:123456789012:key/5678abcd-12ab-34cd-56ef-1234567890ab"


@pytest.mark.parametrize(
    ("code", "mappings"),
    [
        # DescribeImages says a mapping is encrypted, never with which key (KmsKeyId is for RunInstances only).
        ("Client.InvalidKMSKey.InvalidState", [{"DeviceName": "/dev/xvda", "Ebs": {"Encrypted": True}}]),
        ("Client.InternalError", [{"DeviceName": "/dev/xvda", "Ebs": {"Encrypted": True}}]),
        # A failed image may describe no mapping at all: the instance's volumes say it was to be encrypted.
        ("Client.InternalError", []),
    ],
)
def test_an_image_ec2_failed_for_kms_names_kms_and_the_key_of_the_instances_volumes(ec2, run_module, code, mappings):
    source = dict(instance(), BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeId": VOLUME}}])
    stub_instance(ec2, source)
    stub_lookup(ec2)
    ec2.add_response("create_image", {"ImageId": NEW}, create_params(LINEAGE))
    reason = {"Code": code, "Message": f"{code}: Client error on CreateImage"}
    stub_describe(ec2, image(state="failed", snapshots=(), StateReason=reason, BlockDeviceMappings=mappings))
    # Read only now that EC2 failed the image: the keys that encrypt the volumes its snapshots are made of.
    ec2.add_response(
        "describe_volumes",
        {"Volumes": [{"VolumeId": VOLUME, "Encrypted": True, "KmsKeyId": VOLUME_KEY}]},
        {"VolumeIds": [VOLUME]},
    )
    ec2.add_response("deregister_image", {}, {"ImageId": NEW})
    res = run_module(mod, {"instance_id": INSTANCE, "name": NAME})
    assert res.failed
    msg = res.result["msg"]
    assert "\n" not in msg
    assert msg.startswith(f"CreateImage: {code}: image {NEW} ('{NAME}') in us-east-1 ended failed: {code}: Client")
    assert f"(KMS: EC2 could not use the key that encrypts its snapshots, {VOLUME_KEY}; the caller needs kms:Cre" in msg
    assert msg.endswith("; removed it")


def test_an_image_of_unencrypted_volumes_that_ec2_failed_does_not_name_kms(ec2, run_module):
    source = dict(instance(), BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeId": VOLUME}}])
    stub_instance(ec2, source)
    stub_lookup(ec2)
    ec2.add_response("create_image", {"ImageId": NEW}, create_params(LINEAGE))
    reason = {"Code": "Client.InternalError", "Message": "Client.InternalError: snapshot failed"}
    stub_describe(ec2, image(state="failed", snapshots=(), StateReason=reason, BlockDeviceMappings=[]))
    unencrypted = {"Volumes": [{"VolumeId": VOLUME, "Encrypted": False}]}
    ec2.add_response("describe_volumes", unencrypted, {"VolumeIds": [VOLUME]})
    ec2.add_response("deregister_image", {}, {"ImageId": NEW})
    res = run_module(mod, {"instance_id": INSTANCE, "name": NAME})
    assert res.failed
    assert res.result["msg"].endswith("ended failed: Client.InternalError: snapshot failed; removed it")


@pytest.fixture
def clock(monkeypatch):
    """A fake monotonic clock that sleeping moves on; returns the list of delays slept."""
    now = [1000.0]
    delays = []

    def fake_sleep(delay):
        delays.append(delay)
        now[0] += delay

    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    monkeypatch.setattr(_client.AwsClient, "sleep", staticmethod(fake_sleep))
    backoff = _client.backoff_delays
    monkeypatch.setattr(_client, "backoff_delays", lambda *a, **kw: backoff(*a, **dict(kw, rng=lambda: 1.0)))
    return delays


def created_schedule(timeout=_client.CONSISTENCY_TIMEOUT):
    """The sleeps of call_created (without jitter) until it gives up: 0.5, 1, then 2 s each."""
    delays, waited = [], 0.0
    for delay in _client.backoff_delays(
        1000, base=_client.CREATED_BACKOFF_BASE, cap=_client.CREATED_BACKOFF_CAP, rng=lambda: 1.0
    ):
        if waited >= timeout:
            return delays
        delays.append(min(delay, timeout - waited))
        waited += delays[-1]
    return delays


def test_wait_timeout_fails_and_removes_nothing(ec2, run_module, clock):
    delays = clock
    stub_instance(ec2)
    stub_lookup(ec2)
    ec2.add_response("create_image", {"ImageId": NEW})
    # 0.25 + 0.4 + 0.64 + 1.024 + 1.5 * 5 = 9.81; the last sleep is cut to the deadline, then a last read
    for _poll in range(11):
        stub_describe(ec2, image(state="pending", snapshots=()))
    res = run_module(mod, {"instance_id": INSTANCE, "name": NAME, "wait_timeout": 10})
    assert res.failed
    assert res.result["msg"] == (
        f"timed out after 10.0s waiting for image {NEW} in us-east-1 to become available; last seen: pending"
    )
    assert sum(delays) == pytest.approx(10.0)
    # no DeregisterImage/DeleteSnapshot were stubbed: the fixture fails on any unconsumed or unexpected call


def test_replace_deregisters_and_deletes_snapshots_then_creates(ec2, run_module):
    stub_instance(ec2)
    stub_lookup(ec2, image(OLD, snapshots=(OLD_SNAP, "snap-0old0000000000002")))
    ec2.add_response("deregister_image", {}, {"ImageId": OLD})
    ec2.add_client_error("delete_snapshot", "InvalidSnapshot.InUse", "in use by ami", 400)
    ec2.add_response("delete_snapshot", {}, {"SnapshotId": OLD_SNAP})
    ec2.add_response("delete_snapshot", {}, {"SnapshotId": "snap-0old0000000000002"})
    ec2.add_response("create_image", {"ImageId": NEW})
    stub_describe(ec2, image(tags=LINEAGE))
    stub_snapshots(ec2, {SNAP: {}})
    stub_create_tags(ec2, [SNAP], LINEAGE)
    res = run_module(mod, {"instance_id": INSTANCE, "name": NAME, "on_exists": "replace"})
    assert not res.failed, res.result
    assert res.result["image_id"] == NEW
    assert res.result["actions"][0] == (
        f"deregister {OLD} (us-east-1) and delete its snapshots {OLD_SNAP}, snap-0old0000000000002"
    )


def test_on_exists_fail_changes_nothing(ec2, run_module):
    stub_instance(ec2)
    stub_lookup(ec2, image(OLD))
    res = run_module(mod, {"instance_id": INSTANCE, "name": NAME, "on_exists": "fail"})
    assert res.failed
    assert res.result["msg"] == f"name: an image named {NAME!r} already exists: {OLD} (us-east-1)"


def test_check_mode_create_makes_no_mutating_call(ec2, run_module):
    stub_instance(ec2)
    stub_lookup(ec2)
    res = run_module(mod, {"instance_id": INSTANCE, "name": NAME, "tags": {"Role": "web"}}, check_mode=True)
    assert not res.failed, res.result
    assert res.result["changed"] is True
    assert "image_id" not in res.result
    assert res.result["actions"] == [f"create image {NAME!r} from {INSTANCE} (us-east-1){REBOOT}"]


def test_check_mode_replace_says_what_would_happen(ec2, run_module):
    stub_instance(ec2)
    stub_lookup(ec2, image(OLD, snapshots=(OLD_SNAP,)))
    res = run_module(mod, {"instance_id": INSTANCE, "name": NAME, "on_exists": "replace"}, check_mode=True)
    assert res.result["changed"] is True and "image_id" not in res.result
    assert res.result["actions"] == [
        f"deregister {OLD} (us-east-1) and delete its snapshots {OLD_SNAP}",
        f"create image {NAME!r} from {INSTANCE} (us-east-1){REBOOT}",
    ]


def test_check_mode_keep_returns_the_existing_image(ec2, run_module):
    stub_instance(ec2)
    stub_lookup(ec2, image(tags=LINEAGE))
    stub_snapshots(ec2, {SNAP: LINEAGE})
    res = run_module(mod, {"instance_id": INSTANCE, "name": NAME}, check_mode=True)
    assert res.result["changed"] is False and res.result["image_id"] == NEW


def test_diff_shows_image_before_and_after(ec2, run_module):
    stub_instance(ec2)
    stub_lookup(ec2, image(tags={"Role": "db"}))
    ec2.add_response("describe_image_attribute", {"ImageId": NEW, "LaunchPermissions": []})
    stub_snapshots(ec2, {SNAP: {"Role": "db"}})
    ec2.add_response("describe_image_attribute", {"ImageId": NEW, "LaunchPermissions": []})
    res = run_module(
        mod,
        {"instance_id": INSTANCE, "name": NAME, "tags": {"Role": "web"}, "launch_permissions": ["111122223333"]},
        check_mode=True,
        diff=True,
    )
    assert res.result["changed"] is True
    diff = res.result["diff"]
    assert diff["before"]["image"]["tags"] == {"Role": "db"}
    assert diff["before"]["image"]["launch_permissions"] == []
    assert diff["after"]["image"]["tags"] == {"Role": "web"}
    assert diff["after"]["image"]["launch_permissions"] == ["111122223333"]
    assert diff["after"]["image"]["image_id"] == NEW


def test_diff_of_a_new_image_has_empty_before(ec2, run_module, warned):
    stub_instance(ec2)
    stub_lookup(ec2)
    res = run_module(mod, {"instance_id": INSTANCE, "name": NAME, "no_reboot": True}, check_mode=True, diff=True)
    assert res.result["diff"]["before"] == {"image": {}}
    assert res.result["diff"]["after"]["image"]["name"] == NAME
    assert res.result["diff"]["after"]["image"]["tags"] == LINEAGE
    assert res.result["actions"] == [f"create image {NAME!r} from {INSTANCE} (us-east-1)"]
    assert warned == []


@pytest.mark.parametrize("check_mode", [True, False])
def test_reboot_is_said_in_actions_diff_and_a_warning_on_a_running_instance(ec2, run_module, check_mode, warned):
    stub_instance(ec2)
    stub_lookup(ec2)
    if not check_mode:
        ec2.add_response("create_image", {"ImageId": NEW}, create_params(LINEAGE))
        stub_describe(ec2, image(tags=LINEAGE))
        stub_snapshots(ec2, {SNAP: LINEAGE})
    res = run_module(mod, {"instance_id": INSTANCE, "name": NAME}, check_mode=check_mode, diff=True)
    assert not res.failed, res.result
    assert res.result["actions"] == [f"create image {NAME!r} from {INSTANCE} (us-east-1){REBOOT}"]
    diff = res.result["diff"]
    assert diff["before"]["instance"] == {"instance_id": INSTANCE, "state": "running"}
    assert diff["after"]["instance"] == {
        "instance_id": INSTANCE,
        "state": "rebooted for the image (no_reboot is false)",
    }
    (warning,) = warned
    assert warning.startswith(f"instance {INSTANCE} is running and {'would be' if check_mode else 'is'} rebooted")
    assert "no_reboot: true" in warning


def test_stopped_instance_is_not_warned_about_and_a_kept_image_reboots_nothing(ec2, run_module, warned):
    stub_instance(ec2, instance(state="stopped"))
    stub_lookup(ec2)
    res = run_module(mod, {"instance_id": INSTANCE, "name": NAME}, check_mode=True)
    assert res.result["actions"] == [f"create image {NAME!r} from {INSTANCE} (us-east-1){REBOOT}"]
    assert warned == []
    stub_instance(ec2)
    stub_lookup(ec2, image(tags=LINEAGE))
    stub_snapshots(ec2, {SNAP: LINEAGE})
    res = run_module(mod, {"instance_id": INSTANCE, "name": NAME}, check_mode=True, diff=True)
    assert res.result["actions"] == [] and warned == []
    assert "instance" not in res.result["diff"]["after"]


def test_launch_permissions_are_reconciled(ec2, run_module):
    stub_instance(ec2)
    stub_lookup(ec2, image(tags=LINEAGE))
    stub_snapshots(ec2, {SNAP: LINEAGE})
    ec2.add_response(
        "describe_image_attribute",
        {
            "ImageId": NEW,
            "LaunchPermissions": [{"UserId": "111111111111"}, {"UserId": "222222222222"}, {"Group": "all"}],
        },
        {"ImageId": NEW, "Attribute": "launchPermission"},
    )
    ec2.add_response(
        "modify_image_attribute",
        {},
        {
            "ImageId": NEW,
            "LaunchPermission": {"Add": [{"UserId": "333333333333"}], "Remove": [{"UserId": "111111111111"}]},
        },
    )
    res = run_module(
        mod, {"instance_id": INSTANCE, "name": NAME, "launch_permissions": ["222222222222", "333333333333"]}
    )
    assert not res.failed, res.result
    assert res.result["changed"] is True
    assert res.result["actions"] == [
        f"share {NEW} (us-east-1) with 333333333333; stop sharing {NEW} (us-east-1) with 111111111111"
    ]


def test_wait_false_does_not_wait_and_cannot_tag_unmade_snapshots(ec2, run_module, slept):
    stub_instance(ec2)
    stub_lookup(ec2)
    ec2.add_response("create_image", {"ImageId": NEW})
    stub_describe(ec2, image(state="pending", snapshots=(), tags=LINEAGE))
    res = run_module(mod, {"instance_id": INSTANCE, "name": NAME, "wait": False})
    assert not res.failed, res.result
    assert res.result["image"]["state"] == "pending"
    assert res.result["snapshot_ids"] == []
    assert slept == []


def stub_kept_source_and_no_copy(ec2):
    """The image exists (kept) in us-east-1, no copy in eu-west-1 yet; returns eu-west-1's stubber."""
    stub_instance(ec2)
    stub_regions(ec2, "us-east-1", "eu-west-1")
    stub_lookup(ec2, image(tags=LINEAGE))
    eu = ec2.for_region("eu-west-1")
    stub_lookup(eu)
    stub_snapshots(ec2, {SNAP: LINEAGE})
    return eu


COPY_TAGS = dict(LINEAGE, **{"bakery:copied-from": f"us-east-1/{NEW}"})


def copy_params(token_region, snapshots=True):
    """CopyImage's request: the copy and (``snapshots``) its snapshots tagged at creation."""
    specs = [{"ResourceType": "image", "Tags": _tags.dict_to_tags(COPY_TAGS)}]
    if snapshots:
        specs.append({"ResourceType": "snapshot", "Tags": _tags.dict_to_tags(COPY_TAGS)})
    return {
        "SourceImageId": NEW,
        "SourceRegion": "us-east-1",
        "Name": NAME,
        "TagSpecifications": specs,
        "ClientToken": _images.copy_token(NEW, token_region, NAME),
    }


def test_copies_to_regions_run_concurrently(ec2, run_module):
    regions = ("eu-west-1", "ap-southeast-2")
    stub_instance(ec2)
    stub_regions(ec2, "us-east-1", *regions)
    stub_lookup(ec2, image(tags=LINEAGE))
    stubs = {r: ec2.for_region(r) for r in regions}
    for stub in stubs.values():
        stub_lookup(stub)
    stub_snapshots(ec2, {SNAP: LINEAGE})
    for n, (region, stub) in enumerate(stubs.items()):
        copy_id, copy_snap = f"ami-0c0py000000000{n:03d}", f"snap-0c0py00000000{n:03d}"
        stub.add_response("copy_image", {"ImageId": copy_id}, copy_params(region))
        stub_describe(stub, image(copy_id, state="pending", snapshots=(), tags=COPY_TAGS))
        stub_describe(stub, image(copy_id, snapshots=(copy_snap,), tags=COPY_TAGS))
        stub_snapshots(stub, {copy_snap: COPY_TAGS})  # tagged by CopyImage: no CreateTags

    # Each region's CopyImage waits at a barrier for the other's: if copies ran one after the other,
    # the first would wait alone, the barrier would break, and the task would fail.
    barrier = threading.Barrier(len(regions), timeout=10)
    events, lock = [], threading.Lock()

    def at_copy(**_kwargs):
        with lock:
            events.append("copy")
        barrier.wait()

    def after_describe(parsed, **_kwargs):
        if parsed.get("Images") and parsed["Images"][0]["State"] == "available":
            with lock:
                events.append("available")

    for stub in stubs.values():
        stub.client.meta.events.register("before-parameter-build.ec2.CopyImage", at_copy)
        stub.client.meta.events.register("after-call.ec2.DescribeImages", after_describe)

    res = run_module(mod, {"instance_id": INSTANCE, "name": NAME, "copy_to_regions": list(regions)})
    assert not res.failed, res.result
    assert events == ["copy", "copy", "available", "available"]
    assert res.result["copies"] == {"eu-west-1": "ami-0c0py000000000000", "ap-southeast-2": "ami-0c0py000000000001"}
    assert res.result["changed"] is True
    assert sum(a.startswith(f"copy {NEW} to ") for a in res.result["actions"]) == 2


def test_endpoint_refusing_snapshot_tags_in_copy_image_gets_them_afterwards(ec2, run_module):
    eu = stub_kept_source_and_no_copy(ec2)
    copy_id, copy_snap = "ami-0c0py000000000000", "snap-0c0py00000000000"
    eu.add_client_error("copy_image", "InvalidParameterValue", "snapshot tags", 400, copy_params("eu-west-1"))
    eu.add_response("copy_image", {"ImageId": copy_id}, copy_params("eu-west-1", snapshots=False))
    stub_describe(eu, image(copy_id, snapshots=(copy_snap,), tags=COPY_TAGS))
    stub_snapshots(eu, {copy_snap: {}})
    stub_create_tags(eu, [copy_snap], COPY_TAGS)
    res = run_module(mod, {"instance_id": INSTANCE, "name": NAME, "copy_to_regions": ["eu-west-1"]})
    assert not res.failed, res.result
    assert res.result["copies"] == {"eu-west-1": copy_id}


def test_copy_found_by_name_in_its_region_is_kept(ec2, run_module):
    stub_instance(ec2)
    stub_regions(ec2, "us-east-1", "eu-west-1")
    stub_lookup(ec2, image(tags=LINEAGE))
    eu = ec2.for_region("eu-west-1")
    copy_tags = dict(LINEAGE, **{"bakery:copied-from": f"us-east-1/{NEW}"})
    stub_lookup(eu, image("ami-0c0py000000000000", snapshots=("snap-0c0py00000000000",), tags=copy_tags))
    stub_snapshots(ec2, {SNAP: LINEAGE})
    stub_snapshots(eu, {"snap-0c0py00000000000": copy_tags})
    res = run_module(mod, {"instance_id": INSTANCE, "name": NAME, "copy_to_regions": ["eu-west-1"]})
    assert not res.failed, res.result
    assert res.result["changed"] is False
    assert res.result["copies"] == {"eu-west-1": "ami-0c0py000000000000"}


def test_failed_copy_is_removed_and_fails_the_task(ec2, run_module):
    eu = stub_kept_source_and_no_copy(ec2)
    eu.add_response("copy_image", {"ImageId": "ami-0c0py000000000000"}, copy_params("eu-west-1"))
    failed = image("ami-0c0py000000000000", state="failed", snapshots=(), StateReason={"Message": "copy failed"})
    stub_describe(eu, failed)
    eu.add_response("deregister_image", {}, {"ImageId": "ami-0c0py000000000000"})
    res = run_module(mod, {"instance_id": INSTANCE, "name": NAME, "copy_to_regions": ["eu-west-1"]})
    assert res.failed
    assert res.result["msg"] == (
        "CopyImage: ImageFailed: image ami-0c0py000000000000 ('web-2026-11-20') in eu-west-1 ended failed: "
        "copy failed; removed it"
    )


def test_instance_by_name_ignores_terminated_ones(ec2, run_module):
    stub_instance(
        ec2,
        instance("i-0aaaaaaaaaaaaaaaa", state="terminated"),
        instance(),
        Filters=[{"Name": "tag:Name", "Values": ["web-build"]}],
    )
    stub_lookup(ec2, image(tags=LINEAGE))
    stub_snapshots(ec2, {SNAP: LINEAGE})
    res = run_module(mod, {"instance_name": "web-build", "name": NAME})
    assert not res.failed, res.result


def test_instance_name_matching_several_lists_them(ec2, run_module):
    stub_instance(
        ec2,
        instance("i-0aaaaaaaaaaaaaaaa", state="stopped"),
        instance(),
        instance("i-0bbbbbbbbbbbbbbbb", state="terminated"),
        Filters=[{"Name": "tag:Name", "Values": ["web-build"]}],
    )
    res = run_module(mod, {"instance_name": "web-build", "name": NAME})
    assert res.failed
    assert res.result["msg"] == (
        "instance_name: 2 instances that are not terminated match 'web-build': i-0aaaaaaaaaaaaaaaa (stopped), "
        f"{INSTANCE} (running), i-0bbbbbbbbbbbbbbbb (terminated) (us-east-1)"
    )


@pytest.mark.parametrize(
    ("instances", "params", "message"),
    [
        ([], {"instance_name": "nope"}, "instance_name: no instance 'nope' in this region (us-east-1)"),
        (
            [instance(state="terminated")],
            {"instance_id": INSTANCE},
            f"instance_id: instance {INSTANCE!r} is terminated or terminating: {INSTANCE} (terminated) (us-east-1)",
        ),
    ],
)
def test_missing_or_terminated_instance_fails(ec2, run_module, instances, params, message):
    if "instance_id" in params:
        ec2.add_response(
            "describe_instances",
            {"Reservations": [{"Instances": instances}]},
            {"InstanceIds": [INSTANCE]},
        )
    else:
        ec2.add_response(
            "describe_instances", {"Reservations": []}, {"Filters": [{"Name": "tag:Name", "Values": ["nope"]}]}
        )
    res = run_module(mod, dict(params, name=NAME))
    assert res.failed
    assert res.result["msg"] == message


def test_unknown_instance_id_fails(ec2, run_module):
    ec2.add_client_error(
        "describe_instances", "InvalidInstanceID.NotFound", f"The instance ID '{INSTANCE}' does not exist", 400
    )
    res = run_module(mod, {"instance_id": INSTANCE, "name": NAME})
    assert res.failed
    assert res.result["msg"] == f"instance_id: no instance {INSTANCE!r} in this region (us-east-1)"


def test_region_not_enabled_fails_before_any_change(ec2, run_module):
    stub_instance(ec2)
    stub_regions(ec2, "us-east-1", "eu-west-1")
    res = run_module(mod, {"instance_id": INSTANCE, "name": NAME, "copy_to_regions": ["eu-west-1", "me-south-9"]})
    assert res.failed
    assert res.result["msg"] == "copy_to_regions: 'me-south-9' is not a region enabled for this account"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"name": "ab"}, "name: 'ab' has 2 characters; an AMI name has 3 to 128"),
        ({"name": "x" * 129}, "an AMI name has 3 to 128"),
        ({"name": "web:1*"}, "name: 'web:1*' contains '*:'; an AMI name may only contain"),
        ({"description": "d" * 256}, "description: 256 characters given, EC2 allows at most 255"),
        ({"instance_id": "i-nothex"}, "instance_id: 'i-nothex' is not an instance ID"),
        ({"launch_permissions": ["12345"]}, "launch_permissions: '12345' is not a 12-digit AWS account ID"),
        ({"copy_to_regions": ["Europe"]}, "copy_to_regions: 'Europe' is not a valid AWS region name"),
        ({"copy_to_regions": ["us-east-1"]}, "copy_to_regions: 'us-east-1' is the region of the image itself"),
        ({"copy_to_regions": ["eu-west-1", "eu-west-1"]}, "copy_to_regions: 'eu-west-1' is listed twice"),
        ({"wait_timeout": -1}, "wait_timeout: -1 is negative"),
        ({"tags": {"aws:x": "y"}}, "tags: tag key 'aws:x' uses the reserved prefix 'aws:'"),
        ({"instance_name": "web"}, "instance_id|instance_name"),
        ({"instance_id": None}, "state is present but any of the following are missing: instance_id, instance_name"),
        ({"on_exists": "update"}, "on_exists"),
    ],
)
def test_bad_input_fails_before_any_call(ec2, run_module, params, message):
    args = {"instance_id": INSTANCE, "name": NAME}
    args.update(params)
    args = {k: v for k, v in args.items() if v is not None}
    res = run_module(mod, args)
    assert res.failed
    assert message in res.result["msg"]
    assert "\n" not in res.result["msg"]
    assert "Traceback" not in str(res.result)


def test_group_tag_changes_batches_identical_changes():
    creates, deletes = _images.group_tag_changes(
        {"snap-1": {}, "snap-2": {}, "snap-3": {"a": "1", "z": "9", "bakery:source-image-id": "x"}},
        {"a": "1"},
        purge=True,
    )
    assert creates == [(["snap-1", "snap-2"], {"a": "1"})]
    assert deletes == [(["snap-3"], ["z"])]


def test_copy_token_is_stable_and_distinct_per_region():
    assert _images.copy_token(NEW, "eu-west-1", NAME) == _images.copy_token(NEW, "eu-west-1", NAME)
    assert _images.copy_token(NEW, "eu-west-1", NAME) != _images.copy_token(NEW, "eu-west-2", NAME)
    assert len(_images.copy_token(NEW, "eu-west-1", NAME)) <= 64


# --- state: absent ----------------------------------------------------------------------------------

OLD_SNAP2 = "snap-0old0000000000002"
EU_COPY = "ami-0c0py000000000000"
EU_SNAP = "snap-0c0py00000000000"


def test_absent_deregisters_and_deletes_snapshots_here_and_in_copy_regions(ec2, run_module):
    stub_regions(ec2, "us-east-1", "eu-west-1")
    stub_lookup(ec2, image(OLD, snapshots=(OLD_SNAP, OLD_SNAP2)))
    eu = ec2.for_region("eu-west-1")
    stub_lookup(eu, image(EU_COPY, snapshots=(EU_SNAP,)))
    ec2.add_response("deregister_image", {}, {"ImageId": OLD})
    ec2.add_response("delete_snapshot", {}, {"SnapshotId": OLD_SNAP})
    ec2.add_response("delete_snapshot", {}, {"SnapshotId": OLD_SNAP2})
    eu.add_response("deregister_image", {}, {"ImageId": EU_COPY})
    eu.add_response("delete_snapshot", {}, {"SnapshotId": EU_SNAP})
    res = run_module(mod, {"name": NAME, "state": "absent", "copy_to_regions": ["eu-west-1"]})
    assert not res.failed, res.result
    assert res.result["changed"] is True
    assert res.result["removed"] == [
        {"region": "us-east-1", "image_id": OLD, "snapshot_ids": [OLD_SNAP, OLD_SNAP2]},
        {"region": "eu-west-1", "image_id": EU_COPY, "snapshot_ids": [EU_SNAP]},
    ]
    assert res.result["actions"] == [
        f"deregister {OLD} (us-east-1) and delete its snapshots {OLD_SNAP}, {OLD_SNAP2}",
        f"deregister {EU_COPY} (eu-west-1) and delete its snapshots {EU_SNAP}",
    ]
    assert "image_id" not in res.result and "snapshot_ids" not in res.result


def test_absent_removes_every_image_of_that_name(ec2, run_module):
    # EC2 allows one image per name; endpoints that allow more get all of them removed.
    stub_lookup(ec2, image(OLD, snapshots=(OLD_SNAP,)), image(NEW, snapshots=()))
    ec2.add_response("deregister_image", {}, {"ImageId": OLD})
    ec2.add_response("delete_snapshot", {}, {"SnapshotId": OLD_SNAP})
    ec2.add_response("deregister_image", {}, {"ImageId": NEW})
    res = run_module(mod, {"name": NAME, "state": "absent"})
    assert not res.failed, res.result
    assert [r["image_id"] for r in res.result["removed"]] == [OLD, NEW]


def test_absent_takes_off_the_protection_ami_retire_put_on_the_newest_image_first(ec2, run_module):
    protected = image(OLD, snapshots=(OLD_SNAP,))
    protected.update(
        DeregistrationProtection="enabled-without-cooldown",
        Tags=[*protected.get("Tags", []), {"Key": "bakery:retire-protected", "Value": "newest"}],
    )
    stub_lookup(ec2, protected)
    ec2.add_response("disable_image_deregistration_protection", {"Return": "true"}, {"ImageId": OLD})
    ec2.add_response("delete_tags", {}, {"Resources": [OLD], "Tags": [{"Key": "bakery:retire-protected"}]})
    ec2.add_response("deregister_image", {}, {"ImageId": OLD})
    ec2.add_response("delete_snapshot", {}, {"SnapshotId": OLD_SNAP})
    res = run_module(mod, {"name": NAME, "state": "absent"})
    assert not res.failed, res.result
    assert res.result["actions"][0].startswith(f"take off the deregistration protection ami_retire put on {OLD}")


def test_absent_when_missing_is_unchanged(ec2, run_module):
    stub_regions(ec2, "us-east-1", "eu-west-1")
    stub_lookup(ec2)
    stub_lookup(ec2.for_region("eu-west-1"))
    res = run_module(mod, {"name": NAME, "state": "absent", "copy_to_regions": ["eu-west-1"]}, diff=True)
    assert not res.failed, res.result
    assert res.result["changed"] is False
    assert res.result["removed"] == [] and res.result["actions"] == []
    assert res.result["diff"] == {
        "before": {"image": {}, "copies": {"eu-west-1": {}}},
        "after": {"image": {}, "copies": {"eu-west-1": {}}},
    }


def test_absent_check_mode_sends_nothing_mutating_and_says_what_would_go(ec2, run_module):
    stub_regions(ec2, "us-east-1", "eu-west-1")
    stub_lookup(ec2, image(OLD, snapshots=(OLD_SNAP,), tags={"Role": "web"}))
    stub_lookup(ec2.for_region("eu-west-1"), image(EU_COPY, snapshots=(EU_SNAP,)))
    # Only the lookups are stubbed: any DeregisterImage or DeleteSnapshot would fail the test.
    res = run_module(
        mod, {"name": NAME, "state": "absent", "copy_to_regions": ["eu-west-1"]}, check_mode=True, diff=True
    )
    assert not res.failed, res.result
    assert res.result["changed"] is True
    assert res.result["removed"] == [
        {"region": "us-east-1", "image_id": OLD, "snapshot_ids": [OLD_SNAP]},
        {"region": "eu-west-1", "image_id": EU_COPY, "snapshot_ids": [EU_SNAP]},
    ]
    assert res.result["actions"][0] == f"deregister {OLD} (us-east-1) and delete its snapshots {OLD_SNAP}"
    diff = res.result["diff"]
    assert diff["before"]["image"]["image_id"] == OLD
    assert diff["before"]["image"]["tags"] == {"Role": "web"}
    assert diff["before"]["copies"]["eu-west-1"]["image_id"] == EU_COPY
    assert diff["after"] == {"image": {}, "copies": {"eu-west-1": {}}}


def test_absent_retries_snapshots_still_in_use(ec2, run_module, slept):
    stub_lookup(ec2, image(OLD, snapshots=(OLD_SNAP,)))
    ec2.add_response("deregister_image", {}, {"ImageId": OLD})
    for _attempt in range(2):
        ec2.add_client_error("delete_snapshot", "InvalidSnapshot.InUse", f"{OLD_SNAP} is in use by {OLD}", 400)
    ec2.add_response("delete_snapshot", {}, {"SnapshotId": OLD_SNAP})
    res = run_module(mod, {"name": NAME, "state": "absent"})
    assert not res.failed, res.result
    assert res.result["removed"] == [{"region": "us-east-1", "image_id": OLD, "snapshot_ids": [OLD_SNAP]}]
    assert len(slept) == 2


def test_absent_gives_up_on_a_snapshot_in_use_after_bounded_retries(ec2, run_module, slept):
    stub_lookup(ec2, image(OLD, snapshots=(OLD_SNAP,)))
    ec2.add_response("deregister_image", {}, {"ImageId": OLD})
    for _attempt in range(10):
        ec2.add_client_error("delete_snapshot", "InvalidSnapshot.InUse", f"{OLD_SNAP} is in use by {OLD}", 400)
    res = run_module(mod, {"name": NAME, "state": "absent"})
    assert res.failed
    assert res.result["msg"].startswith("DeleteSnapshot: InvalidSnapshot.InUse: ")
    assert "\n" not in res.result["msg"]
    assert len(slept) == 9


def test_absent_snapshot_already_gone_is_fine(ec2, run_module):
    stub_lookup(ec2, image(OLD, snapshots=(OLD_SNAP,)))
    ec2.add_response("deregister_image", {}, {"ImageId": OLD})
    ec2.add_client_error("delete_snapshot", "InvalidSnapshot.NotFound", f"{OLD_SNAP} does not exist", 400)
    res = run_module(mod, {"name": NAME, "state": "absent"})
    assert not res.failed, res.result
    assert res.result["changed"] is True


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"instance_id": INSTANCE}, "instance_id: not used with state=absent, which removes the images named"),
        ({"instance_name": "web-build"}, "instance_name: not used with state=absent"),
        ({"tags": {"Role": "web"}}, "tags: not used with state=absent"),
        ({"description": "web"}, "description: not used with state=absent"),
        ({"launch_permissions": []}, "launch_permissions: not used with state=absent"),
        ({"name": "web:1"}, "name: 'web:1' contains ':'"),
        ({"copy_to_regions": ["us-east-1"]}, "copy_to_regions: 'us-east-1' is the region of the image itself"),
        ({"state": "gone"}, "state"),
    ],
)
def test_absent_bad_input_fails_before_any_call(ec2, run_module, params, message):
    res = run_module(mod, dict({"name": NAME, "state": "absent"}, **params))
    assert res.failed
    assert message in res.result["msg"]
    assert "\n" not in res.result["msg"]


def test_absent_region_not_enabled_fails_before_any_change(ec2, run_module):
    stub_regions(ec2, "us-east-1")
    res = run_module(mod, {"name": NAME, "state": "absent", "copy_to_regions": ["eu-west-1"]})
    assert res.failed
    assert res.result["msg"] == "copy_to_regions: 'eu-west-1' is not a region enabled for this account"


# --- real AWS: eventual consistency, per-region deadlines, copy tokens -------------------------------


def test_new_image_not_found_yet_is_retried_with_backoff(ec2, run_module, clock):
    stub_instance(ec2)
    stub_lookup(ec2)
    ec2.add_response("create_image", {"ImageId": NEW})
    for _attempt in range(4):  # EC2 does not list the new image for a while
        ec2.add_client_error("describe_images", "InvalidAMIID.NotFound", f"The image id '[{NEW}]' does not exist")
    stub_describe(ec2, image(tags=LINEAGE))
    for _attempt in range(2):
        ec2.add_client_error("describe_snapshots", "InvalidSnapshot.NotFound", f"The snapshot '{SNAP}' does not exist")
    stub_snapshots(ec2, {SNAP: LINEAGE})
    res = run_module(mod, {"instance_id": INSTANCE, "name": NAME})
    assert not res.failed, res.result
    assert res.result["image_id"] == NEW
    # At most 2 s between two asks (without jitter here): the image is seen within 2 s of EC2 listing it.
    assert clock == [0.5, 1.0, 2.0, 2.0, 0.5, 1.0]


def test_sharing_a_new_image_that_ec2_does_not_name_yet_is_retried(ec2, run_module, clock):
    stub_instance(ec2)
    stub_lookup(ec2)
    ec2.add_response("create_image", {"ImageId": NEW})
    stub_describe(ec2, image(tags=LINEAGE))
    stub_snapshots(ec2, {SNAP: LINEAGE})
    ec2.add_response("describe_image_attribute", {"ImageId": NEW, "LaunchPermissions": []})
    permission = {"ImageId": NEW, "LaunchPermission": {"Add": [{"UserId": "111122223333"}]}}
    ec2.add_client_error("modify_image_attribute", "InvalidAMIID.NotFound", "not yet", 400, permission)
    ec2.add_response("modify_image_attribute", {}, permission)
    res = run_module(mod, {"instance_id": INSTANCE, "name": NAME, "launch_permissions": ["111122223333"]})
    assert not res.failed, res.result
    assert clock == [0.5]


def test_new_image_not_found_for_good_fails_after_a_bounded_wait_of_at_least_60s(ec2, run_module, clock):
    stub_instance(ec2)
    stub_lookup(ec2)
    ec2.add_response("create_image", {"ImageId": NEW})
    for _attempt in range(len(created_schedule()) + 1):
        ec2.add_client_error("describe_images", "InvalidAMIID.NotFound", f"The image id '[{NEW}]' does not exist")
    res = run_module(mod, {"instance_id": INSTANCE, "name": NAME})
    assert res.failed
    assert 60 <= sum(clock) == _client.CONSISTENCY_TIMEOUT
    assert res.result["msg"].startswith("DescribeImages: InvalidAMIID.NotFound:")


def test_not_found_of_an_image_this_run_did_not_create_is_not_retried(ec2, run_module, clock):
    stub_instance(ec2)
    stub_lookup(ec2, image(tags=LINEAGE))
    ec2.add_client_error("describe_snapshots", "InvalidSnapshot.NotFound", f"The snapshot '{SNAP}' does not exist")
    res = run_module(mod, {"instance_id": INSTANCE, "name": NAME})
    assert res.failed
    assert res.result["error"]["code"] == "InvalidSnapshot.NotFound"
    assert clock == []


def test_each_copy_region_has_its_own_deadline(ec2, run_module, clock):
    """The source takes 50 of the 60 s; the copy still gets 60 s of its own (a shared deadline left it 10)."""
    stub_instance(ec2)
    stub_regions(ec2, "us-east-1", "eu-west-1")
    stub_lookup(ec2)
    eu = ec2.for_region("eu-west-1")
    stub_lookup(eu)
    ec2.add_response("create_image", {"ImageId": NEW})
    # 0.25 + 0.4 + 0.64 + 1.024 + 1.5 * 31 = 48.8 s of polls
    for _attempt in range(35):
        stub_describe(ec2, image(state="pending", snapshots=()))
    stub_describe(ec2, image(tags=LINEAGE))
    stub_snapshots(ec2, {SNAP: LINEAGE})
    copy_id, copy_snap = "ami-0c0py000000000000", "snap-0c0py00000000000"
    eu.add_response("copy_image", {"ImageId": copy_id}, copy_params("eu-west-1"))
    for _attempt in range(18):  # 0.25 + ... + 1.5 * 14 = 23.3 s: past the shared deadline, within its own
        stub_describe(eu, image(copy_id, state="pending", snapshots=()))
    copy_tags = dict(LINEAGE, **{"bakery:copied-from": f"us-east-1/{NEW}"})
    stub_describe(eu, image(copy_id, snapshots=(copy_snap,), tags=copy_tags))
    stub_snapshots(eu, {copy_snap: copy_tags})
    res = run_module(mod, {"instance_id": INSTANCE, "name": NAME, "copy_to_regions": ["eu-west-1"], "wait_timeout": 60})
    assert not res.failed, res.result
    assert res.result["copies"] == {"eu-west-1": copy_id}
    assert sum(clock) > 70


@pytest.mark.parametrize("seen_as", ["deregistered", "not found"])
def test_rerun_after_a_failed_copy_was_cleaned_up_uses_a_new_client_token(ec2, run_module, clock, seen_as):
    eu = stub_kept_source_and_no_copy(ec2)  # the failed copy was removed by the run that saw it fail
    removed, fresh = "ami-0c0py000000000000", "ami-0c0py000000000001"
    # EC2 answers the first token with the copy made under it, which is deregistered now
    eu.add_response("copy_image", {"ImageId": removed}, copy_params("eu-west-1"))
    if seen_as == "deregistered":
        stub_describe(eu, image(removed, state="deregistered", snapshots=()))
    else:  # an endpoint that forgets deregistered images: never listed within the bounded wait
        for _attempt in range(len(created_schedule()) + 1):
            eu.add_client_error(
                "describe_images", "InvalidAMIID.NotFound", f"The image id '[{removed}]' does not exist"
            )
    second = dict(copy_params("eu-west-1"), ClientToken=_images.copy_token(NEW, "eu-west-1", NAME, 1))
    eu.add_response("copy_image", {"ImageId": fresh}, second)
    copy_tags = dict(LINEAGE, **{"bakery:copied-from": f"us-east-1/{NEW}"})
    stub_describe(eu, image(fresh, snapshots=("snap-0c0py00000000001",), tags=copy_tags))
    stub_snapshots(eu, {"snap-0c0py00000000001": copy_tags})
    res = run_module(mod, {"instance_id": INSTANCE, "name": NAME, "copy_to_regions": ["eu-west-1"]})
    assert not res.failed, res.result
    assert res.result["copies"] == {"eu-west-1": fresh}
    assert second["ClientToken"] != copy_params("eu-west-1")["ClientToken"]


EU_KEY = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def test_a_copy_is_encrypted_with_its_regions_key(ec2, run_module):
    """copy_to_regions items may be {region, kms_key_id}: CopyImage with Encrypted and that key (its own token)."""
    eu = stub_kept_source_and_no_copy(ec2)
    copy_id, copy_snap = "ami-0c0py000000000000", "snap-0c0py00000000000"
    request = dict(copy_params("eu-west-1"), Encrypted=True, KmsKeyId=EU_KEY,
                   ClientToken=_images.copy_token(NEW, "eu-west-1", NAME, kms_key=EU_KEY))  # fmt: skip
    eu.add_response("copy_image", {"ImageId": copy_id}, request)
    stub_describe(eu, image(copy_id, snapshots=(copy_snap,), tags=COPY_TAGS))
    stub_snapshots(eu, {copy_snap: COPY_TAGS})
    items = [{"region": "eu-west-1", "kms_key_id": EU_KEY}]
    res = run_module(mod, {"instance_id": INSTANCE, "name": NAME, "copy_to_regions": items, "kms_key_id": "alias/x"})
    assert not res.failed, res.result
    assert res.result["copies"] == {"eu-west-1": copy_id}
    assert _images.copy_token(NEW, "eu-west-1", NAME, kms_key=EU_KEY) != _images.copy_token(NEW, "eu-west-1", NAME)


@pytest.mark.parametrize(
    ("items", "key", "message"),
    [([{"region": "eu-west-1", "size": 8}], None,
      "copy_to_regions: {'region': 'eu-west-1', 'size': 8} is not a region name or a dict of region and kms_key_id"),
     (["eu-west-1"], EU_KEY.replace("eu-west-1", "us-east-1"),
      "copy_to_regions: the copy to eu-west-1 cannot be encrypted with arn:aws:kms:us-east-1:123456789012:key/"
      "1234abcd-12ab-34cd-56ef-1234567890ab, a key of us-east-1 (KMS keys are regional): give eu-west-1's key in an "
      "item {region: eu-west-1, kms_key_id: ...}, or an alias")],
)  # fmt: skip
def test_bad_copy_targets_fail_before_any_call(ec2, run_module, items, key, message):
    res = run_module(mod, {"instance_id": INSTANCE, "name": NAME, "copy_to_regions": items, "kms_key_id": key})
    assert res.failed and res.result["msg"] == message


def test_a_copy_ec2_failed_for_kms_names_kms_and_the_key(ec2, run_module):
    eu = stub_kept_source_and_no_copy(ec2)
    request = dict(copy_params("eu-west-1"), Encrypted=True, KmsKeyId=EU_KEY,
                   ClientToken=_images.copy_token(NEW, "eu-west-1", NAME, kms_key=EU_KEY))  # fmt: skip
    eu.add_response("copy_image", {"ImageId": "ami-0c0py000000000000"}, request)
    reason = {"Code": "Client.InvalidKMSKey.InvalidState", "Message": "The KMS key provided is in an incorrect state"}
    stub_describe(eu, image("ami-0c0py000000000000", state="failed", snapshots=(), StateReason=reason))
    eu.add_response("deregister_image", {}, {"ImageId": "ami-0c0py000000000000"})
    items = [{"region": "eu-west-1", "kms_key_id": EU_KEY}]
    res = run_module(mod, {"instance_id": INSTANCE, "name": NAME, "copy_to_regions": items})
    assert res.failed
    msg = res.result["msg"]
    assert msg.startswith("CopyImage: Client.InvalidKMSKey.InvalidState: image ami-0c0py000000000000")
    assert f"(KMS: EC2 could not use the key that encrypts its snapshots, {EU_KEY}; the caller needs kms:Create" in msg
    assert "\n" not in msg and msg.endswith("; removed it")
