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


def test_lists_of_more_than_200_values_go_to_ec2_in_parts(ec2, run_module):
    owners = [f"{n:012d}" for n in range(1, 206)]
    first, last = (
        image("ami-00000001", "a", "2026-01-01T00:00:00.000Z"),
        image("ami-00000002", "b", "2026-02-01T00:00:00.000Z"),
    )
    for part, found in ((owners[:200], [first]), (owners[200:], [last, first])):
        query = {"IncludeDeprecated": False, "MaxResults": 1000, "Filters": [{"Name": "owner-id", "Values": part}]}
        ec2.add_response("describe_images", {"Images": found}, query)
    res = run_module(ami_find, {"owners": owners, "trusted_owners": [DEBIAN]})
    assert not res.failed, res.result.get("msg")
    assert [i["image_id"] for i in res.result["images"]] == ["ami-00000002", "ami-00000001"]  # each image once
    ec2.assert_no_pending_responses()

    image_ids = [f"ami-{n:08x}" for n in range(1, 206)]
    for part in (image_ids[:200], image_ids[200:]):
        found = [image(i, i, "2026-01-01T00:00:00.000Z") for i in part]
        ec2.add_response("describe_images", {"Images": found}, {"IncludeDeprecated": False, "ImageIds": part})
    res = run_module(ami_find, {"image_ids": image_ids})
    assert not res.failed, res.result.get("msg")
    assert sorted(i["image_id"] for i in res.result["images"]) == image_ids


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
        ({"owners": ["self"], "name": "debian-*", "filters": {"name": "ubuntu-*"}}, "filters: 'name'"),
        ({"owners": ["self"], "filters": {"owner-alias": "amazon"}}, "owner-id/owner-alias cannot be combined"),
        ({"name": "debian-12-*"}, "name: 'debian-12-*' without owners or image_ids is refused"),
        ({"filters": {"name": "debian-12-*"}}, "AMI name squatting"),
        ({"owners": [DEBIAN], "trusted_owners": ["debian"]}, "trusted_owners: 'debian' is not a 12-digit"),
        ({"ssm_parameter": "/aws/service/x y"}, "ssm_parameter: '/aws/service/x y' is not an SSM parameter name"),
        ({"ssm_parameter": "/p", "image_ids": ["ami-00000001"]}, "mutually exclusive"),
        ({"owners": ["self"], "regions": []}, "regions: the list is empty"),
        ({"owners": ["self"], "regions": ["us-east-1", "Europe"]}, "regions: 'Europe' is not a valid AWS region"),
        ({"owners": ["self"], "product_code": "abc", "filters": {"product-code": "xyz"}}, "filters: 'product-code'"),
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
    res = run_module(ami_find, {"owners": ["self"], "name": "a", "filters": {"name": ["a"]}})
    assert not res.failed


def test_a_name_with_an_owner_filter_is_not_refused(ec2, run_module):
    ec2.add_response("describe_images", {"Images": [image("ami-00000001", "a", "2026-01-01T00:00:00.000Z")]})
    res = run_module(ami_find, {"name": "a", "filters": {"owner-id": DEBIAN}})
    assert res.result["image_id"] == "ami-00000001"


AL2023 = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
DEBIAN12 = "/aws/service/debian/release/12/latest/amd64"


def parameter(name, value, region="us-east-1"):
    return {
        "Parameter": {
            "Name": name,
            "Type": "String",
            "Value": value,
            "Version": 7,
            "ARN": f"arn:aws:ssm:{region}::parameter{name}",
            "DataType": "aws:ec2:image",
        }
    }


def test_ssm_parameter_is_resolved_and_the_image_returned_in_full(ec2, ssm, run_module):
    ssm.add_response("get_parameter", parameter(DEBIAN12, "ami-0123456789abcdef0"), {"Name": DEBIAN12})
    ec2.add_response(
        "describe_images",
        {"Images": [image("ami-0123456789abcdef0", "debian-12-amd64-20261120-1234", "2026-11-20T10:00:00.000Z")]},
        {"IncludeDeprecated": False, "ImageIds": ["ami-0123456789abcdef0"]},
    )
    res = run_module(ami_find, {"ssm_parameter": DEBIAN12})
    assert not res.failed, res.result["msg"]
    assert res.result["image_id"] == "ami-0123456789abcdef0"
    assert res.result["image"]["name"] == "debian-12-amd64-20261120-1234"
    assert res.result["image"]["owner_id"] == DEBIAN
    assert res.result["ssm_parameter"] == {"name": DEBIAN12, "value": "ami-0123456789abcdef0"}


