from __future__ import annotations

import datetime

import pytest
from ansible_collections.bakery.ec2.plugins.modules import ami_find

DEBIAN = "136693071363"
OTHER = "123456789012"


def image(image_id, name, created, owner=DEBIAN, arch="x86_64", **extra):
    img = {
        "ImageId": image_id,
        "Name": name,
        "CreationDate": created,
        "OwnerId": owner,
        "Architecture": arch,
        "State": "available",
        "RootDeviceName": "/dev/xvda",
    }
    img.update(extra)
    return img


def filters(**kv):
    return [{"Name": k.replace("_", "-"), "Values": v} for k, v in sorted(kv.items())]


def test_owner_ids_are_sent_as_owner_id_filter_and_newest_is_picked(ec2, run_module):
    ec2.add_response(
        "describe_images",
        {
            "Images": [
                image("ami-00000001", "debian-12-amd64-20260101-1", "2026-01-01T00:00:00.000Z"),
                image("ami-00000003", "debian-12-amd64-20260301-3", "2026-03-01T00:00:00.000Z"),
                image("ami-00000002", "debian-12-amd64-20260201-2", "2026-02-01T00:00:00.000Z"),
            ]
        },
        {
            "IncludeDeprecated": False,
            "MaxResults": 1000,
            "Filters": [
                {"Name": "architecture", "Values": ["x86_64"]},
                {"Name": "name", "Values": ["debian-12-amd64-*"]},
                {"Name": "owner-id", "Values": [DEBIAN]},
            ],
        },
    )
    res = run_module(ami_find, {"owners": [DEBIAN], "name": "debian-12-amd64-*", "architecture": "x86_64"})
    assert not res.failed
    assert res.result["changed"] is False
    assert res.result["image_id"] == "ami-00000003"
    assert [i["image_id"] for i in res.result["images"]] == ["ami-00000003", "ami-00000002", "ami-00000001"]
    assert res.result["image"]["root_device_name"] == "/dev/xvda"


def test_aliases_use_owner_alias_and_self_uses_owners(ec2, run_module):
    ec2.add_response(
        "describe_images",
        {"Images": [image("ami-0000000a", "a", "2026-01-01T00:00:00.000Z", owner=OTHER)]},
        {"IncludeDeprecated": False, "MaxResults": 1000, "Filters": [{"Name": "owner-id", "Values": [OTHER]}]},
    )
    ec2.add_response(
        "describe_images",
        {"Images": [image("ami-0000000b", "b", "2026-02-01T00:00:00.000Z", owner="137112412989")]},
        {
            "IncludeDeprecated": False,
            "MaxResults": 1000,
            "Filters": [{"Name": "owner-alias", "Values": ["amazon", "aws-marketplace"]}],
        },
    )
    ec2.add_response(
        "describe_images",
        {"Images": [image("ami-0000000a", "a", "2026-01-01T00:00:00.000Z", owner=OTHER)]},
        {"IncludeDeprecated": False, "MaxResults": 1000, "Owners": ["self"]},
    )
    res = run_module(ami_find, {"owners": [OTHER, "amazon", "self", "aws-marketplace"]})
    # union without duplicates, newest first
    assert [i["image_id"] for i in res.result["images"]] == ["ami-0000000b", "ami-0000000a"]


def test_tags_filters_and_sort_by_name_ascending(ec2, run_module):
    ec2.add_response(
        "describe_images",
        {
            "Images": [
                image("ami-00000002", "web-b", "2026-01-01T00:00:00.000Z", Tags=[{"Key": "Role", "Value": "web"}]),
                image("ami-00000001", "web-a", "2026-05-01T00:00:00.000Z", Tags=[{"Key": "Role", "Value": "web"}]),
            ]
        },
        {
            "IncludeDeprecated": False,
            "MaxResults": 1000,
            "Filters": [
                {"Name": "owner-id", "Values": [OTHER]},
                {"Name": "root-device-type", "Values": ["ebs"]},
                {"Name": "tag:Role", "Values": ["web"]},
            ],
        },
    )
    res = run_module(
        ami_find,
        {
            "owners": [OTHER],
            "tags": {"Role": "web"},
            "filters": {"root-device-type": "ebs"},
            "sort_by": "name",
            "sort_order": "ascending",
        },
    )
    assert res.result["image_id"] == "ami-00000001"
    assert res.result["image"]["name"] == "web-a"
    assert res.result["image"]["tags"] == {"Role": "web"}


def test_image_ids_are_sent_without_max_results(ec2, run_module):
    ec2.add_response(
        "describe_images",
        {"Images": [image("ami-0123456789abcdef0", "x", "2026-01-01T00:00:00.000Z")]},
        {"IncludeDeprecated": False, "ImageIds": ["ami-0123456789abcdef0"]},
    )
    res = run_module(ami_find, {"image_ids": ["ami-0123456789abcdef0"]})
    assert res.result["image_id"] == "ami-0123456789abcdef0"


