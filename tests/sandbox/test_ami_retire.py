"""ami_retire on the sandbox, as the least-privilege user: a family in two regions whose old images are still used
by a stopped instance, a launch template version and an SSM parameter. Check mode, the real run, then a rerun.

The images are API-only (RegisterImage): no host boots, so the whole file costs seconds. The sandbox's own lessons
(deprecation, deregistration protection, snapshots in use, the DataType filter) have their tests at the end.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError
from sandbox_helpers import ROOT, ansible_playbook, api_front

EAST, WEST = "us-east-1", "eu-west-1"
KEEP = 2


def snapshots_of(image):
    return [m["Ebs"]["SnapshotId"] for m in image.get("BlockDeviceMappings", []) if m.get("Ebs", {}).get("SnapshotId")]


@pytest.fixture(scope="module")
def family(sandbox):
    """Images 1..5 in us-east-1 and 1..4 in eu-west-1 (oldest first), tagged with the family's BakeryFlow.

    us-east-1: 1 is used by a stopped instance, 2 by version 1 of a launch template (whose version 2 names 5),
    3 is unused. eu-west-1: 1 is the value of an SSM parameter of data type aws:ec2:image, 2 is unused.
    """
    flow = f"retire-{uuid.uuid4().hex[:8]}"
    ec2 = {EAST: sandbox.client(EAST), WEST: sandbox.client(WEST)}
    images = {EAST: [], WEST: []}
    for n in range(1, 6):
        for region in (EAST, WEST) if n < 5 else (EAST,):
            image_id = ec2[region].register_image(Name=f"{flow}-{n}", RootDeviceName="/dev/xvda")["ImageId"]
            ec2[region].create_tags(Resources=[image_id], Tags=[{"Key": "BakeryFlow", "Value": flow}])
            images[region].append(image_id)
        time.sleep(1.05)  # CreationDate has whole seconds: each round is younger than the one before
    instance = ec2[EAST].run_instances(ImageId=images[EAST][0], InstanceType="t3.micro", MinCount=1, MaxCount=1)
    instance_id = instance["Instances"][0]["InstanceId"]
    ec2[EAST].stop_instances(InstanceIds=[instance_id])
    # ami_retire finds it in a listing by image and state, which shows a new instance once EC2's eventual
    # consistency lets it (the sandbox's window, as on AWS): the family is judged once the instance is listed there.
    listed = [{"Name": "image-id", "Values": [images[EAST][0]]}, {"Name": "instance-state-name", "Values": ["stopped"]}]
    deadline = time.monotonic() + 60
    while not ec2[EAST].describe_instances(Filters=listed)["Reservations"]:
        assert time.monotonic() < deadline, f"{instance_id} never listed as stopped"
        time.sleep(0.5)
    template = ec2[EAST].create_launch_template(
        LaunchTemplateName=flow, LaunchTemplateData={"ImageId": images[EAST][1], "InstanceType": "t3.micro"}
    )["LaunchTemplate"]["LaunchTemplateId"]
    ec2[EAST].create_launch_template_version(LaunchTemplateId=template, LaunchTemplateData={"ImageId": images[EAST][4]})
    ssm = sandbox.client(WEST, "ssm")
    parameter = f"/{flow}/image-id"
    ssm.put_parameter(Name=parameter, Value=images[WEST][0], Type="String", DataType="aws:ec2:image")
    snapshots = {
        image_id: snapshots_of(img)
        for region in (EAST, WEST)
        for img in ec2[region].describe_images(ImageIds=images[region])["Images"]
        for image_id in [img["ImageId"]]
    }
    yield {
        "flow": flow,
        "images": images,
        "instance": instance_id,
        "template": template,
        "parameter": parameter,
        "snapshots": snapshots,
    }
    ec2[EAST].terminate_instances(InstanceIds=[instance_id])
    ec2[EAST].delete_launch_template(LaunchTemplateId=template)
    ssm.delete_parameter(Name=parameter)
    for region, ids in images.items():
        for image_id in ids:
            try:
                ec2[region].disable_image_deregistration_protection(ImageId=image_id)
                ec2[region].deregister_image(ImageId=image_id)
            except ClientError:
                pass  # retired by the test


def retire(sandbox, tmp_path, family, check):
    """One ami_retire task as the least-privilege user; its result."""
    book = tmp_path / "retire.yml"
    out = tmp_path / "result.json"
    task = {
        "name": "Retire",
        "bakery.ec2.ami_retire": {"tags": {"BakeryFlow": family["flow"]}, "keep": KEEP, "regions": [EAST, WEST]},
        "register": "retired",
        "check_mode": check,
        "diff": True,
    }
    keep = {"name": "Keep", "ansible.builtin.copy": {"content": "{{ retired | to_json }}", "dest": str(out)}}
    keep["ansible.builtin.copy"]["mode"] = "0600"
    play = {"name": "Retire", "hosts": "localhost", "connection": "local", "gather_facts": False}
    book.write_text(json.dumps([{**play, "tasks": [task, {**keep, "check_mode": False}]}]))
    proc = ansible_playbook(sandbox, book)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return json.loads(out.read_text())


def plan(result):
    return {e["image_id"]: (e["action"], e["reason"], e["in_use_by"]) for e in result["images"]}


@pytest.fixture(scope="module")
def runs(sandbox, family, tmp_path_factory):
    """The three runs, in order: check mode, the real run, the rerun."""
    ec2 = {EAST: sandbox.client(EAST), WEST: sandbox.client(WEST)}
    before = {r: ec2[r].describe_images(ImageIds=family["images"][r])["Images"] for r in (EAST, WEST)}
    check = retire(sandbox, tmp_path_factory.mktemp("check"), family, check=True)
    after_check = {r: ec2[r].describe_images(ImageIds=family["images"][r])["Images"] for r in (EAST, WEST)}
    real_started = datetime.now(UTC)
    real = retire(sandbox, tmp_path_factory.mktemp("real"), family, check=False)
    rerun = retire(sandbox, tmp_path_factory.mktemp("rerun"), family, check=False)
    return {"before": before, "after_check": after_check, "check": check, "real": real, "rerun": rerun,
            "real_started": real_started}  # fmt: skip


def expected(family):
    east, west = family["images"][EAST], family["images"][WEST]
    return {
        east[4]: ("keep", "newest 1 of 2", []),  # kept whatever uses it: its users are not asked for
        east[3]: ("keep", "newest 2 of 2", []),
        east[2]: ("retire", "beyond keep 2", []),
        east[1]: ("keep", "in use", [f"launch template {family['template']} version 1"]),
        east[0]: ("keep", "in use", [f"instance {family['instance']} (stopped)"]),
        west[3]: ("keep", "newest 1 of 2", []),
        west[2]: ("keep", "newest 2 of 2", []),
        west[1]: ("retire", "beyond keep 2", []),
        west[0]: ("keep", "in use", [f"ssm parameter {family['parameter']}"]),
    }


def test_check_mode_reports_every_reason_and_changes_nothing(runs, family):
    assert plan(runs["check"]) == expected(family)
    assert runs["check"]["changed"] is True
    assert runs["after_check"] == runs["before"]
    assert [e["region"] for e in runs["check"]["images"]] == [EAST] * 5 + [WEST] * 4


def test_the_real_run_retires_exactly_the_unused_old_images_and_their_snapshots(sandbox, runs, family):
    east, west = family["images"][EAST], family["images"][WEST]
    real = runs["real"]
    assert real["changed"] is True
    assert plan(real) == expected(family)
    assert sorted(real["retired"]) == sorted([east[2], west[1]])
    assert sorted(real["snapshots_deleted"]) == sorted(family["snapshots"][east[2]] + family["snapshots"][west[1]])
    for region, gone in ((EAST, east[2]), (WEST, west[1])):
        ec2 = sandbox.client(region)
        assert ec2.describe_images(Owners=["self"], Filters=[{"Name": "image-id", "Values": [gone]}])["Images"] == []
        for snapshot in family["snapshots"][gone]:
            with pytest.raises(ClientError) as err:
                ec2.describe_snapshots(SnapshotIds=[snapshot])
            assert err.value.response["Error"]["Code"] == "InvalidSnapshot.NotFound"


def test_kept_images_are_deprecated_and_the_newest_protected_as_said(sandbox, runs, family):
    east, west = family["images"][EAST], family["images"][WEST]
    real = runs["real"]
    real_started = runs["real_started"]
    assert sorted(real["deprecated"]) == sorted([east[3], east[1], east[0], west[2], west[0]])
    assert sorted(real["protected"]) == sorted([east[4], west[3]])
    for region, ids in ((EAST, east), (WEST, west)):
        kept = [i for i in ids if i not in real["retired"]]
        shown = {img["ImageId"]: img for img in sandbox.client(region).describe_images(ImageIds=kept)["Images"]}
        newest = ids[-1]
        assert shown[newest]["DeregistrationProtection"] == "enabled-without-cooldown"
        assert "DeprecationTime" not in shown[newest]
        for image_id in kept[:-1]:
            assert shown[image_id]["DeregistrationProtection"] == "disabled"
            # Deprecated within two minutes of the run (EC2 refuses a time in the past), to the minute.
            when = datetime.strptime(shown[image_id]["DeprecationTime"][:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
            assert when.second == 0 and real_started <= when <= datetime.now(UTC) + timedelta(minutes=2), when


def test_the_rerun_changes_nothing(runs, family):
    rerun = runs["rerun"]
    assert rerun["changed"] is False
    assert rerun["changes"] == []
    assert all(rerun[key] == [] for key in ("retired", "snapshots_deleted", "deprecated", "protected"))
    assert len(rerun["images"]) == 7


# --- what the sandbox learned for it -------------------------------------------------------------------


def test_a_protected_image_cannot_be_deregistered_until_protection_is_off(sandbox):
    ec2 = sandbox.client(EAST)
    image_id = ec2.register_image(Name=f"protected-{uuid.uuid4().hex[:8]}", RootDeviceName="/dev/xvda")["ImageId"]
    assert ec2.describe_images(ImageIds=[image_id])["Images"][0]["DeregistrationProtection"] == "disabled"
    ec2.enable_image_deregistration_protection(ImageId=image_id)
    assert (
        ec2.describe_images(ImageIds=[image_id])["Images"][0]["DeregistrationProtection"] == "enabled-without-cooldown"
    )
    with pytest.raises(ClientError) as err:
        ec2.deregister_image(ImageId=image_id)
    assert err.value.response["Error"]["Code"] == "OperationNotPermitted"
    assert "deregistration protection" in err.value.response["Error"]["Message"]
    ec2.disable_image_deregistration_protection(ImageId=image_id)
    ec2.deregister_image(ImageId=image_id)


def test_protection_with_cooldown_still_refuses_after_it_is_turned_off(sandbox):
    ec2 = sandbox.client(EAST)
    image_id = ec2.register_image(Name=f"cooldown-{uuid.uuid4().hex[:8]}", RootDeviceName="/dev/xvda")["ImageId"]
    ec2.enable_image_deregistration_protection(ImageId=image_id, WithCooldown=True)
    assert ec2.describe_images(ImageIds=[image_id])["Images"][0]["DeregistrationProtection"] == "enabled-with-cooldown"
    ec2.disable_image_deregistration_protection(ImageId=image_id)
    with pytest.raises(ClientError) as err:
        ec2.deregister_image(ImageId=image_id)
    assert "cooldown until" in err.value.response["Error"]["Message"]


def test_a_deprecated_image_still_launches_and_a_past_time_is_refused(sandbox):
    ec2 = sandbox.client(WEST)
    own = ec2.register_image(Name=f"deprecated-{uuid.uuid4().hex[:8]}", RootDeviceName="/dev/xvda")["ImageId"]
    with pytest.raises(ClientError) as err:  # EnableImageDeprecation: "You can't specify a date in the past."
        ec2.enable_image_deprecation(ImageId=own, DeprecateAt="2020-01-01T00:00:00Z")
    assert err.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert "2020-01-01T00:00:00Z is in the past" in err.value.response["Error"]["Message"]
    soon = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=2)
    ec2.enable_image_deprecation(ImageId=own, DeprecateAt=soon)
    shown = ec2.describe_images(ImageIds=[own])["Images"][0]
    assert shown["DeprecationTime"].startswith(soon.strftime("%Y-%m-%dT%H:%M"))
    launched = ec2.run_instances(ImageId=own, InstanceType="t3.micro", MinCount=1, MaxCount=1)["Instances"][0]
    ec2.terminate_instances(InstanceIds=[launched["InstanceId"]])
    ec2.deregister_image(ImageId=own)


def test_once_its_time_has_passed_another_accounts_image_is_seen_only_when_named(monkeypatch):
    """On the API front in this process, whose clock the test moves (the sandbox's own runs in its process)."""
    import boto3

    from sandbox import iam, image_lifecycle

    with api_front() as (_core, url, keys):
        key = keys[iam.ADMIN_USER]
        ec2 = boto3.client("ec2", region_name=WEST, endpoint_url=url, aws_access_key_id=key[0],
                           aws_secret_access_key=key[1])  # fmt: skip
        own = ec2.register_image(Name=f"deprecated-{uuid.uuid4().hex[:8]}", RootDeviceName="/dev/xvda")["ImageId"]
        other = ec2.describe_images(Owners=["amazon"], MaxResults=6)["Images"][0]
        owner, base = other["OwnerId"], other["ImageId"]
        soon = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=2)
        for image_id in (own, base):
            ec2.enable_image_deprecation(ImageId=image_id, DeprecateAt=soon)
        listed = {i["ImageId"] for i in ec2.describe_images(Owners=[owner])["Images"]}
        assert base in listed  # not deprecated yet
        later = soon + timedelta(minutes=1)
        monkeypatch.setattr(image_lifecycle, "_now", lambda: later)
        listed = {i["ImageId"] for i in ec2.describe_images(Owners=[owner])["Images"]}
        assert base not in listed  # another account's, deprecated: left out of listings
        asked = {i["ImageId"] for i in ec2.describe_images(Owners=[owner], IncludeDeprecated=True)["Images"]}
        assert base in asked
        assert ec2.describe_images(ImageIds=[base])["Images"][0]["ImageId"] == base  # named: shown
        mine = ec2.describe_images(Owners=["self"], Filters=[{"Name": "image-id", "Values": [own]}])["Images"]
        assert [i["ImageId"] for i in mine] == [own]  # its owner always sees its own
        ec2.disable_image_deprecation(ImageId=base)


