"""Changes (check mode in one place) and wait_until."""

from __future__ import annotations

import pytest
from ansible_collections.bakery.ec2.plugins.module_utils import _changes, _errors


def test_wait_until_returns_when_state_is_reached(slept):
    states = iter(["pending", "pending", "running"])
    assert _changes.wait_until(lambda: next(states), lambda s: s == "running", 60, "running") == "running"
    assert slept == [0.25, 0.4]


def test_wait_until_times_out_with_last_state():
    now = [0.0]

    def clock():
        now[0] += 1.0
        return now[0]

    with pytest.raises(_errors.WaitTimeout) as caught:
        _changes.wait_until(lambda: "pending", lambda s: False, 5, "instances running", clock=clock)
    assert "pending" in str(caught.value) and "5s" in str(caught.value)


def test_wait_backoff_never_exceeds_max_delay(slept):
    states = iter(["p"] * 20 + ["ok"])
    _changes.wait_until(lambda: next(states), lambda s: s == "ok", 600, "ok", max_delay=2.0)
    assert max(slept) == 2.0


def test_changes_record_each_change_and_make_it_only_outside_check_mode(ec2_client):
    client, stub = ec2_client
    ids = [f"i-{n:08x}" for n in range(1, 206)]
    stub.add_response("terminate_instances", {}, {"InstanceIds": ids[:200]})
    stub.add_response("terminate_instances", {}, {"InstanceIds": ids[200:]})
    stub.add_client_error("create_tags", "InvalidInstanceID.NotFound", "not yet")  # a new instance, not visible yet
    stub.add_response("create_tags", {}, {"Resources": ["i-00000001"], "Tags": [{"Key": "a", "Value": "b"}]})
    changes = _changes.Changes(False, client)
    assert changes.act("terminate 205", "terminate_instances", InstanceIds=ids) is None  # in chunks of 200
    changes.act(
        "tag",
        "create_tags",
        ("InvalidInstanceID.NotFound",),
        Resources=["i-00000001"],
        Tags=[{"Key": "a", "Value": "b"}],
    )
    assert changes.will("something done by hand") is True
    assert changes.actions == ["terminate 205", "tag", "something done by hand"]
    planned = _changes.Changes(True, client)  # the Stubber fails the test on any call
    assert planned.act("terminate 205", "terminate_instances", InstanceIds=ids) is None
    assert planned.will("something") is False
    assert planned.actions == ["terminate 205", "something"]
