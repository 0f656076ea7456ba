"""Tags: lists and dicts, tag specifications, validation, compare_tags."""

from __future__ import annotations

import pytest
from ansible_collections.bakery.ec2.plugins.module_utils import _tags


def test_tag_round_trip_and_specifications():
    tags = {"b": "2", "a": 1, "Name": "web"}
    assert _tags.dict_to_tags(tags) == [
        {"Key": "Name", "Value": "web"},
        {"Key": "a", "Value": "1"},
        {"Key": "b", "Value": "2"},
    ]
    assert _tags.tags_to_dict(_tags.dict_to_tags(tags)) == {"Name": "web", "a": "1", "b": "2"}
    specs = _tags.tag_specifications({"x": "y"}, "instance", "volume")
    assert [s["ResourceType"] for s in specs] == ["instance", "volume"]
    assert _tags.tag_specifications({}, "instance") == []


@pytest.mark.parametrize(
    ("current", "desired", "purge", "expected"),
    [
        ({"a": "1", "b": "2"}, {"a": "1"}, True, ({}, ["b"])),
        ({"a": "1", "b": "2"}, {"a": "1"}, False, ({}, [])),
        ({"a": "1"}, {"a": "2", "c": "3"}, True, ({"a": "2", "c": "3"}, [])),
        ({"Name": "x", "aws:cloudformation:stack": "s"}, {}, True, ({}, ["Name"])),
    ],
)
def test_compare_tags(current, desired, purge, expected):
    assert _tags.compare_tags(current, desired, purge) == expected


def test_compare_tags_keeps_listed_keys():
    assert _tags.compare_tags({"Name": "web", "x": "1"}, {}, True, keep=("Name",)) == ({}, ["x"])


@pytest.mark.parametrize(
    ("tags", "fragment"),
    [
        ({"aws:foo": "x"}, "reserved prefix 'aws:'"),
        ({"k" * 129: "x"}, "1 to 128 characters"),
        ({"k": "v" * 257}, "longer than 256"),
        ({str(i): "v" for i in range(51)}, "at most 50"),
    ],
)
def test_validate_tags(tags, fragment):
    assert fragment in _tags.validate_tags(tags)


def test_validate_tags_accepts_good_tags():
    assert _tags.validate_tags({"Name": "web", "Env": "prod"}) is None