def test_ssm_parameter_keeps_the_other_criteria(ec2, ssm, run_module):
    ssm.add_response("get_parameter", parameter(DEBIAN12, "ami-0123456789abcdef0"), {"Name": DEBIAN12})
    ec2.add_response(
        "describe_images",
        {"Images": []},
        {
            "IncludeDeprecated": False,
            "ImageIds": ["ami-0123456789abcdef0"],
            "Filters": [{"Name": "architecture", "Values": ["arm64"]}, {"Name": "owner-id", "Values": [DEBIAN]}],
        },
    )
    res = run_module(ami_find, {"ssm_parameter": DEBIAN12, "owners": [DEBIAN], "architecture": "arm64"})
    assert res.failed
    assert res.result["msg"] == (
        f"ssm_parameter: {DEBIAN12!r} names ami-0123456789abcdef0, which is not an image of us-east-1 that "
        "matches the criteria"
    )


def test_missing_ssm_parameter_is_one_line_naming_it(ec2, ssm, run_module):
    ssm.add_client_error("get_parameter", "ParameterNotFound", "", 400, expected_params={"Name": "/aws/service/nope"})
    res = run_module(ami_find, {"ssm_parameter": "/aws/service/nope"})
    assert res.failed
    assert res.result["msg"] == "ssm_parameter: parameter '/aws/service/nope' not found in us-east-1"


def test_ssm_parameter_that_is_not_an_ami_id_fails(ec2, ssm, run_module):
    ssm.add_response("get_parameter", parameter("/cfg/x", "hello"))
    res = run_module(ami_find, {"ssm_parameter": "/cfg/x"})
    assert res.failed
    assert res.result["msg"] == "ssm_parameter: parameter '/cfg/x' in us-east-1 holds 'hello', not an AMI ID"


def test_ssm_parameter_pointing_to_an_image_gone_from_the_region(ec2, ssm, run_module):
    ssm.add_response("get_parameter", parameter(DEBIAN12, "ami-0123456789abcdef0"))
    ec2.add_client_error("describe_images", "InvalidAMIID.NotFound", "The image id does not exist")
    res = run_module(ami_find, {"ssm_parameter": DEBIAN12})
    assert res.failed and "names ami-0123456789abcdef0, which is not an image of us-east-1" in res.result["msg"]


def test_ssm_parameter_naming_a_deprecated_image_is_reported_not_used(ec2, ssm, run_module):
    ssm.add_response("get_parameter", parameter(DEBIAN12, "ami-0123456789abcdef0"), {"Name": DEBIAN12})
    old = image("ami-0123456789abcdef0", "debian-12-amd64-20240120-1234", "2024-01-20T10:00:00.000Z")
    old["DeprecationTime"] = "2025-01-20T10:00:00.000Z"
    asked = {"IncludeDeprecated": False, "ImageIds": ["ami-0123456789abcdef0"]}
    ec2.add_response("describe_images", {"Images": [old]}, asked)
    res = run_module(ami_find, {"ssm_parameter": DEBIAN12})
    assert res.failed
    assert res.result["msg"] == (
        f"ssm_parameter: {DEBIAN12!r} names ami-0123456789abcdef0, deprecated since 2025-01-20T10:00:00.000Z in "
        "us-east-1: not used (include_deprecated: true to use it anyway)"
    )


def test_ssm_parameter_naming_a_deregistered_image_says_so(ec2, ssm, run_module):
    ssm.add_response("get_parameter", parameter(DEBIAN12, "ami-0123456789abcdef0"), {"Name": DEBIAN12})
    asked = {"IncludeDeprecated": False, "ImageIds": ["ami-0123456789abcdef0"]}
    ec2.add_response("describe_images", {"Images": []}, asked)
    res = run_module(ami_find, {"ssm_parameter": DEBIAN12})
    assert res.failed
    assert res.result["msg"] == (
        f"ssm_parameter: {DEBIAN12!r} names ami-0123456789abcdef0, which is not an image of us-east-1 "
        "(deregistered, or of another region)"
    )


