"""ami_retire end to end on botocore Stubbers: every reason, every error, check mode, diff and reruns.

Each stubbed answer names the request it expects, so these tests also show which calls the module makes (a few
per page, none per image to find users) and that it makes no mutating call in check mode.
"""

from __future__ import annotations

import datetime

import pytest
from ansible_collections.bakery.ec2.plugins.module_utils import _images
from ansible_collections.bakery.ec2.plugins.modules import ami_retire
from botocore.stub import ANY

NOW = datetime.datetime.now(datetime.UTC)
FAMILY = {"Owners": ["self"], "Filters": [{"Name": "tag:BakeryFlow", "Values": ["web"]}]}
FAMILY_ARGS = {"tags": {"BakeryFlow": "web"}}


def ami(n):
    return f"ami-{n:017x}"


def snap(n):
    return f"snap-{n:017x}"


def image(n, days_old, **extra):
    """Image ``n`` of the family, created ``days_old`` days ago, with its own snapshot."""
    img = {
        "ImageId": ami(n),
        "Name": f"web-{n}",
        "CreationDate": (NOW - datetime.timedelta(days=days_old)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "OwnerId": "123456789012",
        "State": "available",
        "Public": False,
        "DeregistrationProtection": "disabled",
        "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snap(n)}}],
        "Tags": [{"Key": "BakeryFlow", "Value": "web"}],
    }
    img.update(extra)
    return img


class Region:
    """The stubbed EC2, SSM and Auto Scaling clients of one region, and the answers a run reads."""

    def __init__(self, stubbed_clients, name="us-east-1"):
        self.name = name
        self.ec2 = stubbed_clients(name)[1]
        self.ssm = stubbed_clients(name, "ssm")[1]
        self.asg = stubbed_clients(name, "autoscaling")[1]

    def family(self, images):
        self.ec2.add_response(
            "describe_images", {"Images": images}, {**FAMILY, "IncludeDeprecated": True, "MaxResults": 1000}
        )

    def users(self, ids, instances=(), versions=(), configurations=(), parameters=()):
        """Answers to the user lookups for candidates ``ids``: instances, templates, configurations, parameters."""
        for part in _chunks(sorted(ids), 200):
            filters = [
                {"Name": "image-id", "Values": part},
                {"Name": "instance-state-name", "Values": list(_images.USED_STATES)},
            ]
            found = [i for i in instances if i["ImageId"] in part]
            answer = {"Reservations": [{"ReservationId": "r-0123456789abcdef0", "Instances": found}] if found else []}
            self.ec2.add_response("describe_instances", answer, {"Filters": filters, "MaxResults": 1000})
        templates = sorted({v["LaunchTemplateId"] for v in versions})
        self.ec2.add_response(
            "describe_launch_templates",
            {"LaunchTemplates": [{"LaunchTemplateId": t, "LaunchTemplateName": t} for t in templates]},
            {"MaxResults": 200},
        )
        for template in templates:
            self.ec2.add_response(
                "describe_launch_template_versions",
                {"LaunchTemplateVersions": [v for v in versions if v["LaunchTemplateId"] == template]},
                {"LaunchTemplateId": template, "MaxResults": 200},
            )
        self.asg.add_response(
            "describe_launch_configurations",
            {"LaunchConfigurations": list(configurations)},
            {"MaxRecords": 100},
        )
        self.ssm.add_response(
            "describe_parameters",
            {"Parameters": [{"Name": name} for name, _value in parameters]},
            {
                "ParameterFilters": [{"Key": "DataType", "Option": "Equals", "Values": ["aws:ec2:image"]}],
                "MaxResults": 50,
            },
        )
        for part in _chunks(list(parameters), 10):
            self.ssm.add_response(
                "get_parameters",
                {"Parameters": [{"Name": n, "Value": v, "DataType": "aws:ec2:image"} for n, v in part]},
                {"Names": [n for n, _v in part]},
            )

    def enabled_regions(self, *names):
        self.ec2.add_response("describe_regions", {"Regions": [{"RegionName": name} for name in names]}, {})

    def recheck(self, *ids):
        """Answers to the lookups made again right before ``ids`` are deregistered: nothing uses them now."""
        self.users(ids)

    def not_shared(self, *ids):
        for image_id in ids:
            self.ec2.add_response(
                "describe_image_attribute",
                {"ImageId": image_id, "LaunchPermissions": []},
                {"ImageId": image_id, "Attribute": "launchPermission"},
            )

    def own_images(self, images):
        self.ec2.add_response(
            "describe_images",
            {"Images": images},
            {"Owners": ["self"], "IncludeDeprecated": True, "MaxResults": 1000},
        )

    def deregister(self, *ids):
        for image_id in ids:
            self.ec2.add_response("deregister_image", {"Return": True}, {"ImageId": image_id})

    def delete_snapshots(self, *ids):
        for snapshot_id in ids:
            self.ec2.add_response("delete_snapshot", {}, {"SnapshotId": snapshot_id})

    def deprecate(self, *ids):
        for image_id in ids:
            self.ec2.add_response(
                "enable_image_deprecation", {"Return": True}, {"ImageId": image_id, "DeprecateAt": ANY}
            )

    def protect(self, image_id):
        self.ec2.add_response("enable_image_deregistration_protection", {"Return": "true"}, {"ImageId": image_id})
        self.ec2.add_response(
            "create_tags",
            {},
            {"Resources": [image_id], "Tags": [{"Key": _images.PROTECTED_TAG, "Value": "newest"}]},
        )


def _chunks(values, size):
    return [values[i : i + size] for i in range(0, len(values), size)]


def instance(iid, image_id, state):
    codes = {"pending": 0, "running": 16, "stopping": 64, "stopped": 80, "shutting-down": 32}
    return {"InstanceId": iid, "ImageId": image_id, "State": {"Code": codes[state], "Name": state}}


def version(template, number, image_id):
    return {"LaunchTemplateId": template, "VersionNumber": number, "LaunchTemplateData": {"ImageId": image_id}}


@pytest.fixture
def region(stubbed_clients):
    return Region(stubbed_clients)


def by_id(result):
    return {e["image_id"]: e for e in result["images"]}


# --- reasons -----------------------------------------------------------------------------------------


def test_keeps_the_newest_and_retires_the_rest_with_snapshots_deprecating_and_protecting(region, run_module):
    images = [image(n, days_old=10 - n) for n in range(1, 6)]  # 5 newest, 1 oldest
    region.family(images)
    region.users([ami(1), ami(2)])
    region.not_shared(ami(2), ami(1))
    region.own_images(images)
    region.recheck(ami(2), ami(1))
    region.deregister(ami(2))
    region.delete_snapshots(snap(2))
    region.deregister(ami(1))
    region.delete_snapshots(snap(1))
    region.deprecate(ami(4), ami(3))
    region.protect(ami(5))

    res = run_module(ami_retire, FAMILY_ARGS)

    assert not res.failed, res.result
    assert res.result["changed"] is True
    assert [(e["image_id"], e["action"], e["reason"]) for e in res.result["images"]] == [
        (ami(5), "keep", "newest 1 of 3"),
        (ami(4), "keep", "newest 2 of 3"),
        (ami(3), "keep", "newest 3 of 3"),
        (ami(2), "retire", "beyond keep 3"),
        (ami(1), "retire", "beyond keep 3"),
    ]
    assert res.result["retired"] == [ami(2), ami(1)]
    assert res.result["snapshots_deleted"] == [snap(2), snap(1)]
    assert res.result["deprecated"] == [ami(4), ami(3)]
    assert res.result["protected"] == [ami(5)]
    assert all(e["region"] == "us-east-1" and e["in_use_by"] == [] for e in res.result["images"])


def test_every_kind_of_user_keeps_an_old_image_and_is_named(region, run_module):
    images = [image(n, days_old=100 - n) for n in range(1, 7)]  # 6 newest
    region.family(images)
    region.users(
        [ami(1), ami(2), ami(3), ami(4), ami(5)],
        instances=[
            instance("i-0000000000000000a", ami(1), "stopped"),
            instance("i-0000000000000000b", ami(1), "pending"),
        ],
        versions=[version("lt-0000000000000000a", 4, ami(2)), version("lt-0000000000000000a", 5, ami(6))],
        configurations=[
            {"LaunchConfigurationName": "web-2024", "ImageId": ami(3), "InstanceType": "t3.micro", "CreatedTime": NOW}
        ],
        parameters=[("/bakery/web/image-id", ami(4))],
    )
    region.not_shared(ami(5))
    region.own_images(images)
    region.recheck(ami(5))
    region.deregister(ami(5))
    region.delete_snapshots(snap(5))
    region.protect(ami(6))

    res = run_module(ami_retire, {**FAMILY_ARGS, "keep": 1, "deprecate_superseded": False})

    assert not res.failed, res.result
    found = by_id(res.result)
    assert found[ami(1)]["reason"] == "in use"
    assert found[ami(1)]["in_use_by"] == [
        "instance i-0000000000000000a (stopped)",
        "instance i-0000000000000000b (pending)",
    ]
    assert (found[ami(2)]["reason"], found[ami(2)]["in_use_by"]) == (
        "in use",
        ["launch template lt-0000000000000000a version 4"],
    )
    assert (found[ami(3)]["reason"], found[ami(3)]["in_use_by"]) == ("in use", ["launch configuration web-2024"])
    assert (found[ami(4)]["reason"], found[ami(4)]["in_use_by"]) == ("in use", ["ssm parameter /bakery/web/image-id"])
    assert (found[ami(5)]["action"], found[ami(5)]["reason"]) == ("retire", "beyond keep 1")
    assert res.result["retired"] == [ami(5)]


def test_young_protected_public_and_shared_images_are_kept_each_with_its_reason(region, run_module):
    images = [
        image(1, days_old=400),
        image(2, days_old=300, Public=True),
        image(3, days_old=200, DeregistrationProtection="enabled-with-cooldown"),
        image(4, days_old=100),
        image(5, days_old=5),
        image(6, days_old=1, DeregistrationProtection="enabled-without-cooldown"),
    ]
    region.family(images)
    region.users([ami(1), ami(4)])  # only what the keep rules let go and nothing else keeps is asked about
    region.ec2.add_response(
        "describe_image_attribute",
        {"ImageId": ami(4), "LaunchPermissions": [{"UserId": "210987654321"}]},
        {"ImageId": ami(4), "Attribute": "launchPermission"},
    )
    region.not_shared(ami(1))
    region.own_images(images)
    region.recheck(ami(1))
    region.deregister(ami(1))
    region.delete_snapshots(snap(1))
    region.deprecate(ami(5), ami(4), ami(3), ami(2))

    res = run_module(ami_retire, {**FAMILY_ARGS, "keep": 1, "keep_days": 30})

    assert not res.failed, res.result
    assert [(e["image_id"], e["reason"]) for e in res.result["images"]] == [
        (ami(6), "newest 1 of 1"),
        (ami(5), "younger than 30 days"),
        (ami(4), "shared"),
        (ami(3), "protected"),
        (ami(2), "public"),
        (ami(1), "beyond keep 1"),
    ]
    assert res.result["protected"] == []  # the newest was protected already


def test_another_accounts_images_are_judged_but_never_changed(region, run_module):
    theirs = "210987654321"
    images = [image(3, days_old=1, OwnerId=theirs), image(2, days_old=2), image(1, days_old=3, OwnerId=theirs)]
    region.ec2.add_response(
        "describe_images",
        {"Images": images},
        {**FAMILY, "Owners": ["self", theirs], "IncludeDeprecated": True, "MaxResults": 1000},
    )
    region.users([ami(1), ami(2)])
    region.ec2.add_response(  # which of them are the account's own
        "describe_images", {"Images": [images[1]]}, {**FAMILY, "IncludeDeprecated": True, "MaxResults": 1000}
    )
    region.not_shared(ami(2))
    region.own_images([images[1]])
    region.recheck(ami(2))
    region.deregister(ami(2))
    region.delete_snapshots(snap(2))

    res = run_module(ami_retire, {**FAMILY_ARGS, "keep": 1, "owners": ["self", theirs]})

    assert not res.failed, res.result
    assert [(e["image_id"], e["action"], e["reason"]) for e in res.result["images"]] == [
        (ami(3), "keep", "newest 1 of 1"),
        (ami(2), "retire", "beyond keep 1"),
        (ami(1), "keep", "not owned"),
    ]
    assert res.result["protected"] == [] and res.result["deprecated"] == []  # the newest is theirs


def test_include_shared_retires_public_and_shared_images_without_asking(region, run_module):
    images = [image(2, days_old=1), image(1, days_old=9, Public=True)]
    region.family(images)
    region.users([ami(1)])
    region.own_images(images)
    region.recheck(ami(1))
    region.deregister(ami(1))
    region.delete_snapshots(snap(1))
    region.protect(ami(2))

    res = run_module(ami_retire, {**FAMILY_ARGS, "keep": 1, "include_shared": True})

    assert res.result["retired"] == [ami(1)]


def test_a_snapshot_another_image_uses_is_kept_and_delete_snapshots_false_keeps_all(region, run_module):
    shared_snap = {"DeviceName": "/dev/xvdb", "Ebs": {"SnapshotId": snap(99)}}
    images = [image(3, days_old=1), image(2, days_old=2), image(1, days_old=3)]
    images[2]["BlockDeviceMappings"].append(shared_snap)
    other = image(50, days_old=3, Name="other", BlockDeviceMappings=[shared_snap])
    region.family(images)
    region.users([ami(1), ami(2)])
    region.not_shared(ami(2), ami(1))
    region.own_images([*images, other])
    region.recheck(ami(2), ami(1))
    region.deregister(ami(2))
    region.delete_snapshots(snap(2))
    region.deregister(ami(1))
    region.delete_snapshots(snap(1))

    res = run_module(ami_retire, {**FAMILY_ARGS, "keep": 1, "deprecate_superseded": False, "protect_newest": False})

    assert res.result["snapshots_deleted"] == [snap(2), snap(1)]  # not snap 99, which "other" still uses


def test_delete_snapshots_false_deregisters_only(region, run_module):
    images = [image(2, days_old=1), image(1, days_old=2)]
    region.family(images)
    region.users([ami(1)])
    region.not_shared(ami(1))
    region.recheck(ami(1))
    region.deregister(ami(1))

    res = run_module(
        ami_retire,
        {**FAMILY_ARGS, "keep": 1, "delete_snapshots": False, "deprecate_superseded": False, "protect_newest": False},
    )

    assert (res.result["retired"], res.result["snapshots_deleted"]) == ([ami(1)], [])


# --- check mode, diff, idempotency -----------------------------------------------------------------


def test_check_mode_reports_the_same_and_makes_no_mutating_call(region, run_module):
    images = [image(n, days_old=10 - n) for n in range(1, 5)]
    region.family(images)
    region.users([ami(1)], instances=[])
    region.not_shared(ami(1))
    region.own_images(images)

    res = run_module(ami_retire, {**FAMILY_ARGS, "keep": 3}, check_mode=True, diff=True)

    assert not res.failed, res.result
    assert res.result["changed"] is True
    assert res.result["retired"] == [ami(1)]
    assert res.result["snapshots_deleted"] == [snap(1)]
    assert res.result["deprecated"] == [ami(3), ami(2)]
    assert res.result["protected"] == [ami(4)]
    assert ami(1) in res.result["diff"]["before"] and ami(1) not in res.result["diff"]["after"]
    assert ami(4) in res.result["diff"]["after"]
    assert any(line.startswith(f"deregister {ami(1)}") for line in res.result["changes"])


def test_a_rerun_with_everything_done_changes_nothing_and_asks_no_users(region, run_module):
    past = (NOW - datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    images = [
        image(3, days_old=1, DeregistrationProtection="enabled-without-cooldown",
              Tags=[{"Key": _images.PROTECTED_TAG, "Value": "newest"}]),
        image(2, days_old=2, DeprecationTime=past),
        image(1, days_old=3, DeprecationTime=past),
    ]  # fmt: skip
    region.family(images)

    res = run_module(ami_retire, FAMILY_ARGS)

    assert not res.failed, res.result
    assert res.result["changed"] is False
    assert res.result["changes"] == []
    assert [e["action"] for e in res.result["images"]] == ["keep"] * 3


def test_a_later_deprecation_time_is_brought_forward(region, run_module):
    future = (NOW + datetime.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    images = [
        image(2, days_old=1, DeregistrationProtection="enabled-without-cooldown"),
        image(1, 2, DeprecationTime=future),
    ]
    region.family(images)
    region.deprecate(ami(1))

    res = run_module(ami_retire, FAMILY_ARGS)

    assert res.result["deprecated"] == [ami(1)]


def test_its_own_protection_is_released_once_superseded_so_the_image_can_go(region, run_module):
    ours = [{"Key": _images.PROTECTED_TAG, "Value": "newest"}]
    images = [
        image(2, days_old=1),
        image(1, days_old=2, DeregistrationProtection="enabled-without-cooldown", Tags=ours),
    ]
    region.family(images)
    region.users([ami(1)])
    region.not_shared(ami(1))
    region.own_images(images)
    region.ec2.add_response("disable_image_deregistration_protection", {"Return": "true"}, {"ImageId": ami(1)})
    region.ec2.add_response("delete_tags", {}, {"Resources": [ami(1)], "Tags": [{"Key": _images.PROTECTED_TAG}]})
    region.recheck(ami(1))
    region.deregister(ami(1))
    region.delete_snapshots(snap(1))
    region.protect(ami(2))

    res = run_module(ami_retire, {**FAMILY_ARGS, "keep": 1})

    assert not res.failed, res.result
    assert (res.result["retired"], res.result["protected"]) == ([ami(1)], [ami(2)])


def test_no_image_of_the_family_changes_nothing(region, run_module):
    region.family([])
    res = run_module(ami_retire, FAMILY_ARGS)
    assert (res.failed, res.result["changed"], res.result["images"]) == (False, False, [])


# --- several regions, pages, not images --------------------------------------------------------------


def test_regions_are_judged_each_on_its_own(stubbed_clients, run_module):
    east, west = Region(stubbed_clients, "us-east-1"), Region(stubbed_clients, "eu-west-1")
    east.enabled_regions("us-east-1", "eu-west-1")
    for where, count in ((east, 2), (west, 1)):
        images = [image(n + (10 if where is west else 0), days_old=5 - n) for n in range(1, count + 1)]
        images = sorted(images, key=lambda i: i["CreationDate"], reverse=True)
        where.family(images)
    east.users([ami(1)])
    east.not_shared(ami(1))
    east.own_images([image(1, 4), image(2, 3)])
    east.recheck(ami(1))
    east.deregister(ami(1))
    east.delete_snapshots(snap(1))

    res = run_module(
        ami_retire,
        {**FAMILY_ARGS, "keep": 1, "regions": ["us-east-1", "eu-west-1"], "protect_newest": False},
    )

    assert not res.failed, res.result
    assert [(e["region"], e["image_id"], e["action"]) for e in res.result["images"]] == [
        ("us-east-1", ami(2), "keep"),
        ("us-east-1", ami(1), "retire"),
        ("eu-west-1", ami(11), "keep"),
    ]


def test_users_are_found_in_calls_per_page_of_200_images_and_10_parameters(region, run_module):
    images = [image(n, days_old=500 - n) for n in range(1, 252)]  # 251: the newest kept, 250 candidates
    candidates = [ami(n) for n in range(1, 251)]
    region.family(sorted(images, key=lambda i: i["CreationDate"], reverse=True))
    parameters = [(f"/p/{n}", ami(n)) for n in range(1, 13)]  # 12 parameters: 2 GetParameters calls
    region.users(candidates, parameters=parameters)  # 2 DescribeInstances calls (200 + 50 image IDs)
    region.own_images(images)  # one page of the account's images: which snapshots other images still use

    res = run_module(ami_retire, {**FAMILY_ARGS, "keep": 1, "include_shared": True}, check_mode=True)

    assert not res.failed, res.result
    assert len(res.result["retired"]) == 250 - 12


# --- errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["InvalidAMIID.NotFound", "InvalidAMIID.Unavailable"])
def test_an_image_another_run_retired_counts_as_retired(region, run_module, code):
    images = [image(2, days_old=1), image(1, days_old=2)]
    region.family(images)
    region.users([ami(1)])
    region.not_shared(ami(1))
    region.own_images(images)
    region.recheck(ami(1))
    region.ec2.add_client_error("deregister_image", code, "gone", expected_params={"ImageId": ami(1)})
    region.delete_snapshots(snap(1))

    res = run_module(ami_retire, {**FAMILY_ARGS, "keep": 1, "protect_newest": False})

    assert not res.failed, res.result
    assert res.result["retired"] == [ami(1)]


def test_an_image_used_since_the_check_is_kept_and_reported_not_retired(region, run_module):
    images = [image(3, days_old=1), image(2, days_old=2), image(1, days_old=3)]
    region.family(images)
    region.users([ami(1), ami(2)])
    region.not_shared(ami(2), ami(1))
    region.own_images(images)
    region.users([ami(1), ami(2)], instances=[instance("i-0000000000000000c", ami(1), "pending")])  # asked again
    region.deregister(ami(2))
    region.delete_snapshots(snap(2))

    res = run_module(ami_retire, {**FAMILY_ARGS, "keep": 1, "deprecate_superseded": False, "protect_newest": False})

    assert not res.failed, res.result
    entry = by_id(res.result)[ami(1)]
    assert (entry["action"], entry["reason"], entry["in_use_by"]) == (
        "keep",
        "in use",
        ["instance i-0000000000000000c (pending)"],
    )
    assert res.result["retired"] == [ami(2)]
    assert not any(ami(1) in line for line in res.result["changes"])


def test_an_unknown_region_is_refused_before_any_region_is_changed(region, run_module):
    region.enabled_regions("us-east-1", "eu-west-1")

    res = run_module(ami_retire, {**FAMILY_ARGS, "regions": ["eu-west-1", "us-east-9"]})

    assert res.failed
    assert res.result["msg"] == "regions: 'us-east-9' is not a region enabled for this account; nothing was changed"


def test_protection_turned_on_after_the_check_keeps_the_image_and_says_so(region, run_module):
    images = [image(2, days_old=1), image(1, days_old=2)]
    region.family(images)
    region.users([ami(1)])
    region.not_shared(ami(1))
    region.own_images(images)
    region.recheck(ami(1))
    region.ec2.add_client_error(
        "deregister_image", "OperationNotPermitted", "protected", expected_params={"ImageId": ami(1)}
    )
    region.deprecate(ami(1))  # kept after all, and superseded

    res = run_module(ami_retire, {**FAMILY_ARGS, "keep": 1, "protect_newest": False})

    assert not res.failed, res.result
    assert (by_id(res.result)[ami(1)]["action"], by_id(res.result)[ami(1)]["reason"]) == ("keep", "protected")
    assert res.result["retired"] == []


@pytest.mark.parametrize("code", ["InvalidSnapshot.NotFound", "InvalidSnapshot.InUse"])
def test_a_snapshot_gone_or_still_in_use_is_left_and_not_counted(region, run_module, code):
    images = [image(2, days_old=1), image(1, days_old=2)]
    region.family(images)
    region.users([ami(1)])
    region.not_shared(ami(1))
    region.own_images(images)
    region.recheck(ami(1))
    region.deregister(ami(1))
    attempts = 10 if code == "InvalidSnapshot.InUse" else 1  # InUse is retried for a while first
    region.ec2.add_client_error("delete_snapshot", code, "no", expected_params={"SnapshotId": snap(1)})
    for _attempt in range(attempts - 1):
        region.ec2.add_client_error("delete_snapshot", code, "no", expected_params={"SnapshotId": snap(1)})

    res = run_module(ami_retire, {**FAMILY_ARGS, "keep": 1, "protect_newest": False})

    assert not res.failed, res.result
    assert (res.result["retired"], res.result["snapshots_deleted"]) == ([ami(1)], [])


def test_a_denied_lookup_fails_in_one_line_naming_the_region_and_changes_nothing(region, run_module):
    region.family([image(2, days_old=1), image(1, days_old=2)])
    region.ec2.add_response("describe_instances", {"Reservations": []}, {"Filters": ANY, "MaxResults": 1000})
    region.ec2.add_client_error("describe_launch_templates", "UnauthorizedOperation", "You are not authorized")

    res = run_module(ami_retire, {**FAMILY_ARGS, "keep": 1})

    assert res.failed
    assert res.result["msg"] == "DescribeLaunchTemplates: UnauthorizedOperation: us-east-1: You are not authorized"


def test_throttling_is_retried(region, run_module):
    region.ec2.add_client_error("describe_images", "RequestLimitExceeded", "slow down", http_status_code=503)
    region.family([image(1, days_old=1, DeregistrationProtection="enabled-without-cooldown")])
    res = run_module(ami_retire, FAMILY_ARGS)
    assert not res.failed, res.result


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({}, "give name or tags (or both)"),
        ({"tags": {}}, "give name or tags (or both)"),
        ({**FAMILY_ARGS, "keep": 0}, "keep: 0 must be at least 1"),
        ({**FAMILY_ARGS, "keep": -2}, "keep: -2 must be at least 1"),
        ({**FAMILY_ARGS, "keep_days": -1}, "keep_days: -1 must be a whole number of days"),
        ({**FAMILY_ARGS, "keep_days": "a month"}, "keep_days"),
        ({"tags": "BakeryFlow"}, "tags"),
        ({**FAMILY_ARGS, "regions": ["mars-1"]}, "regions: 'mars-1' is not a valid AWS region name"),
        ({**FAMILY_ARGS, "regions": []}, "regions: the list is empty"),
        ({**FAMILY_ARGS, "owners": ["amazon"]}, "owners: 'amazon' is neither self nor a 12-digit account ID"),
        ({"tags": {"aws:x": "y"}}, "reserved prefix 'aws:'"),
    ],
)
def test_bad_input_is_refused_in_one_line_before_any_call(stubbed_clients, run_module, args, message):
    res = run_module(ami_retire, args)
    assert res.failed
    assert message in res.result["msg"]
    assert "\n" not in res.result["msg"]


def test_the_deprecation_time_asked_for_is_never_in_the_past_and_a_rerun_keeps_it():
    # EnableImageDeprecation refuses a time in the past and rounds to the minute: ask for the minute after next.
    for second in (0, 1, 30, 59):
        now = datetime.datetime(2026, 12, 7, 16, 5, second, 999999, tzinfo=datetime.UTC)
        when = _images.deprecate_at(now)
        assert when.second == 0 and when.microsecond == 0
        assert datetime.timedelta(seconds=60) < when - now <= datetime.timedelta(seconds=120)
    first = datetime.datetime(2026, 12, 7, 16, 5, 40, tzinfo=datetime.UTC)
    stamp = _images.deprecate_at(first).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    for later in (first + datetime.timedelta(seconds=30), first + datetime.timedelta(hours=1)):
        assert not _images.needs_deprecation({"DeprecationTime": stamp}, later)  # what the first run set stays
    far = (first + datetime.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert _images.needs_deprecation({"DeprecationTime": far}, first)  # a later time is brought forward
    assert _images.needs_deprecation({}, first)
