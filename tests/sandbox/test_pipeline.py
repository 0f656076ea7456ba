"""The image pipeline (playbooks/pipeline.yml) on the sandbox, as the least-privilege user (root, under the lock).

The shared flow (conftest.py's day_two: 2 clones behind the load balancer, base from an SSM parameter of the account,
which the HTTPS tests only read before) is used by the tests of this module, which run in order:
  1. right after the flow the pipeline is up to date: it launches nothing and makes no changing API call (the
     sandbox's audit lines of the least-privilege user's key, counted before and after);
  2. a role variable changed: bake, canary, publish (the SSM parameter holds the new image) and rollout with zero
     failed requests through the load balancer (bounded probe); the same run again is up to date;
  3. a canary that fails (pipeline_canary_path answering 404): the image is rejected, the parameter and the fleet
     unchanged, the play failed with one line;
  4. the base parameter pointed at another image: a new bake; the controller killed during it and run again: exactly
     one new image, no builder, no canary.
The shared flow's teardown (the published parameter included) is checked at the end of the session. Bounded: every
playbook has a deadline, the probe stops by itself.
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
from sandbox_helpers import DAY_TWO, DAY_TWO_BASE_PARAMETER

from sandbox import config

NAME = DAY_TWO
BASE_PARAMETER = DAY_TWO_BASE_PARAMETER
IMAGE_PARAMETER = f"/bakery/{NAME}/image-id"


def audit_lines(key: str) -> list[str]:
    """The sandbox's audit lines of changing calls made with ``key`` so far."""
    text = config.LOG_FILE.read_text(errors="replace") if config.LOG_FILE.exists() else ""
    return [line for line in text.splitlines() if " call " in line and line.endswith(f"(by {key})")]


@pytest.fixture(scope="module")
def flow(sandbox, day_two):
    """The shared flow (conftest.py's day_two: its base from BASE_PARAMETER), which the HTTPS tests only read; at the
    end no builder or canary is left and the image parameter the pipeline published is gone (checked at teardown,
    with the rest)."""
    yield day_two
    assert instances(sandbox, f"{NAME}-builder") == {} and instances(sandbox, f"{NAME}-canary") == {}


def put_base(ssm, image_id: str) -> None:
    """Point the flow's base parameter at ``image_id`` (as a team's own parameter is), and wait until it holds it."""
    ssm.put_parameter(Name=BASE_PARAMETER, Value=image_id, Type="String", DataType="aws:ec2:image", Overwrite=True)
    assert ssm.get_parameter(Name=BASE_PARAMETER)["Parameter"]["Value"] == image_id


def ok(proc) -> str:
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    return proc.stdout


