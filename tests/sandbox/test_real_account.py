"""What a real account does to the flow's load balancer, volumes and target groups, on the sandbox (root, under the
lock), as the least-privilege user of docs/iam-policy.json (a user without its KMS statements where that is the point):

- the flow's load balancer stays out of the constrained zone (us-east-1e, which the sandbox refuses with ELB's
  ValidationError), and its teardown outlasts the deleted load balancer's lingering interface (DependencyViolation,
  ResourceInUse meanwhile);
- with EBS encryption by default and a customer-managed default key (the sandbox's default), a caller without the
  key's grants gets an instance that terminates (Client.InternalError): ec2_launch says so in one line naming KMS and
  the key; the shipped policy launches; ``encrypted: false`` is encrypted anyway and no drift on the next run;
- ec2_launch with a target group of another VPC fails before launching; an instance in a zone the load balancer does
  not enable is Target.NotInUse and fails the wait at once; new instances go to the load balancer's zones.

Every playbook has a deadline; what a test makes, it removes.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml
from botocore.exceptions import ClientError
from sandbox_helpers import base_ami

from sandbox import elb, kms

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"
COLLECTIONS = ROOT / ".build" / "collections"
POLICY = json.loads((ROOT / "docs" / "iam-policy.json").read_text())


@pytest.fixture(scope="module")
def play(sandbox, tmp_path_factory):
    """``play(tasks, keys=None, flow=None)``: the tasks in a playbook on localhost as the least-privilege user (or as
    ``keys``; ``flow``: with playbooks/vars/flow.yml and these variables); returns (rc, {task name: result},
    seconds). A module task's failure does not stop the play: its result says it failed."""
    workdir = tmp_path_factory.mktemp("account")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ANSIBLE_"))}
    base_env.update(sandbox.env(), AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1", HOME=str(workdir),
                    ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_LOCALHOST_WARNING="0",
                    ANSIBLE_NOCOLOR="1")  # fmt: skip

    def run(tasks: list, keys: tuple[str, str] | None = None, flow: dict | None = None, timeout: float = 600):
        out = workdir / f"results-{uuid.uuid4().hex[:6]}.json"
        registered = {}
        for n, task in enumerate(tasks):
            if "ansible.builtin.include_tasks" not in task and "ansible.builtin.set_fact" not in task:
                task.setdefault("register", f"r{n}")
                task["ignore_errors"] = True
                registered[task["name"]] = task["register"]
        shown = ", ".join(f"{json.dumps(name)}: {var} | default(None)" for name, var in registered.items())
        dump = {"name": "results", "ansible.builtin.copy": {"content": "{{ {" + shown + "} | to_json }}",
                                                            "dest": str(out)}}  # fmt: skip
        playbook = {"hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": [*tasks, dump]}
        if flow is not None:
            playbook["vars_files"] = [str(ROOT / "playbooks" / "vars" / "flow.yml")]
        path = workdir / f"play-{uuid.uuid4().hex[:6]}.yml"
        path.write_text(yaml.safe_dump([playbook]))
        env = dict(base_env)
        if keys:
            env.update(AWS_ACCESS_KEY_ID=keys[0], AWS_SECRET_ACCESS_KEY=keys[1])
        started = time.monotonic()
        extra = ["-e", json.dumps(flow)] if flow else []
        cmd = [str(BIN / "ansible-playbook"), str(path), *extra]
        proc = subprocess.run(cmd, env=env, cwd=workdir, capture_output=True, text=True, timeout=timeout, check=False)
        seconds = time.monotonic() - started
        results = json.loads(out.read_text()) if out.exists() else {}
        failed = proc.returncode != 0 or any((r or {}).get("failed") for r in results.values())
        if proc.returncode != 0:
            results["_output"] = proc.stdout[-3000:]
        return int(failed), results, seconds

    return run


def launch(name: str, group: str | None = None, **options) -> dict:
    """The task ``name`` launching group ``group`` (default: the same name) of t3.micro instances of Debian 12."""
    args = {
        "name": group or name,
        "image_id": "{{ image_id }}",
        "instance_type": "t3.micro",
        "wait_timeout": 300,
        **options,
    }
    return {"name": name, "bakery.ec2.ec2_launch": args}


def gone(name: str) -> dict:
    return {"name": f"remove {name}", "bakery.ec2.ec2_launch": {"name": name, "state": "absent"}}


def with_image(ec2, *tasks) -> list:
    return [{"name": "image", "ansible.builtin.set_fact": {"image_id": base_ami(ec2, "12")["ImageId"]}}, *tasks]


