"""Crash and rerun: SIGKILL ansible-playbook (with every process it started: its workers, which are in sessions of
their own, and the module processes, as when the machine dies; tests/proctree.py) at seeded random moments during
launch and during imaging, rerun the playbook, and check that it converges with no duplicate instance, security
group or image.

RELIABILITY_CRASHES runs of each kind (default 2; `make reliability` runs 6 of each).
"""

from __future__ import annotations

import os
import random

import pytest
from flowrun import Run, flow_leftovers, images_named, named_instances, observer, record, sandbox_env

CRASHES = int(os.environ.get("RELIABILITY_CRASHES", "2"))
SEED = int(os.environ.get("RELIABILITY_CRASH_SEED", "20261127"))
LAUNCH_TASK = "Launch the source instance"
IMAGE_TASK = "Create the image"


@pytest.fixture(scope="module")
def box(sandbox):
    return sandbox  # no fault injection needed: any running sandbox will do


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("crash")


def teardown(box, env, workdir, flow):
    from flowrun import flow_vars

    run = Run("teardown.yml", env, flow_vars(flow, workdir), workdir)
    assert run.run(timeout=300) == 0, run.output[-3000:]
    assert flow_leftovers(observer(box), flow) == {
        "instances": [],
        "images": [],
        "snapshots": [],
        "key_pairs": [],
        "security_groups": [],
    }


@pytest.mark.parametrize("n", range(CRASHES))
def test_killed_during_launch_then_rerun_converges(box, workdir, n):
    from flowrun import flow_vars

    rng = random.Random(SEED + n)
    flow = f"rel-crash-l{n}"
    env = sandbox_env(box, workdir)
    args = flow_vars(flow, workdir)
    ec2 = observer(box)
    # The launch task takes 3-4.5 s on the sandbox: key pair and group, RunInstances 1.5-3 s in (retried while the new
    # key pair is not visible yet), then the wait for running. A kill right after RunInstances: the test below.
    delay = rng.uniform(0.0, 3.0)
    crashed = Run("launch.yml", env, args, workdir)
    crashed.run(timeout=300, kill_in_task=LAUNCH_TASK, kill_after=delay)
    at_kill = [i["InstanceId"] for i in named_instances(ec2, f"{flow}-source")]
    rerun = Run("launch.yml", env, args, workdir)
    assert rerun.run(timeout=300) == 0, rerun.output[-3000:]
    live = named_instances(ec2, f"{flow}-source")
    groups = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [f"{flow}-source"]}])
    record(
        "crash_launch",
        {
            "run": n,
            "kill_after_s": round(delay, 2),
            "killed": crashed.killed_at is not None,
            "killed_in": crashed.killed_in,
            "instances_at_kill": len(at_kill),
            "instances_after_rerun": len(live),
            "rerun_s": round(rerun.seconds, 1),
        },
    )
    assert len(live) == 1, f"{len(live)} source instances after the rerun: {[i['InstanceId'] for i in live]}"
    assert not at_kill or live[0]["InstanceId"] in at_kill, "the rerun launched a second instance"
    assert len(groups["SecurityGroups"]) == 1
    teardown(box, env, workdir, flow)


def test_killed_just_after_run_instances_then_rerun_keeps_that_instance(box, workdir):
    """The moment a random kill rarely hits: the instance exists (its host is booting), the task has not ended."""
    from flowrun import flow_vars

    flow = "rel-crash-lr"
    env = sandbox_env(box, workdir)
    args = flow_vars(flow, workdir)
    ec2 = observer(box)
    before = set(box.status()["hosts"])
    crashed = Run("launch.yml", env, args, workdir)
    crashed.run(timeout=300, kill_when=lambda: bool(set(box.status()["hosts"]) - before))
    made = set(box.status()["hosts"]) - before
    assert crashed.killed_at is not None, "the launch ended before the sandbox had a host for its instance"
    assert len(made) == 1, made
    rerun = Run("launch.yml", env, args, workdir)
    assert rerun.run(timeout=300) == 0, rerun.output[-3000:]
    live = [i["InstanceId"] for i in named_instances(ec2, f"{flow}-source")]
    record(
        "crash_launch_after_run",
        {
            "killed_at_s": round(crashed.killed_at, 2),
            "killed_in": crashed.killed_in,
            "instances_after_rerun": len(live),
            "rerun_s": round(rerun.seconds, 1),
        },
    )
    assert sorted(live) == sorted(made), f"the rerun did not keep the killed run's instance: {live} vs {sorted(made)}"
    teardown(box, env, workdir, flow)


@pytest.fixture(scope="module")
def image_source(box, workdir):
    """One launched source instance to bake images from (configuring it is not needed to image it)."""
    from flowrun import flow_vars

    flow = "rel-crash-img"
    env = sandbox_env(box, workdir)
    run = Run("launch.yml", env, flow_vars(flow, workdir), workdir)
    assert run.run(timeout=300) == 0, run.output[-3000:]
    yield flow
    teardown(box, env, workdir, flow)


@pytest.mark.parametrize("n", range(CRASHES))
def test_killed_during_imaging_then_rerun_converges(box, workdir, image_source, n):
    from flowrun import flow_vars

    rng = random.Random(SEED + 1000 + n)
    flow = image_source
    env = sandbox_env(box, workdir)
    args = flow_vars(flow, workdir, flow_image_version=100 + n)
    name = f"{flow}-web-v{100 + n}"
    ec2 = observer(box)
    # the image task (CreateImage: the sandbox stops the host, copies its disk layer, starts it) took ~1.5-2.2 s
    delay = rng.uniform(0.0, 2.2)
    crashed = Run("image.yml", env, args, workdir)
    crashed.run(timeout=300, kill_in_task=IMAGE_TASK, kill_after=delay)
    at_kill = [i["ImageId"] for i in images_named(ec2, name)]
    rerun = Run("image.yml", env, args, workdir)
    assert rerun.run(timeout=300) == 0, rerun.output[-3000:]
    images = images_named(ec2, name)
    record(
        "crash_image",
        {
            "run": n,
            "kill_after_s": round(delay, 2),
            "killed": crashed.killed_at is not None,
            "killed_in": crashed.killed_in,
            "images_at_kill": len(at_kill),
            "images_after_rerun": len(images),
            "rerun_s": round(rerun.seconds, 1),
        },
    )
    assert len(images) == 1, f"{len(images)} images named {name}: {[i['ImageId'] for i in images]}"
    assert images[0]["State"] == "available"
    assert not at_kill or images[0]["ImageId"] in at_kill, "the rerun made a second image"
    source = named_instances(ec2, f"{flow}-source")
    assert len(source) == 1 and source[0]["State"]["Name"] in ("running", "pending")
