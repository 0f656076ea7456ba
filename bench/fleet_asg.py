"""Case 12, the clones as an Auto Scaling group (flow_fleet asg) against ec2_launch's (flow_fleet instances): time to
N serving instances, a rollout, and serving again after an outage.

    python bench/run.py --cases asg --asg-clones 2,8,32 --asg-rollout 8 --replace-in bench/RESULTS.md

What it measures: one source host launched, configured and baked twice by the flow's playbooks (v1 and v2, SQLite
store), then for each N and each fleet: clone.yml with flow_fleet and flow_clone_count N from no clone at all; time =
its ansible-playbook run, which ends once each clone answers with its own instance ID (and, with asg, once the group
has N instances in service and healthy in the target group: amazon.aws.autoscaling_group polls every 10 s). The fleet
is then removed through the API (not timed). Rollout: clone.yml brings the fleet to the rollout size on v1, then
rollout.yml moves it to v2 (instances: ec2_launch's instance_refresh, one clone per batch; asg: an instance refresh,
launch before terminate at 110 %) while the probe (bench/probe.py) sends 20 GET /healthz a second through the load
balancer. Outage: one instance of a serving group of 2 terminated through EC2's API; seconds until the group has 2
instances in service and healthy in the target group again, with no playbook run (instances: the clone stays dead
until a playbook runs; no figure). Health check every 5 s, grace 10 s, deregistration delay 10 s.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from cases import ec2_client, log, teardown_flow
from harness import REPO, Watcher, run_playbook, sandbox_keys
from probe import Probe
from rollout import sqlite_flow

PLAYBOOKS = REPO / "playbooks"
INVENTORY = PLAYBOOKS / "inventory" / "bakery.instances.yml"
RATE = 20.0
FLEETS = ("instances", "asg")
GRACE = 10


def _live(ec2, filters: list[dict]) -> list[str]:
    live = {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped", "shutting-down"]}
    pages = ec2.get_paginator("describe_instances").paginate(Filters=[*filters, live])
    return [i["InstanceId"] for page in pages for r in page["Reservations"] for i in r["Instances"]]


def remove_fleet(url: str, flow_name: str, timeout: float = 600) -> None:
    """No clone of either kind: the group force-deleted, ec2_launch's clones terminated; waits until their hosts are
    gone and the target group no longer lists them."""
    ec2, asg = ec2_client(url), ec2_client(url, "autoscaling")
    group = f"{flow_name}-web"
    if asg.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"]:
        asg.delete_auto_scaling_group(AutoScalingGroupName=group, ForceDelete=True)
    clones = _live(ec2, [{"Name": "tag:Name", "Values": [f"{flow_name}-clone"]}])
    if clones:
        ec2.terminate_instances(InstanceIds=clones)
    elb = ec2_client(url, "elbv2")
    (target_group,) = elb.describe_target_groups(Names=[group])["TargetGroups"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hosts = _live(
            ec2, [{"Name": "tag:BakeryRole", "Values": ["clone"]}, {"Name": "tag:BakeryFlow", "Values": [flow_name]}]
        )
        groups = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"]
        targets = elb.describe_target_health(TargetGroupArn=target_group["TargetGroupArn"])["TargetHealthDescriptions"]
        if not hosts and not groups and not targets:
            return
        time.sleep(1)
    raise RuntimeError(f"the fleet of {flow_name} was not gone within {timeout:.0f} s")


def serving_again(url: str, group: str, lost: str, timeout: float = 300) -> float:
    """Seconds from now until ``group`` has its desired capacity in service and healthy in its target group, ``lost``
    not among them."""
    asg, elb = ec2_client(url, "autoscaling"), ec2_client(url, "elbv2")
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        (found,) = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"]
        members = {i["InstanceId"] for i in found["Instances"] if i["LifecycleState"] == "InService"}
        health = elb.describe_target_health(TargetGroupArn=found["TargetGroupARNs"][0])["TargetHealthDescriptions"]
        healthy = {t["Target"]["Id"] for t in health if t["TargetHealth"]["State"] == "healthy"}
        if len(members) == found["DesiredCapacity"] and lost not in members and members <= healthy:
            return time.monotonic() - started
        time.sleep(0.5)
    raise RuntimeError(f"{group} did not serve again within {timeout:.0f} s of losing {lost}")


def case_asg(url: str, counts: list[int], rollout_size: int) -> dict:
    """Rows of time to N serving instances per fleet, the rollout of ``rollout_size`` per fleet, and the outage."""
    flow_name = f"bench-asg-{int(time.time()) % 100000}"
    ec2 = ec2_client(url)
    serve_rows, rollout_rows = [], []
    outage = None
    with tempfile.TemporaryDirectory(prefix="bench-asg-") as tmp:
        workdir = Path(tmp)
        env, extra = sqlite_flow(url, workdir, flow_name)
        extra["flow_asg_health_grace"] = GRACE

        def play(playbook: str, **more):
            return run_playbook("ours", PLAYBOOKS / playbook, env, workdir, dict(extra, **more), INVENTORY, 3600)

        try:
            for playbook in ("launch.yml", "configure.yml"):
                play(playbook)
            for version in (1, 2):
                play("image.yml", flow_image_version=version)
            for count in counts:
                for fleet in FLEETS:
                    run = play("clone.yml", flow_fleet=fleet, flow_clone_count=count, flow_image_version=1)
                    serve_rows.append({"fleet": fleet, "clones": count, "seconds": run.wall})
                    log(f"asg: {count} {fleet} serving in {run.wall:.0f} s")
                    if fleet == "asg" and count == 2:
                        (lost, *_) = _live(
                            ec2, [{"Name": "tag:aws:autoscaling:groupName", "Values": [f"{flow_name}-web"]}]
                        )
                        ec2.terminate_instances(InstanceIds=[lost])
                        outage = serving_again(url, f"{flow_name}-web", lost)
                        log(f"asg: serving again {outage:.1f} s after losing {lost}")
                    remove_fleet(url, flow_name)
            (balancer,) = [
                lb
                for lb in ec2_client(url, "elbv2").describe_load_balancers()["LoadBalancers"]
                if lb["LoadBalancerName"] == f"{flow_name}-lb"
            ]
            ca = sandbox_keys().get("BAKERY_SANDBOX_CA")
            for fleet in FLEETS:
                play("clone.yml", flow_fleet=fleet, flow_clone_count=rollout_size, flow_image_version=1)
                probe = Probe(balancer["DNSName"], "/healthz", rate=RATE, limit=3600, ca=ca)
                probe.start()
                try:
                    run = play("rollout.yml", flow_fleet=fleet, flow_clone_count=rollout_size, flow_image_version=2,
                               rollout_image_id="", rollout_batch_size=1)  # fmt: skip
                finally:
                    figures = probe.stop()
                rollout_rows.append({"fleet": fleet, "clones": rollout_size, "seconds": run.wall, **figures})
                log(f"asg: rollout of {rollout_size} {fleet}: {run.wall:.0f} s, {figures['failures']} failed")
                remove_fleet(url, flow_name)
        finally:
            teardown_flow(ec2, Watcher(url), flow_name)
    return report(serve_rows, rollout_rows, outage)


def report(serve_rows: list[dict], rollout_rows: list[dict], outage: float | None) -> dict:
    by = {(r["fleet"], r["clones"]): r["seconds"] for r in serve_rows}
    lines = ["| clones | instances: serving (s) | asg: serving (s) |", "| --- | --- | --- |"]
    for count in sorted({r["clones"] for r in serve_rows}):
        lines.append(f"| {count} | {by.get(('instances', count), 0):.0f} | {by.get(('asg', count), 0):.0f} |")
    lines += [
        "",
        "| rollout | clones | seconds | requests | req/s | failed | p50 ms | p95 ms | max ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rollout_rows:
        lines.append(
            f"| {r['fleet']} | {r['clones']} | {r['seconds']:.0f} | {r['requests']} | {r['rate']:.1f} "
            f"| {r['failures']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['max_ms']:.0f} |"
        )
    lines += ["", f"Outage: an instance of a group of 2 terminated; serving again after {outage or 0:.1f} s "
              "(ec2_launch's clone stays dead until a playbook runs)."]  # fmt: skip
    failed = sum(r["failures"] for r in rollout_rows)
    return {
        "rows": {"serve": serve_rows, "rollout": rollout_rows, "outage": outage},
        "text": "\n".join(lines),
        "targets": [
            (
                "asg: an outage replaced and serving again within 120 s, with no playbook run",
                outage is not None and outage <= 120,
                f"{outage or 0:.1f} s",
            ),
            (
                "asg: zero failed requests through the load balancer during both rollouts",
                failed == 0 and all(r["rate"] >= 10 for r in rollout_rows),
                f"{failed} failed of {sum(r['requests'] for r in rollout_rows)}",
            ),
        ],
    }