def test_denied_ssm_call_fails_with_the_aws_code(ec2, ssm, run_module):
    ssm.add_client_error("get_parameter", "AccessDeniedException", "not authorized to perform: ssm:GetParameter")
    res = run_module(ami_find, {"ssm_parameter": DEBIAN12})
    assert res.failed
    assert res.result["msg"].startswith("GetParameter: AccessDeniedException: not authorized")


REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2")


def test_regions_are_searched_each_with_its_own_ids(ec2, run_module):
    wanted = {
        "IncludeDeprecated": False,
        "MaxResults": 1000,
        "Filters": [{"Name": "name", "Values": ["debian-12-amd64-*"]}, {"Name": "owner-id", "Values": [DEBIAN]}],
    }
    for n, region in enumerate(REGIONS):
        ec2.for_region(region).add_response(
            "describe_images",
            {
                "Images": [
                    image(f"ami-0000000{n}a", "debian-12-amd64-20260101-1", "2026-01-01T00:00:00.000Z"),
                    image(f"ami-0000000{n}b", "debian-12-amd64-20260201-2", "2026-02-01T00:00:00.000Z"),
                ]
            },
            wanted,
        )
    res = run_module(ami_find, {"owners": [DEBIAN], "name": "debian-12-amd64-*", "regions": list(REGIONS)})
    assert not res.failed, res.result["msg"]
    by_region = res.result["by_region"]
    assert list(by_region) == list(REGIONS)
    for n, region in enumerate(REGIONS):
        assert by_region[region]["image_id"] == f"ami-0000000{n}b"
        assert by_region[region]["image"]["name"] == "debian-12-amd64-20260201-2"
        assert [i["image_id"] for i in by_region[region]["images"]] == [f"ami-0000000{n}b", f"ami-0000000{n}a"]
    assert "images" not in res.result and "image_id" not in res.result


def test_regions_with_ssm_parameter_resolve_it_in_each_region(ec2, ssm, run_module):
    for n, region in enumerate(REGIONS):
        ami = f"ami-0000000{n}00000000"
        ssm.for_region(region).add_response("get_parameter", parameter(AL2023, ami, region), {"Name": AL2023})
        ec2.for_region(region).add_response(
            "describe_images",
            {"Images": [image(ami, "al2023-ami-2023.6", "2026-10-01T00:00:00.000Z", owner="137112412989")]},
            {"IncludeDeprecated": False, "ImageIds": [ami]},
        )
    res = run_module(ami_find, {"ssm_parameter": AL2023, "regions": list(REGIONS)})
    assert not res.failed, res.result["msg"]
    for n, region in enumerate(REGIONS):
        assert res.result["by_region"][region]["image_id"] == f"ami-0000000{n}00000000"
        assert res.result["by_region"][region]["ssm_parameter"]["value"] == f"ami-0000000{n}00000000"


def test_regions_without_a_match_are_named_together(ec2, run_module):
    ec2.for_region("us-east-1").add_response(
        "describe_images", {"Images": [image("ami-00000001", "debian-12-a", "2026-01-01T00:00:00.000Z")]}
    )
    ec2.for_region("eu-west-1").add_response("describe_images", {"Images": []})
    ec2.for_region("ap-southeast-2").add_response("describe_images", {"Images": []})
    res = run_module(ami_find, {"owners": [DEBIAN], "name": "debian-12-*", "regions": list(REGIONS)})
    assert res.failed
    assert res.result["msg"].endswith("in eu-west-1, ap-southeast-2")
    assert "us-east-1" not in res.result["msg"]


def test_regions_with_allow_empty_return_empty_regions(ec2, run_module):
    ec2.for_region("us-east-1").add_response(
        "describe_images", {"Images": [image("ami-00000001", "debian-12-a", "2026-01-01T00:00:00.000Z")]}
    )
    ec2.for_region("eu-west-1").add_response("describe_images", {"Images": []})
    res = run_module(
        ami_find,
        {"owners": [DEBIAN], "name": "debian-12-*", "regions": ["us-east-1", "eu-west-1"], "allow_empty": True},
    )
    assert res.result["by_region"]["eu-west-1"] == {"images": []}
    assert res.result["by_region"]["us-east-1"]["image_id"] == "ami-00000001"


