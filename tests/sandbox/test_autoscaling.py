"""Auto Scaling groups on the sandbox launch real hosts and keep them alive (sandbox/autoscaling.py; run as root).

One group of a launch template (Debian 12, a tiny HTTP server started by its user data) in two subnets of two zones,
behind a load balancer's target group with ELB health checks. Every wait is bounded.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import sys
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from sandbox_helpers import ROOT, TEST_SERVER, ansible_playbook, base_ami, ssh, wait_state, web_site

from sandbox import autoscaling

sys.path.insert(0, str(ROOT / "bench"))
from probe import Probe

SERVER = f"""#!/bin/sh
cat > /usr/local/sbin/web.py <<'EOF'
{TEST_SERVER}
EOF
systemd-run --unit=web python3 /usr/local/sbin/web.py "$(cat /var/lib/bakery/instance-id)"
"""
GRACE = 20


@pytest.fixture(scope="module")
def asg(sandbox):
    return sandbox.client("us-east-1", service="autoscaling")


@pytest.fixture(scope="module")
def elbv2(sandbox):
    return sandbox.client("us-east-1", service="elbv2")


@pytest.fixture(scope="module")
def fleet(sandbox, ec2, elbv2, asg, tmp_path_factory):
    made = web_site(ec2, elbv2, "asg", tmp_path_factory.mktemp("asg") / "id", drain_seconds=5)
    tag, subnets, lb = made["tag"], made["subnets"], made["lb"]
    template = ec2.create_launch_template(
        LaunchTemplateName=tag,
        LaunchTemplateData={
            "ImageId": base_ami(ec2, "12")["ImageId"],
            "InstanceType": "t3.micro",
            "KeyName": made["key_name"],
            "SecurityGroupIds": [made["web_group"]],
            "UserData": base64.b64encode(SERVER.encode()).decode(),
            "MetadataOptions": {"HttpTokens": "required"},
            "TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "Team", "Value": "web"}]}],
        },
    )["LaunchTemplate"]
    name = tag
    asg.create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateId": template["LaunchTemplateId"], "Version": "1"},
        MinSize=2, MaxSize=4, DesiredCapacity=2,
        VPCZoneIdentifier=",".join(s["SubnetId"] for s in subnets),
        TargetGroupARNs=[made["tg"]],
        HealthCheckType="ELB", HealthCheckGracePeriod=GRACE,
        Tags=[{"Key": "Fleet", "Value": name, "PropagateAtLaunch": True}],
    )  # fmt: skip
    fleet = {"name": name, "tg": made["tg"], "lb": lb, "key": made["key"], "subnets": subnets,
             "template": template["LaunchTemplateId"]}  # fmt: skip
    yield fleet
    if sandbox.pid():
        with contextlib.suppress(ClientError):
            asg.delete_auto_scaling_group(AutoScalingGroupName=name, ForceDelete=True)
        with contextlib.suppress(ClientError):
            elbv2.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
        with contextlib.suppress(ClientError):
            ec2.delete_launch_template(LaunchTemplateId=template["LaunchTemplateId"])


def group(asg, name: str) -> dict:
    return asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]


def health(elbv2, tg: str) -> dict[str, str]:
    rows = elbv2.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]
    return {r["Target"]["Id"]: r["TargetHealth"]["State"] for r in rows}


def serving(asg, elbv2, fleet: dict, count: int, timeout: float = 150, without: str = "") -> dict[str, dict]:
    """Wait until the group has ``count`` InService instances (``without`` not among them), each healthy in the
    target group and no other target left; returns them by ID."""
    deadline = time.monotonic() + timeout
    while True:
        members = {i["InstanceId"]: i for i in group(asg, fleet["name"])["Instances"]}
        in_service = {k: v for k, v in members.items() if v["LifecycleState"] == "InService"}
        states = health(elbv2, fleet["tg"])
        settled = without not in members and states == dict.fromkeys(in_service, "healthy")
        if len(members) == count == len(in_service) and settled:
            return in_service
        assert time.monotonic() < deadline, f"not {count} serving within {timeout} s: {members} {states}"
        time.sleep(1)


def answers(fleet: dict, count: int) -> set[str]:
    """The instance IDs that answer ``count`` requests through the load balancer."""
    seen = set()
    for _ in range(count):
        conn = http.client.HTTPConnection(fleet["lb"]["DNSName"], 80, timeout=5)
        conn.request("GET", "/")
        reply = conn.getresponse()
        assert reply.status == 200
        seen.add(reply.read().decode())
        conn.close()
    return seen


def test_a_group_fills_its_zones_with_real_hosts_that_serve(ec2, asg, elbv2, fleet):
    members = serving(asg, elbv2, fleet, 2)
    assert sorted(m["AvailabilityZone"] for m in members.values()) == sorted(
        s["AvailabilityZone"] for s in fleet["subnets"]
    )
    assert {m["LaunchTemplate"]["Version"] for m in members.values()} == {"1"}
    assert answers(fleet, 20) == set(members)
    found = ec2.describe_instances(InstanceIds=list(members))["Reservations"]
    for inst in (i for r in found for i in r["Instances"]):
        tags = {t["Key"]: t["Value"] for t in inst["Tags"]}
        assert tags[autoscaling.GROUP_TAG] == fleet["name"] and tags["Fleet"] == fleet["name"]
        assert tags["Team"] == "web"  # the launch template's own tags
        assert inst["MetadataOptions"]["HttpTokens"] == "required"


def test_an_instance_terminated_behind_the_groups_back_is_replaced_and_serving_within_120_s(ec2, asg, elbv2, fleet):
    before = serving(asg, elbv2, fleet, 2)
    gone = sorted(before)[0]
    ec2.terminate_instances(InstanceIds=[gone])  # as an outage would: no playbook, no Auto Scaling call
    started = time.monotonic()
    after = serving(asg, elbv2, fleet, 2, timeout=120, without=gone)
    took = time.monotonic() - started
    assert gone not in after and len(set(after) - set(before)) == 1, (before, after)
    assert sorted(m["AvailabilityZone"] for m in after.values()) == sorted(
        m["AvailabilityZone"] for m in before.values()
    ), "the replacement went to another zone than the one left short"
    assert answers(fleet, 10) == set(after)
    activities = asg.describe_scaling_activities(AutoScalingGroupName=fleet["name"])["Activities"]
    assert any(a["Description"] == f"Terminating EC2 instance: {gone}" for a in activities), activities
    print(f"replaced {gone} in {took:.1f} s")


def test_an_instance_failing_its_load_balancer_health_check_is_replaced(asg, elbv2, fleet, ec2):
    before = serving(asg, elbv2, fleet, 2)
    sick = sorted(before)[-1]
    ip = ec2.describe_instances(InstanceIds=[sick])["Reservations"][0]["Instances"][0]["PrivateIpAddress"]
    ssh(fleet["key"], ip, "touch /tmp/sick")
    after = serving(asg, elbv2, fleet, 2, timeout=GRACE + 120, without=sick)
    assert len(set(after) - set(before)) == 1
    wait_state(ec2, sick, "terminated", timeout=60)


def test_desired_capacity_balances_zones_out_and_in(asg, elbv2, fleet):
    serving(asg, elbv2, fleet, 2)
    asg.set_desired_capacity(AutoScalingGroupName=fleet["name"], DesiredCapacity=3)
    three = serving(asg, elbv2, fleet, 3)
    zones = sorted(m["AvailabilityZone"] for m in three.values())
    assert len(set(zones)) == 2
    asg.set_desired_capacity(AutoScalingGroupName=fleet["name"], DesiredCapacity=2)
    two = serving(asg, elbv2, fleet, 2)
    assert len({m["AvailabilityZone"] for m in two.values()}) == 2, "scale-in left one zone empty"


def refresh_play(tmp_path: Path, fleet: dict, version: str) -> Path:
    play = [{"hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": [{
        "name": "Move the group onto the version",
        "bakery.ec2.asg_refresh": {"name": fleet["name"], "region": "us-east-1", "instance_warmup": 0,
                                   "launch_template": {"id": fleet["template"], "version": version},
                                   "wait_timeout": 600},
    }]}]  # fmt: skip
    path = tmp_path / f"refresh-{version}.yml"
    path.write_text(json.dumps(play))
    return path


def refresh_under_probe(sandbox, tmp_path: Path, fleet: dict, version: str):
    """asg_refresh onto ``version`` while a probe asks the load balancer 20 times a second (at most 600 s)."""
    probe = Probe(fleet["lb"]["DNSName"], "/", rate=20.0, limit=600)
    probe.start()
    try:
        return ansible_playbook(sandbox, refresh_play(tmp_path, fleet, version), admin=True), probe.stop()
    except BaseException:
        probe.stop()
        raise


def new_version(ec2, fleet: dict, user_data: str) -> str:
    made = ec2.create_launch_template_version(
        LaunchTemplateId=fleet["template"],
        SourceVersion="1",
        LaunchTemplateData={"UserData": base64.b64encode(user_data.encode()).decode()},
    )
    return str(made["LaunchTemplateVersion"]["VersionNumber"])


def test_asg_refresh_moves_the_group_onto_a_version_with_no_failed_request(sandbox, ec2, asg, elbv2, fleet, tmp_path):
    serving(asg, elbv2, fleet, 2)
    version = new_version(ec2, fleet, SERVER)
    proc, figures = refresh_under_probe(sandbox, tmp_path, fleet, version)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert figures["failures"] == 0, figures["first_failures"]
    after = serving(asg, elbv2, fleet, 2)
    assert {m["LaunchTemplate"]["Version"] for m in after.values()} == {version}
    again = ansible_playbook(sandbox, refresh_play(tmp_path, fleet, version), admin=True)
    assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout[-2000:]


def test_asg_refresh_to_a_version_that_does_not_serve_rolls_back_and_fails_in_one_line(
    sandbox, ec2, asg, elbv2, fleet, tmp_path
):
    before = serving(asg, elbv2, fleet, 2)
    was = {m["LaunchTemplate"]["Version"] for m in before.values()}
    version = new_version(ec2, fleet, "#!/bin/sh\ntrue\n")  # no server: its health checks fail
    proc, figures = refresh_under_probe(sandbox, tmp_path, fleet, version)
    assert proc.returncode != 0
    fatal = [line for line in proc.stdout.splitlines() if line.startswith("fatal:")]
    assert len(fatal) == 1, proc.stdout[-3000:]
    msg = json.loads(fatal[0].split(" => ", 1)[1])["msg"]
    assert "ended RollbackSuccessful" in msg and "failed its health checks" in msg and "\n" not in msg, msg
    assert figures["failures"] == 0, figures["first_failures"]
    after = serving(asg, elbv2, fleet, 2)
    assert {m["LaunchTemplate"]["Version"] for m in after.values()} == was


def test_delete_is_refused_with_instances_and_force_delete_leaves_nothing(ec2, asg, elbv2, fleet):
    members = serving(asg, elbv2, fleet, 2)
    with pytest.raises(ClientError) as refused:
        asg.delete_auto_scaling_group(AutoScalingGroupName=fleet["name"])
    assert refused.value.response["Error"]["Code"] == "ResourceInUse"
    asg.delete_auto_scaling_group(AutoScalingGroupName=fleet["name"], ForceDelete=True)
    assert asg.describe_auto_scaling_groups(AutoScalingGroupNames=[fleet["name"]])["AutoScalingGroups"] == []
    for iid in members:
        wait_state(ec2, iid, "terminated", timeout=60)
    deadline = time.monotonic() + 30
    while health(elbv2, fleet["tg"]):
        assert time.monotonic() < deadline, health(elbv2, fleet["tg"])
        time.sleep(1)
