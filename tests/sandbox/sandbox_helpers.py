"""Helpers for the sandbox tests (waiting for states, SSH with the system client, an API front in this process)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parents[2]

SSH_OPTS = [
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "ConnectTimeout=5",
    "-o",
    "BatchMode=yes",
]


@contextlib.contextmanager
def api_front(services: list | None = None):
    """The sandbox's API front (moto behind the middleware, IAM enforced) in this process, on a free 127.0.0.1 port,
    without hosts or root: ``(core, endpoint, keys)``. ``services``: the service classes, the sandbox's own unless
    given. moto's state belongs to the process: the front empties it when it starts and when it ends."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from sandbox import iam
    from sandbox.core import Core
    from sandbox.middleware import Middleware

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    core = Core(port, {}, window=0)
    srv = make_server("127.0.0.1", port, Middleware(DomainDispatcherApplication(create_backend_app), core, services),
                      threaded=True)  # fmt: skip
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{port}"

    def reset_moto() -> None:  # moto's state is the process's: each front starts and leaves it empty (IAM users too)
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=30).close()

    try:
        reset_moto()
        yield core, endpoint, core.enforce_iam(iam.POLICY_FILE.read_text())
    finally:
        reset_moto()
        srv.shutdown()


def base_ami(ec2, version: str) -> dict:
    images = ec2.describe_images(
        Owners=["136693071363"], Filters=[{"Name": "name", "Values": [f"debian-{version}-amd64-*"]}]
    )["Images"]
    assert images, f"no Debian {version} base AMI"
    return max(images, key=lambda i: i["CreationDate"])


def eventually(call, *args, timeout: float = 10, **kwargs):
    """``call`` once what this test just created is visible: EC2 answers ``*.NotFound`` for a short while."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call(*args, **kwargs)
        except ClientError as err:
            if not err.response["Error"]["Code"].endswith(".NotFound") or time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def wait_state(ec2, instance_id: str, state: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        inst = eventually(ec2.describe_instances, InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
        if inst["State"]["Name"] == state:
            return inst
        assert time.monotonic() < deadline, f"{instance_id} still {inst['State']['Name']}, wanted {state}"
        time.sleep(0.2)


def wait_image(ec2, image_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        img = eventually(ec2.describe_images, ImageIds=[image_id])["Images"][0]
        if img["State"] == "available":
            return img
        assert time.monotonic() < deadline, f"{image_id} still {img['State']}"
        time.sleep(0.2)


def ssh(key: Path, ip: str, command: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run(
        ["ssh", *SSH_OPTS, "-i", str(key), f"admin@{ip}", command],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert res.returncode == 0, f"ssh {ip} {command!r}: rc={res.returncode} {res.stderr}"
    return res


def wait_ssh(key: Path, ip: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        res = ssh(key, ip, "true", timeout=10, check=False)
        if res.returncode == 0:
            return
        assert time.monotonic() < deadline, f"ssh to {ip} never worked: {res.stderr}"
        time.sleep(0.3)


def ssh_group(ec2, prefix: str) -> str:
    """A new security group of the default VPC that lets SSH in from anywhere."""
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    gid = ec2.create_security_group(GroupName=name, Description="ssh", VpcId=vpc)["GroupId"]
    eventually(
        ec2.authorize_security_group_ingress,
        GroupId=gid,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
    )
    return gid


# A tiny HTTP server on 8080 for hosts behind a load balancer: every answer names the host (its first
# argument); /healthz answers 500 once /tmp/sick exists; /slow/N answers after N seconds.
TEST_SERVER = r"""
import http.server, os, sys, time
NAME = sys.argv[1].encode()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.path.startswith("/slow/"):
            time.sleep(float(self.path.rsplit("/", 1)[1]))
        code = 500 if self.path == "/healthz" and os.path.exists("/tmp/sick") else 200
        self.send_response(code)
        self.send_header("Content-Length", str(len(NAME)))
        self.end_headers()
        self.wfile.write(NAME)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), H).serve_forever()