def test_deprecated_images_are_left_out_unless_asked(ec2, run_module):
    past = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    future = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=90)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    images = {
        "Images": [
            image("ami-00000009", "newest-but-deprecated", "2026-09-01T00:00:00.000Z", DeprecationTime=past),
            image("ami-00000008", "deprecated-later", "2026-08-01T00:00:00.000Z", DeprecationTime=future),
        ]
    }
    ec2.add_response("describe_images", images, {"IncludeDeprecated": False, "MaxResults": 1000, "Owners": ["self"]})
    res = run_module(ami_find, {"owners": ["self"]})
    assert [i["image_id"] for i in res.result["images"]] == ["ami-00000008"]

    ec2.add_response("describe_images", images, {"IncludeDeprecated": True, "MaxResults": 1000, "Owners": ["self"]})
    res = run_module(ami_find, {"owners": ["self"], "include_deprecated": True})
    assert res.result["image_id"] == "ami-00000009"


def test_pages_are_followed(ec2, run_module):
    ec2.add_response(
        "describe_images",
        {"Images": [image("ami-00000001", "a", "2026-01-01T00:00:00.000Z")], "NextToken": "page2"},
        {"IncludeDeprecated": False, "MaxResults": 1000, "Owners": ["self"]},
    )
    ec2.add_response(
        "describe_images",
        {"Images": [image("ami-00000002", "b", "2026-02-01T00:00:00.000Z")]},
        {"IncludeDeprecated": False, "MaxResults": 1000, "Owners": ["self"], "NextToken": "page2"},
    )
    res = run_module(ami_find, {"owners": ["self"]})
    assert [i["image_id"] for i in res.result["images"]] == ["ami-00000002", "ami-00000001"]


def test_throttling_is_retried_with_backoff(ec2, run_module, slept):
    ec2.add_client_error("describe_images", "RequestLimitExceeded", "Request limit exceeded.", 503)
    ec2.add_client_error("describe_images", "RequestLimitExceeded", "Request limit exceeded.", 503)
    ec2.add_response(
        "describe_images",
        {"Images": [image("ami-00000001", "a", "2026-01-01T00:00:00.000Z")]},
        {"IncludeDeprecated": False, "MaxResults": 1000, "Owners": ["self"]},
    )
    res = run_module(ami_find, {"owners": ["self"]})
    assert res.result["image_id"] == "ami-00000001"
    assert len(slept) == 2
    assert all(0 <= d <= 1.0 for d in slept)


def test_persistent_errors_fail_with_the_aws_code(ec2, run_module, slept):
    for _attempt in range(10):
        ec2.add_client_error("describe_images", "InternalError", "An internal error has occurred", 500)
    res = run_module(ami_find, {"owners": ["self"]})
    assert res.failed
    assert res.result["msg"] == "DescribeImages: InternalError: An internal error has occurred"
    assert res.result["error"]["code"] == "InternalError"
    assert len(slept) == 9


def test_non_retryable_error_fails_at_once(ec2, run_module, slept):
    ec2.add_client_error(
        "describe_images", "AuthFailure", "AWS was not able to validate the provided access credentials"
    )
    res = run_module(ami_find, {"owners": ["self"]})
    assert res.failed and "AuthFailure" in res.result["msg"]
    assert slept == []


def test_no_match_fails_naming_the_criteria(ec2, run_module):
    ec2.add_response("describe_images", {"Images": []})
    res = run_module(ami_find, {"owners": [DEBIAN], "name": "debian-99-*"})
    assert res.failed
    assert "debian-99-*" in res.result["msg"] and DEBIAN in res.result["msg"] and "us-east-1" in res.result["msg"]
    assert "\n" not in res.result["msg"]


def test_allow_empty_returns_empty_list(ec2, run_module):
    ec2.add_response("describe_images", {"Images": []})
    res = run_module(ami_find, {"owners": [DEBIAN], "name": "debian-99-*", "allow_empty": True})
    assert not res.failed
    assert res.result["images"] == []
    assert "image" not in res.result and "image_id" not in res.result


def test_check_mode_returns_the_same(ec2, run_module):
    ec2.add_response("describe_images", {"Images": [image("ami-00000001", "a", "2026-01-01T00:00:00.000Z")]})
    res = run_module(ami_find, {"owners": ["self"]}, check_mode=True)
    assert res.result["image_id"] == "ami-00000001" and res.result["changed"] is False


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"owners": ["debian"]}, "owners: 'debian' is neither a 12-digit account ID"),
        ({"owners": ["13669307136"]}, "'13669307136'"),
        ({"image_ids": ["ami-xyz"]}, "image_ids: 'ami-xyz' is not an AMI ID"),
        ({"architecture": "amd64"}, "amd64"),
        ({"name": "debian-*", "filters": {"name": "ubuntu-*"}}, "filters: 'name'"),
        ({"owners": ["self"], "filters": {"owner-alias": "amazon"}}, "owner-id/owner-alias cannot be combined"),
    ],
)
def test_bad_input_fails_before_any_call(ec2, run_module, args, fragment):
    res = run_module(ami_find, args)
    assert res.failed
    assert fragment in res.result["msg"]
    assert "\n" not in res.result["msg"]
    assert "Traceback" not in str(res.result)


def test_agreeing_filters_are_accepted(ec2, run_module):
    ec2.add_response("describe_images", {"Images": [image("ami-00000001", "a", "2026-01-01T00:00:00.000Z")]})
    res = run_module(ami_find, {"name": "a", "filters": {"name": ["a"]}})
    assert not res.failed
