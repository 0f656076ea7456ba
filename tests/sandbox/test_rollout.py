"""Rolling the flow's clones onto a new image behind the sandbox's load balancer (root, under the lock).

On the shared flow (conftest.py's day_two: 2 clones behind the load balancer, as the least-privilege user of
docs/iam-policy.json; the pipeline's tests rolled it onto their images before), image.yml bakes another image of the
source; then, while a probe (bench/probe.py) sends 20 requests a second to the load balancer's /healthz:
  1. rollout.yml onto the newest baked image: exits 0, zero failed requests, the clones are of the new image and are
     the target group's healthy targets; a rerun replaces nothing;
  2. rollout.yml onto the base image (no web server on it) with rollout_health_timeout 30: rolled back, exits non-zero
     with one line, zero failed requests, the clones of before are still registered and healthy.
  3. rollout.yml onto a third image, the controller killed (SIGKILL to ansible-playbook and every process it started,
     its detached workers and their modules included: tests/proctree.py) once the first new clone exists, then run
     again: exits 0, zero failed requests over both runs, the clones are of the third image,
     and no more new clones were ever launched than the rollout needs (no duplicate of the batch in flight).
The shared flow's teardown (load balancer, target group and their security groups included) is checked at the end of
the session. Bounded: every playbook has a deadline, the probe stops by itself after 20 minutes.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))
from probe import Probe
from proctree import kill_tree
from sandbox_helpers import DAY_TWO

NAME = DAY_TWO
RATE = 20.0


@pytest.fixture(scope="module")
def flow(day_two):
    """The shared flow (conftest.py's day_two), after the pipeline's tests rolled it onto their images."""
    return day_two


def ok(proc) -> str:
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    return proc.stdout


def clones(sandbox) -> dict[str, str]:
    """Instance ID -> image ID of the flow's live clones."""
    filters = [
        {"Name": "tag:Name", "Values": [f"{NAME}-clone"]},
        {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
    ]
    found = sandbox.client().describe_instances(Filters=filters)["Reservations"]
    return {i["InstanceId"]: i["ImageId"] for r in found for i in r["Instances"]}


def targets(sandbox) -> dict[str, str]:
    """Instance ID -> state of every target of the flow's target group."""
    elb = sandbox.client(service="elbv2")
    (group,) = elb.describe_target_groups(Names=[f"{NAME}-web"])["TargetGroups"]
    health = elb.describe_target_health(TargetGroupArn=group["TargetGroupArn"])["TargetHealthDescriptions"]
    return {t["Target"]["Id"]: t["TargetHealth"]["State"] for t in health}


def probed(address: str, call):
    """Runs ``call()`` while the probe sends RATE requests a second to the load balancer (HTTPS, its certificate
    signed by the sandbox's CA); returns both results."""
    probe = Probe(address, "/healthz", rate=RATE, limit=1200, ca=os.environ["BAKERY_SANDBOX_CA"])
    probe.start()
    try:
        result = call()
    finally:
        figures = probe.stop()
    print(f"probe: {json.dumps(figures)}", file=sys.stderr)
    return result, figures


def assert_steady(figures: dict, proc) -> None:
    assert figures["failures"] == 0, figures["first_failures"]
    assert figures["seconds"] >= proc.seconds  # the probe ran for the whole rollout
    assert figures["rate"] >= 10, figures


def test_rollout_with_no_failed_request_and_rollback(sandbox, flow):
    (address,) = re.findall(r"load balancer https://([0-9.]+)/", flow.flow)
    before = clones(sandbox)
    assert len(before) == 2 and set(targets(sandbox)) == set(before), (before, targets(sandbox))
    v1 = set(before.values())
    ok(flow("image.yml", flow_image_version=2))
    v2 = {
        i["ImageId"]
        for i in sandbox.client().describe_images(
            Owners=["self"], Filters=[{"Name": "name", "Values": [f"{NAME}-web-v2"]}]
        )["Images"]
    }
    assert len(v2) == 1 and v2 != v1

    # 1. A good rollout onto the newest image the flow baked (rollout_image_id left empty).
    proc, figures = probed(address, lambda: flow("rollout.yml", timeout=1200))
    ok(proc)
    assert_steady(figures, proc)
    after = clones(sandbox)
    assert len(after) == 2 and set(after.values()) == v2 and not set(after) & set(before), (before, after)
    assert targets(sandbox) == dict.fromkeys(after, "healthy")
    assert set(figures["instances"]) >= set(after)  # the new clones answered through the load balancer
    assert re.search(r"replaced +2 clone\(s\) in 2 batch", proc.stdout), proc.stdout[-3000:]

    rerun = ok(flow("rollout.yml"))
    assert re.search(r"localhost +: ok=\d+ +changed=0 .*failed=0", rerun), rerun[-3000:]
    assert clones(sandbox) == after

    # 2. Onto the base image, which serves nothing on port 80: the first batch never becomes healthy.
    source = sandbox.client().describe_instances(Filters=[{"Name": "tag:Name", "Values": [f"{NAME}-source"]}])
    base_image = source["Reservations"][0]["Instances"][0]["ImageId"]
    proc, figures = probed(address, lambda: flow("rollout.yml", rollout_image_id=base_image, rollout_health_timeout=30))
    assert proc.returncode != 0, proc.stdout[-3000:]
    fatal = [line for line in proc.stdout.splitlines() if line.startswith("fatal:")]
    assert len(fatal) == 1, proc.stdout[-3000:]
    msg = json.loads(fatal[0].split(" => ", 1)[1])["msg"]
    assert "\n" not in msg and msg, msg
    print(f"rollback: {msg}", file=sys.stderr)
    assert_steady(figures, proc)
    assert clones(sandbox) == after  # the batch of the base image is gone, the clones of before stay
    # The batch was deregistered without waiting for its draining (it never served): like ELB, the target group may
    # still list it as draining for a moment; it is never in service again.
    now = targets(sandbox)
    assert {iid: now.get(iid) for iid in after} == dict.fromkeys(after, "healthy"), now
    assert {state for iid, state in now.items() if iid not in after} <= {"draining"}, now

    # 3. The controller killed in the middle of a rollout, then the same rollout again.
    ok(flow("image.yml", flow_image_version=3))
    (v3,) = {
        i["ImageId"]
        for i in sandbox.client().describe_images(
            Owners=["self"], Filters=[{"Name": "name", "Values": [f"{NAME}-web-v3"]}]
        )["Images"]
    }

    def killed_then_rerun():
        controller = flow.start("rollout.yml")
        try:
            deadline = time.monotonic() + 300
            while v3 not in clones(sandbox).values():
                assert controller.poll() is None, "the rollout ended before its first new clone was seen"
                assert time.monotonic() < deadline, "no clone of the third image within 300 s"
                time.sleep(0.2)
        finally:
            kill_tree(controller.pid)  # ansible-playbook, its workers (setsid) and their modules: nothing runs on
            controller.wait(timeout=30)
        return flow("rollout.yml", timeout=1200)

    proc, figures = probed(address, killed_then_rerun)
    ok(proc)
    assert_steady(figures, proc)
    final = clones(sandbox)
    assert len(final) == 2 and set(final.values()) == {v3}, final
    assert targets(sandbox) == dict.fromkeys(final, "healthy")
    ever = sandbox.client().describe_instances(
        Filters=[{"Name": "tag:Name", "Values": [f"{NAME}-clone"]}, {"Name": "image-id", "Values": [v3]}]
    )["Reservations"]
    launched = [i["InstanceId"] for r in ever for i in r["Instances"]]
    assert len(launched) == 2, launched  # the batch in flight was brought in, not launched again
