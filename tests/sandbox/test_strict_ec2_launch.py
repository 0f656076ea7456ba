"""ec2_launch on the sandbox's strict API front, as the least-privilege user (no root, no lock).

On a strict endpoint the module waits out the consistency windows of what it creates, keeps every request within
200 filter values, and places instances by zone offerings and capacity. The API front is the one of
test_strict.py (the sandbox's own middleware over moto, IAM enforced, a seeded window); moto's
catalogue images are API-only, so hundreds of instances are cheap.
"""

from __future__ import annotations

import json
import urllib.request

import pytest
from test_strict import api_front, client, iam, public_key, run_ec2_launch

WINDOW = 4.0  # seconds, as test_strict.py: longer than the sandbox's default, so retries must happen


@pytest.fixture(scope="module")
def strict_front(tmp_path_factory):
    with api_front(tmp_path_factory, WINDOW) as out:
        yield out


@pytest.fixture
def launch(strict_front, tmp_path):
    """Run ec2_launch with ``args`` as the least-privilege user; return its result."""
    _url, keys = strict_front
    return lambda **args: run_ec2_launch(strict_front, keys[iam.USER], tmp_path / "args.json", args, timeout=600)


def catalogue_image(front) -> str:
    """An API-only image (moto's catalogue in the integration tests' form: Debian's x86_64 look-alikes)."""
    images = client(front).describe_images(Owners=["136693071363"])["Images"]
    return next(i["ImageId"] for i in images if i["Architecture"] == "x86_64")


def test_new_key_group_and_instances_meet_the_windows(strict_front, launch, tmp_path):
    args = {
        "name": "windows",
        "count": 3,
        "image_id": catalogue_image(strict_front),
        "key_name": "windows",
        "public_key": public_key(tmp_path),
        "firewall": [{"ports": 22, "cidr": ["10.0.0.0/8"]}, {"proto": "all", "source_group": "windows"}],
    }
    # RunInstances meets the new key and group (NotFound for up to 4 s), the rules the new group; the
    # wait sees the new instances once filters show them.
    first = launch(**args)
    assert not first.get("failed"), first.get("msg")
    assert len(first["launched_ids"]) == 3
    assert {i["state"]["name"] for i in first["instances"]} == {"running"}
    again = launch(**args)
    assert not again.get("failed"), again.get("msg")
    assert again["changed"] is False
    assert again["instance_ids"] == first["instance_ids"]
    gone = launch(name="windows", state="absent", key_name="windows", public_key=args["public_key"])
    assert not gone.get("failed"), gone.get("msg")
    assert sorted(gone["terminated_ids"]) == sorted(first["instance_ids"])


def test_a_group_of_205_launches_waits_reruns_and_goes(strict_front, launch):
    args = {
        "name": "fleet",
        "count": 205,
        "image_id": catalogue_image(strict_front),
    }
    fleet = launch(**args)
    assert not fleet.get("failed"), fleet.get("msg")
    assert len(fleet["launched_ids"]) == 205
    assert {i["state"]["name"] for i in fleet["instances"]} == {"running"}
    again = launch(**args)
    assert not again.get("failed"), again.get("msg")
    assert again["changed"] is False
    assert again["instance_ids"] == fleet["instance_ids"]
    gone = launch(name="fleet", state="absent")
    assert not gone.get("failed"), gone.get("msg")
    assert len(gone["terminated_ids"]) == 205


def zone_out_of_capacity(front, zone):
    url, _keys = front
    req = urllib.request.Request(
        f"{url}/_sandbox/faults", data=json.dumps({"zone": zone, "count": 1}).encode(), method="POST"
    )
    urllib.request.urlopen(req, timeout=10).close()


def test_no_capacity_in_a_zone_moves_to_the_next(strict_front, launch):
    zone_out_of_capacity(strict_front, "us-east-1a")
    result = launch(name="capacity", image_id=catalogue_image(strict_front))
    assert not result.get("failed"), result.get("msg")
    assert result["instances"][0]["placement"]["availability_zone"] == "us-east-1b"
    assert "InsufficientInstanceCapacity for t3.micro in us-east-1a: trying us-east-1b" in str(result["warnings"])
    assert not launch(name="capacity", state="absent").get("failed")


def test_no_capacity_in_a_pinned_zone_fails(strict_front, launch):
    zone_out_of_capacity(strict_front, "us-east-1c")
    result = launch(name="pinned", image_id=catalogue_image(strict_front), availability_zone="us-east-1c")
    assert result.get("failed")
    assert result["error"]["code"] == "InsufficientInstanceCapacity"
    assert result["launched_ids"] == []


def test_zone_without_the_type_fails_before_anything_is_created(strict_front, launch):
    result = launch(
        name="offer",
        image_id=catalogue_image(strict_front),
        availability_zone="us-east-1e",
        firewall=[{"ports": 80, "cidr": ["10.0.0.0/8"]}],
    )
    assert result.get("failed")
    assert result["msg"].startswith("instance_type: 't3.micro' is not offered in us-east-1e")
    groups = client(strict_front).describe_security_groups(Filters=[{"Name": "group-name", "Values": ["offer"]}])
    assert groups["SecurityGroups"] == []