"""


def web_site(ec2, elbv2, prefix: str, key: Path, drain_seconds: int) -> dict:
    """What a fleet behind a load balancer needs, with nothing launched: two subnets (two zones) of the default VPC,
    a key pair (written to ``key``), the hosts' security group (SSH, and 8080 from the load balancer's group only),
    a load balancer in both subnets (port 80 from the VPC) whose listener forwards to a target group on 8080 with
    /healthz checks every 5 s (2 to be healthy or unhealthy) and ``drain_seconds`` of deregistration delay."""
    tag = f"{prefix}-{uuid.uuid4().hex[:8]}"
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["Subnets"]
    subnets = sorted(subnets, key=lambda s: s["AvailabilityZone"])[:2]
    lb_group = ec2.create_security_group(GroupName=f"{tag}-lb", Description="lb", VpcId=vpc["VpcId"])["GroupId"]
    eventually(ec2.authorize_security_group_ingress, GroupId=lb_group,
               IpPermissions=[{"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80,
                               "IpRanges": [{"CidrIp": vpc["CidrBlock"]}]}])  # fmt: skip
    web_group = ssh_group(ec2, f"{prefix}web")
    eventually(ec2.authorize_security_group_ingress, GroupId=web_group,
               IpPermissions=[{"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080,
                               "UserIdGroupPairs": [{"GroupId": lb_group}]}])  # fmt: skip
    key.write_text(ec2.create_key_pair(KeyName=tag)["KeyMaterial"])
    key.chmod(0o600)
    lb = elbv2.create_load_balancer(Name=tag, Subnets=[s["SubnetId"] for s in subnets],
                                    SecurityGroups=[lb_group], Type="application")["LoadBalancers"][0]  # fmt: skip
    tg = elbv2.create_target_group(Name=tag, Protocol="HTTP", Port=8080, VpcId=vpc["VpcId"],
                                   HealthCheckPath="/healthz", HealthCheckIntervalSeconds=5,
                                   HealthCheckTimeoutSeconds=2, HealthyThresholdCount=2,
                                   UnhealthyThresholdCount=2, TargetType="instance")["TargetGroups"][0]  # fmt: skip
    elbv2.modify_target_group_attributes(
        TargetGroupArn=tg["TargetGroupArn"],
        Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": str(drain_seconds)}],
    )
    forward = [{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}]
    listener = elbv2.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=80,
                                     DefaultActions=forward)  # fmt: skip
    return {"tag": tag, "vpc": vpc, "subnets": subnets, "lb_group": lb_group, "web_group": web_group, "key": key,
            "key_name": tag, "lb": lb, "tg": tg["TargetGroupArn"], "listener": listener}  # fmt: skip


def ansible_playbook(sandbox, *args, admin: bool = False):
    """ansible-playbook ``args`` as the sandbox's least-privilege user (the administrator with ``admin``), with this
    checkout's collection."""
    env = dict(os.environ, **sandbox.env(admin=admin), ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build" / "collections"))
    env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0")
    env["ANSIBLE_PYTHON_INTERPRETER"] = sys.executable
    return subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def flow_runner(sandbox, workdir: Path, base: dict):
    """``run(playbook, timeout=900, **extra)``: a playbook of the flow (playbooks/) as the least-privilege user, with
    the inventory config and the variables ``base`` (then ``extra``); ``run.start(playbook, **extra)`` starts one in
    its own process group (what a killed controller takes down with it). Each run's return code and seconds go to
    stderr; ``proc.seconds`` holds them."""
    collections, playbooks = ROOT / ".build" / "collections", ROOT / "playbooks"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ANSIBLE_"))}
    env.update(
        sandbox.env(),  # endpoint, the least-privilege user's keys, the guest endpoint, the sandbox's CA
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        HOME=str(workdir),
        PYTHONPATH=str(collections),
        ANSIBLE_COLLECTIONS_PATH=str(collections),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_LOCALHOST_WARNING="0",
        ANSIBLE_SSH_ARGS="-o ControlMaster=no",
    )
    inventory = playbooks / "inventory" / "bakery.instances.yml"

    def command(playbook: str, **extra) -> list[str]:
        cmd = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", str(inventory), str(playbooks / playbook)]
        args = dict(base, **extra)
        if playbook == "pipeline.yml":
            args.pop("flow_hosts", None)  # it configures its builder (role_builder), which an extra var would override
        return [*cmd, "-e", json.dumps(args)]

    def start(playbook: str, **extra) -> subprocess.Popen:
        return subprocess.Popen(
            command(playbook, **extra), env=env, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip

    def run(playbook: str, timeout: float = 900, **extra) -> subprocess.CompletedProcess:
        started = time.monotonic()
        proc = subprocess.run(command(playbook, **extra), env=env, cwd=workdir, capture_output=True, text=True,
                              timeout=timeout, check=False)  # fmt: skip
        proc.seconds = time.monotonic() - started
        print(f"{playbook} {extra or ''}: rc {proc.returncode} in {proc.seconds:.0f} s", file=sys.stderr)
        return proc

    run.start = start
    return run


# The flow that test_https.py, test_pipeline.py and test_rollout.py share (the day_two fixture, conftest.py).
DAY_TWO = "daytwo"
DAY_TWO_BASE_PARAMETER = f"/bakery/{DAY_TWO}/base"


def day_two_leftovers(sandbox) -> dict[str, list[str]]:
    """What of the shared flow the API still holds, by kind (every list empty once it is torn down)."""
    ec2, elb, acm = sandbox.client(), sandbox.client(service="elbv2"), sandbox.client(service="acm")
    ssm = sandbox.client("us-east-1", "ssm")
    live = {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}
    found = ec2.describe_instances(Filters=[{"Name": "tag:BakeryFlow", "Values": [DAY_TWO]}, live])["Reservations"]
    certificates = [c["CertificateArn"] for c in acm.list_certificates()["CertificateSummaryList"]]
    tagged = {arn: acm.list_tags_for_certificate(CertificateArn=arn)["Tags"] for arn in certificates}
    parameters = ssm.describe_parameters(
        ParameterFilters=[{"Key": "Name", "Option": "BeginsWith", "Values": [f"/bakery/{DAY_TWO}/"]}]
    )["Parameters"]
    images = ec2.describe_images(Owners=["self"], Filters=[{"Name": "tag:BakeryFlow", "Values": [DAY_TWO]}])
    groups = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [f"{DAY_TWO}-*"]}])
    autoscaling = sandbox.client(service="autoscaling")
    templates = ec2.describe_launch_templates(Filters=[{"Name": "launch-template-name", "Values": [f"{DAY_TWO}-*"]}])
    return {
        "instances": [i["InstanceId"] for r in found for i in r["Instances"]],
        "images": [i["ImageId"] for i in images["Images"]],
        "load_balancers": [
            lb["LoadBalancerName"]
            for lb in elb.describe_load_balancers()["LoadBalancers"]
            if lb["LoadBalancerName"].startswith(f"{DAY_TWO}-")
        ],
        "target_groups": [
            tg["TargetGroupName"]
            for tg in elb.describe_target_groups()["TargetGroups"]
            if tg["TargetGroupName"].startswith(f"{DAY_TWO}-")
        ],
        "security_groups": [g["GroupName"] for g in groups["SecurityGroups"]],
        "certificates": [arn for arn, tags in tagged.items() if {"Key": "BakeryFlow", "Value": DAY_TWO} in tags],
        "parameters": [p["Name"] for p in parameters],
        "auto_scaling_groups": [
            g["AutoScalingGroupName"]
            for g in autoscaling.describe_auto_scaling_groups()["AutoScalingGroups"]
            if g["AutoScalingGroupName"].startswith(f"{DAY_TWO}-")
        ],
        "launch_templates": [t["LaunchTemplateName"] for t in templates["LaunchTemplates"]],
    }


def pytest_collection_modifyitems(items):
    """test_down_leaves_nothing stops the sandbox: it runs after every other test (the sort is stable)."""
    items.sort(key=lambda item: item.originalname == "test_down_leaves_nothing")