def test_an_error_in_one_region_names_the_region(ec2, run_module):
    ec2.for_region("us-east-1").add_response("describe_images", {"Images": []})
    ec2.for_region("eu-west-1").add_client_error("describe_images", "UnauthorizedOperation", "not allowed")
    res = run_module(ami_find, {"owners": ["self"], "regions": ["us-east-1", "eu-west-1"], "allow_empty": True})
    assert res.failed
    assert res.result["msg"] == "DescribeImages: UnauthorizedOperation: eu-west-1: not allowed"


def opt_in_region(ec2, status):
    """ap-east-1 answers AuthFailure (as EC2 answers in a region not enabled); us-east-1 says its opt-in status."""
    ec2.for_region("us-east-1").add_response("describe_images", {"Images": []})
    ec2.for_region("ap-east-1").add_client_error(
        "describe_images", "AuthFailure", "AWS was not able to validate the provided access credentials"
    )
    ec2.add_response(
        "describe_regions",
        {"Regions": [{"RegionName": "ap-east-1", "Endpoint": "ec2.ap-east-1.amazonaws.com", "OptInStatus": status}]},
        {"AllRegions": True, "RegionNames": ["ap-east-1"]},
    )


def test_an_opt_in_region_not_enabled_is_one_line_naming_it(ec2, run_module):
    opt_in_region(ec2, "not-opted-in")
    res = run_module(ami_find, {"owners": ["self"], "regions": ["us-east-1", "ap-east-1"], "allow_empty": True})
    assert res.failed
    assert res.result["msg"] == (
        "regions: ap-east-1 is an opt-in region that this account has not enabled; enable it (Account settings, "
        "AWS Regions) or leave it out"
    )
    ec2.assert_no_pending_responses()


def test_auth_failure_in_an_enabled_region_stays_auth_failure(ec2, run_module):
    opt_in_region(ec2, "opted-in")
    res = run_module(ami_find, {"owners": ["self"], "regions": ["us-east-1", "ap-east-1"], "allow_empty": True})
    assert res.failed
    assert res.result["msg"].startswith("DescribeImages: AuthFailure: ap-east-1: AWS was not able to validate")


@pytest.fixture
def warned(monkeypatch):
    """The warnings the module gives, in order."""
    messages = []
    monkeypatch.setattr(ami_find.AwsModule, "warn", lambda self, msg: messages.append(msg))
    return messages


def test_product_code_is_a_filter_and_returned(ec2, run_module, warned):
    code = "abcdefghij0123456789klmno"
    ec2.add_response(
        "describe_images",
        {
            "Images": [
                image(
                    "ami-00000001",
                    "vendor-app-1.2",
                    "2026-01-01T00:00:00.000Z",
                    owner="679593333241",
                    ProductCodes=[{"ProductCodeId": code, "ProductCodeType": "marketplace"}],
                    ImageOwnerAlias="aws-marketplace",
                    Public=True,
                )
            ]
        },
        {
            "IncludeDeprecated": False,
            "MaxResults": 1000,
            "Filters": [
                {"Name": "owner-alias", "Values": ["aws-marketplace"]},
                {"Name": "product-code", "Values": [code]},
            ],
        },
    )
    res = run_module(ami_find, {"owners": ["aws-marketplace"], "product_code": code})
    assert res.result["image"]["product_codes"] == [{"product_code_id": code, "product_code_type": "marketplace"}]
    assert warned == []


def test_public_images_of_an_account_warn_unless_trusted(ec2, run_module, warned):
    found = {
        "Images": [
            image("ami-00000001", "community-1", "2026-01-01T00:00:00.000Z", owner=OTHER, Public=True),
            image("ami-00000002", "debian-12-x", "2026-01-01T00:00:00.000Z", Public=True),
            image("ami-00000003", "mine", "2026-01-01T00:00:00.000Z", owner="111122223333", Public=False),
        ]
    }
    ec2.add_response("describe_images", found)
    res = run_module(ami_find, {"owners": [OTHER, DEBIAN, "111122223333"], "trusted_owners": [DEBIAN]})
    assert not res.failed
    assert len(warned) == 1
    assert warned[0].startswith(f"owners: {OTHER} is not a verified provider")
    assert "trusted_owners" in warned[0]

    warned.clear()
    ec2.add_response("describe_images", found)
    run_module(ami_find, {"owners": [OTHER, DEBIAN, "111122223333"], "trusted_owners": [OTHER, DEBIAN]})
    assert warned == []
