from __future__ import annotations

import pytest
from ansible_collections.bakery.ec2.plugins.module_utils._changes import Changes
from ansible_collections.bakery.ec2.plugins.module_utils._refresh import Rollout, batch_size, in_flight

OPTIONS = {"batch_size": None, "min_healthy_percentage": None, "instance_warmup": 0, "health_timeout": 300}


@pytest.mark.parametrize(
    ("count", "percentage", "expected"),
    [
        (4, None, 1),  # neither given: one at a time
        (4, 100, 1),
        (4, 75, 1),
        (8, 75, 2),
        (4, 50, 2),
        (3, 50, 1),  # 3 - ceil(1.5)
        (10, 90, 1),
        (10, 0, 10),
        (1, 0, 1),
        (0, 100, 1),  # never 0
    ],
)
def test_batch_size_from_min_healthy_percentage(count, percentage, expected):
    assert batch_size(dict(OPTIONS, min_healthy_percentage=percentage), count) == expected


def test_batch_size_given_wins():
    assert batch_size(dict(OPTIONS, batch_size=3), 10) == 3


def inst(iid):
    return {"InstanceId": iid}


def test_in_flight_is_the_newest_matching_beyond_the_count():
    matching, drifted = [inst("n1"), inst("n2")], [inst("o1"), inst("o2")]
    assert in_flight(matching, drifted, 3) == [inst("n2")]
    assert in_flight(matching, drifted, 4) == []
    assert in_flight(matching, drifted, 1) == matching  # never more than there are


class Recorder:
    """Fake launch/remove/targets recording the order of events."""

    def __init__(self):
        self.events = []
        self.next_id = 0

    def launch(self, count, current_ids):
        batch = []
        for _number in range(count):
            self.next_id += 1
            batch.append(inst(f"n{self.next_id}"))
        self.events.append(("launch", [i["InstanceId"] for i in batch], sorted(current_ids)))
        return batch

    def remove(self, instances, drain=True):
        self.events.append(("remove", [i["InstanceId"] for i in instances]))

    def register(self, ids, new=False):
        self.events.append(("register", ids) if not new else ("register new", ids))
        return ids

    def wait_healthy(self, ids, timeout, zones=None):
        self.events.append(("healthy", ids))


def test_batches_launch_before_removing_and_capacity_never_drops_below_count():
    rec = Recorder()
    drifted = [inst("o1"), inst("o2"), inst("o3")]
    rollout = Rollout(dict(OPTIONS, batch_size=2), 3, Changes(False), rec, rec.launch, rec.remove)
    final = rollout.run([], drifted)
    assert rec.events == [
        ("launch", ["n1", "n2"], ["o1", "o2", "o3"]),
        ("register new", ["n1", "n2"]),
        ("healthy", ["n1", "n2"]),
        ("remove", ["o1", "o2"]),
        ("launch", ["n3"], ["n1", "n2", "o3"]),
        ("register new", ["n3"]),
        ("healthy", ["n3"]),
        ("remove", ["o3"]),
    ]
    assert [i["InstanceId"] for i in final] == ["n1", "n2", "n3"]
    assert rollout.result == {
        "replaced": ["o1", "o2", "o3"],
        "launched": ["n1", "n2", "n3"],
        "batches": 2,
        "rolled_back": False,
    }


def test_warmup_waits_after_a_healthy_batch(slept):
    rec = Recorder()
    rollout = Rollout(dict(OPTIONS, instance_warmup=30), 1, Changes(False), rec, rec.launch, rec.remove)
    rollout.run([], [inst("o1")])
    assert slept == [30]
    assert rec.events[-1] == ("remove", ["o1"])


def test_lower_count_removes_old_instances_first_without_launching_for_them():
    rec = Recorder()
    rollout = Rollout(dict(OPTIONS), 1, Changes(False), rec, rec.launch, rec.remove)
    rollout.run([], [inst("o1"), inst("o2"), inst("o3")])
    assert rec.events[0] == ("remove", ["o1", "o2"])
    assert [e[0] for e in rec.events[1:]] == ["launch", "register new", "healthy", "remove"]


def test_check_mode_only_plans():
    rec = Recorder()
    changes = Changes(True)
    rollout = Rollout(dict(OPTIONS, batch_size=2), 3, changes, rec, rec.launch, rec.remove)
    rollout.run([], [inst("o1"), inst("o2"), inst("o3")])
    assert rec.events == []
    assert changes.actions == [
        "replace o1, o2 with 2 new instance(s) (batch 1 of 2)",
        "replace o3 with 1 new instance(s) (batch 2 of 2)",
    ]