# ---------------------------------------------------------------- the flow's load balancer: zones and teardown
def test_flow_load_balancer_avoids_the_constrained_zone_and_teardown_outlasts_its_interface(sandbox, ec2, play):
    elbv2 = sandbox.client(service="elbv2")
    subnets = {s["AvailabilityZone"]: s["SubnetId"] for s in ec2.describe_subnets(
        Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]}  # fmt: skip
    with pytest.raises(ClientError) as refused:  # AWS's own words for a constrained zone
        elbv2.create_load_balancer(Name="constrained", Subnets=[subnets["us-east-1a"], subnets["us-east-1e"]])
    assert refused.value.response["Error"]["Code"] == "ValidationError"
    assert refused.value.response["Error"]["Message"] == (
        "The following Availability Zones us-east-1e cannot be associated with a load balancer. "
        "Please try a different Availability Zone."
    )
    flow = {"flow_name": "zones"}
    up = {"name": "up", "ansible.builtin.include_tasks": str(ROOT / "playbooks/tasks/load_balancer.yml")}
    rc, results, _ = play([up], flow=flow)
    assert rc == 0, json.dumps(results)[-3000:]
    (lb,) = [lb for lb in elbv2.describe_load_balancers()["LoadBalancers"] if lb["LoadBalancerName"] == "zones-lb"]
    zones = sorted(z["ZoneName"] for z in lb["AvailabilityZones"])
    assert "us-east-1e" not in zones and len(zones) >= 2, zones
    group = lb["SecurityGroups"][0]
    rc, results, seconds = play(
        [{"name": "down", "ansible.builtin.include_tasks": str(ROOT / "playbooks/tasks/load_balancer_absent.yml")}],
        flow=flow,
    )
    assert rc == 0, json.dumps(results)[-3000:]
    # It waited for the interface that held the group (the sandbox keeps it SANDBOX_ELB_ENI_LINGER seconds), then
    # deleted the group: nothing is left.
    assert seconds >= elb.DEFAULT_ENI_LINGER - 5, seconds
    assert ec2.describe_network_interfaces(Filters=[{"Name": "group-id", "Values": [group]}])["NetworkInterfaces"] == []
    assert ec2.describe_security_groups(Filters=[{"Name": "group-id", "Values": [group]}])["SecurityGroups"] == []
    assert [t for t in elbv2.describe_target_groups()["TargetGroups"] if t["TargetGroupName"] == "zones-web"] == []
    print(f"\nload balancer teardown with a lingering interface: {seconds:.1f} s")


# ---------------------------------------------------------------- KMS and EBS encryption by default
@pytest.fixture(scope="module")
def without_kms(sandbox):
    """Keys of a user whose policy is docs/iam-policy.json without its KMS statements."""
    iam = sandbox.client(service="iam")
    policy = dict(POLICY, Statement=[s for s in POLICY["Statement"] if not s["Sid"].startswith("BakeryEbsKms")])
    name = f"no-kms-{uuid.uuid4().hex[:6]}"
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="bakery-ec2", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def test_a_caller_without_the_default_keys_grants_gets_one_line_naming_kms_and_the_key(sandbox, ec2, play,
                                                                                       without_kms):  # fmt: skip
    default_key = ec2.get_ebs_default_kms_key_id()["KmsKeyId"]
    assert ec2.get_ebs_encryption_by_default()["EbsEncryptionByDefault"] is True
    assert sandbox.client(service="kms").describe_key(KeyId=kms.ALIAS)["KeyMetadata"]["Arn"] == default_key
    rc, results, seconds = play(with_image(ec2, launch("nokms")), keys=without_kms, timeout=300)
    assert rc != 0
    msg = results["nokms"]["msg"]
    assert "went to terminated while waiting for running: Client.InternalError: Client error on launch (KMS:" in msg
    assert f"{default_key} (the account's default EBS key)" in msg and "\n" not in msg, msg
    assert seconds < 60, seconds  # at once, not after wait_timeout
    (inst,) = [i for r in ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": ["nokms"]}])["Reservations"]
               for i in r["Instances"]]  # fmt: skip
    assert inst["State"]["Name"] == "terminated" and inst["StateReason"]["Code"] == "Client.InternalError"
    print(f"\nlaunch without the KMS grants: failed in {seconds:.1f} s: {msg}")


def test_encrypted_false_is_encrypted_anyway_and_no_drift(sandbox, ec2, play):
    """The shipped policy launches with the customer-managed default key; encrypted: false is no drift."""
    volumes = [{"device_name": "/dev/xvda", "encrypted": False}]
    tasks = with_image(ec2, launch("plain", volumes=volumes), launch("plain again", "plain", volumes=volumes))
    try:
        rc, results, _ = play(tasks)
        assert rc == 0, json.dumps(results)[-3000:]
        first, again = results["plain"], results["plain again"]
        assert first["changed"] and not again["changed"] and again["drift"] == [], again
        assert any("encrypts every new EBS volume" in w for w in again.get("warnings", [])), again.get("warnings")
        (iid,) = again["instance_ids"]
        vols = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [iid]}])["Volumes"]
        default_key = ec2.get_ebs_default_kms_key_id()["KmsKeyId"]
        assert vols and all(v["Encrypted"] and v["KmsKeyId"] == default_key for v in vols), vols
    finally:
        play([gone("plain")])