def instances(sandbox, name: str) -> dict[str, str]:
    """Instance ID -> image ID of the live instances named ``name``."""
    filters = [
        {"Name": "tag:Name", "Values": [name]},
        {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
    ]
    found = sandbox.client().describe_instances(Filters=filters)["Reservations"]
    return {i["InstanceId"]: i["ImageId"] for r in found for i in r["Instances"]}


def images(sandbox) -> dict[str, dict[str, str]]:
    """Image ID -> tags of every image of the flow."""
    found = sandbox.client().describe_images(Owners=["self"], Filters=[{"Name": "tag:BakeryFlow", "Values": [NAME]}])
    return {i["ImageId"]: {t["Key"]: t["Value"] for t in i.get("Tags", [])} for i in found["Images"]}


def published(sandbox) -> str:
    return sandbox.client("us-east-1", "ssm").get_parameter(Name=IMAGE_PARAMETER)["Parameter"]["Value"]


def summary(out: str) -> list[str]:
    return re.findall(r'"(pipeline: [^"]*)"', out)


def test_right_after_the_flow_the_pipeline_is_up_to_date_and_changes_nothing(sandbox, flow):
    (image,) = images(sandbox)
    assert images(sandbox)[image]["bakery:status"] == "approved"
    assert len(images(sandbox)[image]["bakery:recipe"]) == 64
    clones = instances(sandbox, f"{NAME}-clone")
    first = ok(flow("pipeline.yml"))  # publishes the approved image (the flow has no parameter)
    assert published(sandbox) == image
    before = audit_lines(flow.key)
    again = flow("pipeline.yml")
    out = ok(again)
    assert audit_lines(flow.key) == before, summary(out)  # no changing call at the endpoint
    base = flow.bases["12"]
    name = f"{NAME}-web-v1"
    assert f"pipeline: up to date: {image} ({name}) built from base {base}, recipe " in out
    assert summary(out)[-1] == "pipeline: up to date", summary(out)
    assert instances(sandbox, f"{NAME}-clone") == clones and instances(sandbox, f"{NAME}-builder") == {}
    print(
        f"up-to-date pipeline: {again.seconds:.1f} s wall; first run {first.count('changed:')} changed", file=sys.stderr
    )


def test_a_role_variable_change_bakes_canaries_publishes_and_rolls_out(sandbox, flow):
    elb = sandbox.client(service="elbv2")
    address = elb.describe_load_balancers(Names=[f"{NAME}-lb"])["LoadBalancers"][0]["DNSName"]
    old = set(images(sandbox))
    probe = Probe(address, "/healthz", rate=20.0, limit=1200, ca=os.environ["BAKERY_SANDBOX_CA"])  # HTTPS
    probe.start()
    try:
        proc = flow("pipeline.yml", timeout=1500, webserver_app_title="Staff Directory")
    finally:
        figures = probe.stop()
    print(f"probe: {json.dumps(figures)}", file=sys.stderr)
    out = ok(proc)
    (new,) = set(images(sandbox)) - old
    assert images(sandbox)[new]["bakery:status"] == "approved"
    assert images(sandbox)[new]["bakery:base-parameter"] == BASE_PARAMETER
    assert published(sandbox) == new
    assert set(instances(sandbox, f"{NAME}-clone").values()) == {new}
    assert figures["failures"] == 0, figures["first_failures"]
    assert summary(out)[-1] == f"pipeline: baked and rolled out {new}", summary(out)
    assert [line.split()[1] for line in summary(out)[:-1]] == [
        "resolve",
        "bake",
        "canary",
        "copy",
        "publish",
        "rollout",
        "retire",
    ]
    assert instances(sandbox, f"{NAME}-builder") == {} and instances(sandbox, f"{NAME}-canary") == {}

    before = audit_lines(flow.key)
    again = ok(flow("pipeline.yml", webserver_app_title="Staff Directory"))
    assert summary(again)[-1] == "pipeline: up to date" and audit_lines(flow.key) == before


def test_a_failing_canary_rejects_the_image_and_changes_nothing_else(sandbox, flow):
    clones, value, old = instances(sandbox, f"{NAME}-clone"), published(sandbox), set(images(sandbox))
    proc = flow("pipeline.yml", pipeline_force=True, pipeline_canary_path="/nowhere", pipeline_canary_timeout=20)
    assert proc.returncode != 0
    fatal = [line for line in proc.stdout.splitlines() if line.startswith("fatal:")]
    assert len(fatal) == 1, proc.stdout[-3000:]
    msg = json.loads(fatal[0].split(" => ", 1)[1])["msg"]
    (new,) = set(images(sandbox)) - old
    assert "\n" not in msg and new in msg and "404" in msg, msg
    assert images(sandbox)[new]["bakery:status"] == "rejected"
    assert published(sandbox) == value and instances(sandbox, f"{NAME}-clone") == clones
    assert instances(sandbox, f"{NAME}-builder") == {} and instances(sandbox, f"{NAME}-canary") == {}


def test_a_new_base_rebakes_and_a_controller_killed_in_the_bake_leaves_one_image(sandbox, flow):
    other = flow.bases.get("13") or next(iter(images(sandbox)))
    put_base(sandbox.client("us-east-1", "ssm"), other)
    old = set(images(sandbox))
    controller = flow.start("pipeline.yml", webserver_app_title="Staff Directory")
    try:
        deadline = time.monotonic() + 600
        while not set(images(sandbox)) - old:  # killed once CreateImage was called
            assert controller.poll() is None, "the pipeline ended before its image was seen"
            assert time.monotonic() < deadline, "no new image within 600 s"
            time.sleep(0.2)
    finally:
        kill_tree(controller.pid)
        controller.wait(timeout=30)
    out = ok(flow("pipeline.yml", timeout=1500, webserver_app_title="Staff Directory"))
    (new,) = set(images(sandbox)) - old
    assert summary(out)[-1] == f"pipeline: baked and rolled out {new}", summary(out)
    assert f"base {other}" in summary(out)[0]
    assert instances(sandbox, f"{NAME}-builder") == {} and instances(sandbox, f"{NAME}-canary") == {}