def test_an_images_snapshot_cannot_be_deleted_while_the_image_exists(sandbox):
    ec2 = sandbox.client(EAST)
    image_id = ec2.register_image(Name=f"snap-{uuid.uuid4().hex[:8]}", RootDeviceName="/dev/xvda")["ImageId"]
    snapshot = snapshots_of(ec2.describe_images(ImageIds=[image_id])["Images"][0])[0]
    with pytest.raises(ClientError) as err:
        ec2.delete_snapshot(SnapshotId=snapshot)
    assert err.value.response["Error"]["Code"] == "InvalidSnapshot.InUse"
    ec2.deregister_image(ImageId=image_id)
    ec2.delete_snapshot(SnapshotId=snapshot)


def test_templates_and_configurations_naming_a_missing_image(sandbox):
    ec2 = sandbox.client(EAST)
    name = f"missing-{uuid.uuid4().hex[:8]}"
    made = ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData={"ImageId": "ami-0123456789abcdef0"})
    try:
        assert made["Warning"]["Errors"][0]["Code"] == "InvalidAMIID.NotFound"
    finally:
        ec2.delete_launch_template(LaunchTemplateName=name)
    with pytest.raises(ClientError) as err:
        sandbox.client(EAST, "autoscaling").create_launch_configuration(
            LaunchConfigurationName=name, ImageId="ami-0123456789abcdef0", InstanceType="t3.micro"
        )
    assert err.value.response["Error"]["Code"] == "ValidationError"


