"""Shapes: IDs, snake_case results, filters and ID lists within EC2's limits."""

from __future__ import annotations

from ansible_collections.bakery.ec2.plugins.module_utils import _shapes


def test_to_snake_converts_keys_and_tags():
    data = {
        "ImageId": "ami-1",
        "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}],
        "Tags": [{"Key": "Name", "Value": "x"}],
        "ResponseMetadata": {},
    }
    assert _shapes.to_snake(data) == {
        "image_id": "ami-1",
        "block_device_mappings": [{"device_name": "/dev/xvda", "ebs": {"volume_size": 8}}],
        "tags": {"Name": "x"},
    }
    assert _shapes.snake("DNSName") == "dns_name"
    assert _shapes.snake("PrivateIpAddress") == "private_ip_address"


def test_check_id():
    assert _shapes.check_id("image", "ami-0123456789abcdef0", "image_id") is None
    assert "not an AMI ID" in _shapes.check_id("image", "ami-XYZ", "image_id")
    assert "'i-1'" in _shapes.check_id("instance", "i-1", "instance_id")


def test_chunks_hold_at_most_200_values():
    assert [len(part) for part in _shapes.chunks(range(405))] == [200, 200, 5]
    assert list(_shapes.chunks([])) == []
    assert list(_shapes.chunks("abc", 2)) == [["a", "b"], ["c"]]


def test_long_filters_are_split_into_sets_of_at_most_200_values_that_match_the_same():
    running = {"Name": "instance-state-name", "Values": ["running"]}
    assert _shapes.split_filters([running]) == [[running]]
    assert _shapes.split_filters([]) == [[]]
    ids = [f"i-{n:017x}" for n in range(450)]
    sets = _shapes.split_filters([{"Name": "instance-id", "Values": ids}, running])
    assert [[len(f["Values"]) for f in s] for s in sets] == [[200, 1], [200, 1], [50, 1]]
    assert [v for s in sets for v in s[0]["Values"]] == ids  # each value once, in order
    assert all(s[1] == running for s in sets)  # the short filter is ANDed with every part
    both = _shapes.split_filters([{"Name": "a", "Values": list(range(201))}, {"Name": "b", "Values": list(range(300))}])
    assert [[len(f["Values"]) for f in s] for s in both] == [[200, 200], [200, 100], [1, 200], [1, 100]]