# ---------------------------------------------------------------- target groups: VPC, zones
@pytest.fixture(scope="module")
def balanced(sandbox, ec2):
    """A load balancer in us-east-1b and us-east-1c with a target group; a target group of another VPC."""
    elbv2 = sandbox.client(service="elbv2")
    tag = uuid.uuid4().hex[:6]
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]
    subnets = {s["AvailabilityZone"]: s["SubnetId"] for s in ec2.describe_subnets(
        Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]}  # fmt: skip
    lb = elbv2.create_load_balancer(Name=f"zones-{tag}", Subnets=[subnets["us-east-1b"], subnets["us-east-1c"]],
                                    Scheme="internal")["LoadBalancers"][0]  # fmt: skip
    tg = elbv2.create_target_group(Name=f"web-{tag}", Protocol="HTTP", Port=80, VpcId=vpc["VpcId"],
                                   TargetType="instance")["TargetGroups"][0]  # fmt: skip
    elbv2.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=80,
                          DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}])  # fmt: skip
    other_vpc = ec2.create_vpc(CidrBlock="10.231.0.0/16")["Vpc"]["VpcId"]
    other = elbv2.create_target_group(Name=f"other-{tag}", Protocol="HTTP", Port=80, VpcId=other_vpc,
                                      TargetType="instance")["TargetGroups"][0]  # fmt: skip
    yield {"tg": tg["TargetGroupName"], "tg_arn": tg["TargetGroupArn"], "other": other["TargetGroupName"],
           "other_vpc": other_vpc, "vpc": vpc["VpcId"]}  # fmt: skip
    if sandbox.pid():
        elbv2.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
        elbv2.delete_target_group(TargetGroupArn=other["TargetGroupArn"])


def test_a_target_group_of_another_vpc_fails_before_anything_is_launched(ec2, play, balanced):
    rc, results, _ = play(with_image(ec2, launch("othervpc", target_groups=[balanced["other"]])))
    assert rc != 0
    msg = results["othervpc"]["msg"]
    assert msg == (
        f"target_groups: {balanced['other']!r} is in {balanced['other_vpc']} but the instances are in "
        f"{balanced['vpc']}; a target group takes instances of its own VPC only; nothing was changed"
    )
    assert results["othervpc"]["changes"] == [] and results["othervpc"]["launched_ids"] == []


def test_a_target_in_a_zone_the_load_balancer_does_not_enable_fails_at_once(sandbox, ec2, play, balanced):
    """us-east-1a is not enabled: the instance is unused (Target.NotInUse) and the wait ends at once, not after
    wait_timeout (300 s here, 600 by default)."""
    try:
        rc, results, seconds = play(with_image(ec2, launch("notinuse", availability_zone="us-east-1a",
                                                           target_groups=[balanced["tg"]])))  # fmt: skip
        assert rc != 0
        out = results["notinuse"]
        (iid,) = out["launched_ids"]
        assert out["msg"].startswith(f"target_groups: {iid} in us-east-1a is unused (Target.NotInUse"), out["msg"]
        assert out["msg"].endswith(f"in target group {balanced['tg']}, whose load balancers enable us-east-1b, "
                                   "us-east-1c; it will not turn healthy")  # fmt: skip
        assert seconds < 90, seconds
        health = sandbox.client(service="elbv2").describe_target_health(TargetGroupArn=balanced["tg_arn"])
        states = {d["Target"]["Id"]: d["TargetHealth"] for d in health["TargetHealthDescriptions"]}
        assert states[iid]["State"] == "unused" and states[iid]["Reason"] == "Target.NotInUse"
        print(f"\ntarget in a zone the load balancer does not enable: failed in {seconds:.1f} s")
    finally:
        play([gone("notinuse")])


def test_new_instances_go_to_a_zone_the_load_balancer_enables(ec2, play, balanced):
    """Without a zone pinned, the first zone offering the type (us-east-1a) is passed over for the load balancer's."""
    try:
        rc, results, _ = play(with_image(ec2, launch("placed", target_groups=[balanced["tg"]], wait=False)))
        assert rc == 0, json.dumps(results)[-3000:]
        zones = [i["placement"]["availability_zone"] for i in results["placed"]["instances"]]
        assert zones == ["us-east-1b"], zones
    finally:
        play([gone("placed")])