def test_describe_parameters_filters_on_the_image_data_type(sandbox):
    ssm = sandbox.client(EAST, "ssm")
    name = f"/datatype-{uuid.uuid4().hex[:8]}"
    image_id = sandbox.client(EAST).describe_images(Owners=["136693071363"])["Images"][0]["ImageId"]
    ssm.put_parameter(Name=f"{name}/image", Value=image_id, Type="String", DataType="aws:ec2:image")
    ssm.put_parameter(Name=f"{name}/text", Value="hello", Type="String")
    try:
        pages = ssm.get_paginator("describe_parameters").paginate(
            ParameterFilters=[{"Key": "DataType", "Values": ["aws:ec2:image"]}]
        )
        names = {p["Name"] for page in pages for p in page["Parameters"]}
        assert f"{name}/image" in names and f"{name}/text" not in names
    finally:
        ssm.delete_parameters(Names=[f"{name}/image", f"{name}/text"])


# --- the flow ----------------------------------------------------------------------------------------------


def test_image_yml_retires_beyond_flow_keep_images_and_teardown_still_removes_every_image(sandbox, tmp_path):
    """launch.yml, then image.yml twice (versions 1 and 2) with flow_keep_images 1: version 1 is retired by the second
    bake, version 2 is protected as the newest, and teardown.yml (which takes that protection off) removes it."""
    root = ROOT
    flow = {"flow_name": f"keep-{uuid.uuid4().hex[:6]}", "flow_store": "sqlite", "flow_key_path": str(tmp_path / "key")}
    flow["flow_keep_images"] = 1
    ec2 = sandbox.client(EAST)
    family = [{"Name": "tag:BakeryFlow", "Values": [flow["flow_name"]]}]
    try:
        up = ansible_playbook(sandbox, root / "playbooks/launch.yml", "-e", json.dumps(flow))
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-2000:]
        for version in (1, 2):
            bake = ansible_playbook(
                sandbox, root / "playbooks/image.yml", "-e", json.dumps({**flow, "flow_image_version": version})
            )
            assert bake.returncode == 0, bake.stdout[-3000:] + bake.stderr[-2000:]
        assert "retired ami-" in bake.stdout
        images = ec2.describe_images(Owners=["self"], Filters=family)["Images"]
        assert [i["Name"] for i in images] == [f"{flow['flow_name']}-web-v2"]
        assert images[0]["DeregistrationProtection"] == "enabled-without-cooldown"
    finally:
        down = ansible_playbook(sandbox, root / "playbooks/teardown.yml", "-e", json.dumps(flow))
    assert down.returncode == 0, down.stdout[-3000:] + down.stderr[-2000:]
    assert ec2.describe_images(Owners=["self"], Filters=family)["Images"] == []
