"""The flow's clones as an Auto Scaling group (flow_fleet asg) on the sandbox, as the least-privilege user of
docs/iam-policy.json (root, under the lock).

On the shared flow (conftest.py's day_two), after test_rollout.py left its two ec2_launch clones on its third image,
while a probe (bench/probe.py) sends 20 requests a second to the load balancer's /healthz:
  1. clone.yml with flow_fleet asg, of a fourth image: the group serves through the load balancer with one instance in
     each of two zones, the target group's healthy targets are exactly the group's instances, the ec2_launch clones
     are gone, zero failed requests; a rerun changes nothing;
  2. an instance of the group terminated behind its back (EC2's TerminateInstances, as an outage would): with no
     playbook run, the group has two instances in service and healthy in the target group again within 120 s;
  3. rollout.yml with flow_fleet asg onto the newest image the flow baked (a fifth): an instance refresh, zero failed
     requests, the group's instances are of that image and on the launch template's newest version;
  4. rollout.yml onto the base image (no web server on it): AWS's refresh rolls back by itself, the play fails with one
     line naming the rollback and its reason, zero failed requests, the group is back on the version it ran.
The shared flow's teardown (conftest.py) then checks that no group, launch template, instance or target is left.
Bounded: every playbook has a deadline, the probe stops by itself after 20 minutes, the outage wait after 120 s.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from sandbox_helpers import DAY_TWO
from test_rollout import assert_steady, clones, ok, probed, targets

NAME = DAY_TWO
GROUP = f"{NAME}-web"
ASG = {"flow_fleet": "asg", "flow_asg_health_grace": 10}
OUTAGE_BOUND = 120.0


@pytest.fixture(scope="module")
def flow(day_two):
    """The shared flow, after test_rollout.py."""
    return day_two


def group(sandbox) -> dict:
    (found,) = sandbox.client(service="autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])[
        "AutoScalingGroups"
    ]
    return found


def members(sandbox) -> dict[str, str]:
    """Instance ID -> image ID of the group's instances in service."""
    ids = [i["InstanceId"] for i in group(sandbox)["Instances"] if i["LifecycleState"] == "InService"]
    if not ids:
        return {}
    found = sandbox.client().describe_instances(InstanceIds=ids)["Reservations"]
    return {i["InstanceId"]: i["ImageId"] for r in found for i in r["Instances"]}


def serving(sandbox) -> bool:
    """Two instances in service, and exactly they are the target group's healthy targets."""
    now = members(sandbox)
    healthy = {iid for iid, state in targets(sandbox).items() if state == "healthy"}
    return len(now) == 2 and healthy == set(now)


def one_line_failure(proc) -> str:
    assert proc.returncode != 0, proc.stdout[-3000:]
    fatal = [line for line in proc.stdout.splitlines() if line.startswith("fatal:")]
    assert len(fatal) == 1, proc.stdout[-3000:]
    msg = json.loads(fatal[0].split(" => ", 1)[1])["msg"]
    assert msg and "\n" not in msg, msg
    return msg


def test_the_flow_as_an_auto_scaling_group_heals_rolls_out_and_rolls_back(sandbox, flow):
    (address,) = re.findall(r"load balancer https://([0-9.]+)/", flow.flow)
    ec2 = sandbox.client()
    old_clones = clones(sandbox)
    assert len(old_clones) == 2, old_clones

    # 1. The clones become a group (launched before the ec2_launch clones go), of an image baked for it.
    ok(flow("image.yml", flow_image_version=4))
    proc, figures = probed(address, lambda: flow("clone.yml", timeout=1200, flow_image_version=4, **ASG))
    ok(proc)
    assert_steady(figures, proc)
    now = members(sandbox)
    assert serving(sandbox), (now, targets(sandbox))
    assert clones(sandbox) == {} and not set(now) & set(old_clones)
    zones = [i["AvailabilityZone"] for i in group(sandbox)["Instances"]]
    assert len(set(zones)) == 2, zones
    said = rf"Auto Scaling group {GROUP} on launch template {GROUP} version 1: 2 of 2 in service"
    assert re.search(said, proc.stdout), proc.stdout[-3000:]
    tags = {
        t["Key"]: t["Value"]
        for r in ec2.describe_instances(InstanceIds=list(now))["Reservations"]
        for i in r["Instances"]
        for t in i["Tags"]
    }
    assert tags["Name"] == GROUP and tags["BakeryRole"] == "clone" and tags["BakeryFlow"] == NAME, tags
    first_image = set(now.values())
    rerun = ok(flow("clone.yml", flow_image_version=4, **ASG))
    assert re.search(r"localhost +: ok=\d+ +changed=0 .*failed=0", rerun), rerun[-3000:]
    assert members(sandbox) == now

    # 2. An outage: AWS's engine replaces the instance with no playbook run.
    lost = sorted(now)[0]
    ec2.terminate_instances(InstanceIds=[lost])
    started = time.monotonic()
    while not (serving(sandbox) and lost not in members(sandbox)):
        assert time.monotonic() - started < OUTAGE_BOUND, (members(sandbox), targets(sandbox))
        time.sleep(1)
    print(f"replacement: serving again {time.monotonic() - started:.1f} s after the outage", file=sys.stderr)

    # 3. A rollout onto the newest image the flow baked: an instance refresh.
    ok(flow("image.yml", flow_image_version=5))
    proc, figures = probed(address, lambda: flow("rollout.yml", timeout=1200, **ASG))
    ok(proc)
    assert_steady(figures, proc)
    rolled = members(sandbox)
    assert serving(sandbox) and set(rolled.values()).isdisjoint(first_image), (first_image, rolled)
    version = group(sandbox)["LaunchTemplate"]["Version"]
    assert version == "2", group(sandbox)["LaunchTemplate"]
    assert re.search(r"instance refresh \S+ Successful", proc.stdout), proc.stdout[-3000:]

    # 4. Onto the base image, which serves nothing on port 80: AWS rolls the refresh back by itself.
    source = ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": [f"{NAME}-source"]}])
    base_image = source["Reservations"][0]["Instances"][0]["ImageId"]
    proc, figures = probed(address, lambda: flow("rollout.yml", timeout=1200, rollout_image_id=base_image, **ASG))
    msg = one_line_failure(proc)
    print(f"rollback: {msg}", file=sys.stderr)
    assert "RollbackSuccessful" in msg, msg
    assert_steady(figures, proc)
    assert group(sandbox)["LaunchTemplate"]["Version"] == version
    deadline = time.monotonic() + 60  # the refresh's last replacement is terminated once rolled back
    while not (serving(sandbox) and set(members(sandbox).values()) == set(rolled.values())):
        assert time.monotonic() < deadline, (members(sandbox), targets(sandbox))
        time.sleep(1)
