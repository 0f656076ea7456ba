"""Secure defaults that need no live host: what ec2_launch asks EC2 for, and where the sandbox listens.

On live hosts (IMDSv2 refused without a token, encrypted volumes, the app's user, modes, headers, CSRF,
XSS, SQL injection, upload limits) they are checked by test_flow_faults.py; the app's own behaviour in
depth by tests/app (test_form_without_csrf_token_is_refused, test_xss_payload_is_escaped_everywhere,
test_sql_injection_payloads_are_plain_data, test_oversized_form_upload_is_413_and_nothing_changes).
"""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import REPO, eventually


def launch(run_module, env, ec2, name, **extra):
    image = ec2.describe_images(Owners=["136693071363"], Filters=[{"Name": "architecture", "Values": ["x86_64"]}])
    args = {"name": name, "image_id": image["Images"][0]["ImageId"], "wait": False, **extra}
    run = run_module("ec2_launch", args, env)
    assert not run.failed, run.msg
    return run


pytestmark = pytest.mark.skipif(not (REPO / "plugins/modules/ec2_launch.py").exists(), reason="needs ec2_launch")


def test_imdsv2_required_and_volumes_encrypted_by_default(env, ec2, run_module):
    run = launch(run_module, env, ec2, "defaults", volumes=[{"device_name": "/dev/sdf", "size": 8}])
    iid = run.result["instances"][0]["instance_id"]
    inst = eventually(ec2.describe_instances, InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    assert inst["MetadataOptions"]["HttpTokens"] == "required"
    vols = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [iid]}])["Volumes"]
    data = [v for v in vols if v["Attachments"][0]["Device"] == "/dev/sdf"]
    assert data and all(v["Encrypted"] for v in data), [(v["VolumeId"], v["Encrypted"]) for v in vols]


def test_ssh_open_to_the_world_only_when_asked_and_then_with_a_warning(env, ec2, run_module):
    quiet = launch(run_module, env, ec2, "office", firewall=[{"ports": 22, "cidr": "203.0.113.0/24"}])
    assert not quiet.result.get("warnings")
    loud = launch(run_module, env, ec2, "world", firewall=[{"ports": 22, "cidr": ["0.0.0.0/0", "::/0"]}])
    warnings = json.dumps(loud.result.get("warnings", []))
    assert "port 22 of 'world' is open to the whole internet" in warnings, warnings
    groups = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["office"]}])["SecurityGroups"]
    ranges = [r["CidrIp"] for p in groups[0]["IpPermissions"] for r in p.get("IpRanges", [])]
    assert ranges == ["203.0.113.0/24"]
    # no firewall option: no rule is added at all
    bare = launch(run_module, env, ec2, "bare")
    assert not ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["bare"]}])["SecurityGroups"]
    assert not bare.result.get("warnings")


def test_sandbox_listens_on_loopback_only(sandbox):
    """The API (and its control routes) on 127.0.0.1 only; the metadata server on its link-local address only."""
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    pid = str(sandbox.pid())
    mine = [line.split()[3] for line in out.splitlines() if f"pid={pid}," in line]
    assert f"127.0.0.1:{sandbox.port}" in mine, mine
    assert all(addr.startswith(("127.0.0.1:", "169.254.169.254:")) for addr in mine), mine
