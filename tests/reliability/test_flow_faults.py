"""The whole flow (playbooks/flow.yml with the inventory config) on the sandbox under random API faults.

For each seed in RELIABILITY_SEEDS (default "1"; `make reliability` runs 5): turn on 20 % throttling,
5 % 5xx, 5 % lost connections (half before moto acts, half after: the action happened but the answer
is lost) and 10 % added latency for this test's requests only, run the flow, then check that the API
holds exactly what was asked for (1 source instance, 2 clones, 1 image: no duplicate from a lost
RunInstances or CreateImage answer), tear down (still under faults) and check that nothing of the
flow is left. On the first seed, the secure defaults are checked on the live instances first.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO
from flowrun import (
    Run,
    chaos_on,
    flow_instances,
    flow_leftovers,
    flow_vars,
    images_named,
    observer,
    record,
    sandbox_env,
)

SEEDS = [int(s) for s in os.environ.get("RELIABILITY_SEEDS", "1").split()]
HAVE_INVENTORY = (REPO / "plugins" / "inventory" / "instances.py").exists()
pytestmark = pytest.mark.skipif(not HAVE_INVENTORY, reason="the inventory plugin is not on this branch yet")
EMPTY = {"instances": [], "images": [], "snapshots": [], "key_pairs": [], "security_groups": []}


@pytest.fixture(scope="module")
def box(sandbox):
    try:
        sandbox.chaos_status()
    except Exception as err:
        pytest.skip(f"the running sandbox has no /_sandbox/chaos ({err}); stop it or rerun when it is free")
    return sandbox


@pytest.mark.parametrize("seed", SEEDS)
def test_flow_under_faults_holds_exactly_what_was_asked(box, tmp_path, seed):
    flow = f"rel-s{seed}"
    env = sandbox_env(box, tmp_path)
    args = flow_vars(flow, tmp_path)
    ec2 = observer(box)
    assert flow_leftovers(ec2, flow) == EMPTY, "leftovers of an earlier run"
    chaos_on(box, seed)
    run = Run("flow.yml", env, args, tmp_path, inventory=True)
    rc = run.run(timeout=1500)
    flow_stats = box.chaos_status()["stats"]
    assert rc == 0, run.output[-4000:]
    # The summary names the file of the admin password the flow generated, never the password itself.
    kept = tmp_path / f"{flow}.key.admin-password"
    assert f"admin password in {kept} (user admin)" in run.output, run.output[-2000:]
    assert kept.read_text().strip() not in run.output

    # exactly what was asked: 1 source + 2 clones, 1 image
    live = flow_instances(ec2, flow)
    roles = sorted(next(t["Value"] for t in i["Tags"] if t["Key"] == "BakeryRole") for i in live)
    assert roles == ["clone", "clone", "source"], [(i["InstanceId"], i["State"]["Name"]) for i in live]
    images = images_named(ec2, f"{flow}-web-v1")
    assert len(images) == 1, [i["ImageId"] for i in images]
    image_ids = [i["ImageId"] for i in images]
    if seed == SEEDS[0]:
        check_secure_defaults(box, ec2, live, tmp_path / f"{flow}.key")

    # teardown, still under faults, leaves nothing of the flow
    chaos_on(box, seed + 1000)
    down = Run("teardown.yml", env, args, tmp_path)
    rc = down.run(timeout=600)
    down_stats = box.chaos_off()["stats"]
    assert rc == 0, down.output[-4000:]
    assert flow_leftovers(ec2, flow) == EMPTY
    orphans = [
        s["SnapshotId"]
        for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]
        if any(i in s.get("Description", "") for i in image_ids)
    ]
    assert orphans == [], "snapshots of the deregistered image are left"
    record(
        "flow_faults",
        {
            "seed": seed,
            "flow_s": round(run.seconds, 1),
            "teardown_s": round(down.seconds, 1),
            "requests": flow_stats["requests"] + down_stats["requests"],
            "faults": flow_stats["faults"] + down_stats["faults"],
            "kinds": {
                k: flow_stats["kinds"].get(k, 0) + down_stats["kinds"].get(k, 0)
                for k in sorted(set(flow_stats["kinds"]) | set(down_stats["kinds"]))
            },
            "lost_after_action": {
                a: k["drop_after"]
                for a, k in {**down_stats["by_action"], **flow_stats["by_action"]}.items()
                if k.get("drop_after") and not a.startswith("Describe")
            },
        },
    )


# ------------------------------------------------------------------------- secure defaults on live instances
SSH = ["ssh", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
       "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]  # fmt: skip


def ssh(key, ip, command):
    res = subprocess.run(
        [*SSH, "-i", str(key), f"admin@{ip}", command], capture_output=True, text=True, timeout=60, check=False
    )
    assert res.returncode == 0, f"ssh {ip} {command!r}: {res.stderr}"
    return res.stdout


def http(url, data=None, headers=None, method=None):
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, dict(resp.headers), resp.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read().decode(errors="replace")


def check_secure_defaults(box, ec2, live, key):
    """IMDSv2, encrypted volumes, SSH not open to the world, and the app's defences, on the flow's hosts."""
    # IMDSv2 required on every instance, in the API and on the host (a token-less GET is refused)
    for inst in live:
        assert inst["MetadataOptions"]["HttpTokens"] == "required", inst["InstanceId"]
    source = next(i for i in live if {"Key": "BakeryRole", "Value": "source"} in i["Tags"])
    clone = next(i for i in live if {"Key": "BakeryRole", "Value": "clone"} in i["Tags"])
    ip = clone["PrivateIpAddress"]
    probe = (
        "python3 -c \"import urllib.request as u\ntry: u.urlopen('http://169.254.169.254/latest/meta-data/', "
        "timeout=5); print('open')\nexcept Exception as e: print(getattr(e, 'code', e))\""
    )
    assert ssh(key, source["PrivateIpAddress"], probe).strip() == "401"
    # volumes encrypted
    vols = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [i["InstanceId"] for i in live]}])
    assert vols["Volumes"] and all(v["Encrypted"] for v in vols["Volumes"]), [
        (v["VolumeId"], v["Encrypted"]) for v in vols["Volumes"]
    ]
    # no rule opens port 22 to the world (the flow asks for the VPC range only)
    groups = {g["GroupId"] for i in live for g in i["SecurityGroups"]}
    for sg in ec2.describe_security_groups(GroupIds=sorted(groups))["SecurityGroups"]:
        for perm in sg["IpPermissions"]:
            if perm.get("FromPort", 0) <= 22 <= perm.get("ToPort", 65535) or perm.get("IpProtocol") == "-1":
                assert all(r["CidrIp"] != "0.0.0.0/0" for r in perm.get("IpRanges", [])), sg["GroupName"]
                assert all(r["CidrIpv6"] != "::/0" for r in perm.get("Ipv6Ranges", [])), sg["GroupName"]

    # the app on a clone (configured only through the image): unprivileged, modes, headers, defences
    users = ssh(key, ip, "ps -o user= -C gunicorn | sort -u").split()
    assert users and "root" not in users, users
    modes = ssh(
        key,
        ip,
        # The globs are expanded by root's shell: admin may not list these directories (as it should). The SQLite
        # files exist only with flow_store sqlite (the flow's default, dynamodb, keeps nothing on the host).
        "sudo sh -c \"stat -c '%a %U %n' /etc/employee-directory /etc/employee-directory/* "
        "/var/lib/employee-directory \\$(ls -d /var/lib/employee-directory/*.sqlite3* 2>/dev/null) "
        '/opt/employee-directory"',
    )
    for line in modes.splitlines():
        mode, owner, path = line.split(" ", 2)
        assert int(mode[-1]) & 2 == 0, f"{path} is world-writable ({mode})"
        if path.startswith("/etc/employee-directory/") or ".sqlite3" in path:
            assert int(mode[-1]) == 0, f"{path} is readable by others ({mode})"
        if path.startswith("/opt/"):
            assert owner == "root", f"the app's code {path} is owned by {owner}: the app could rewrite itself"
    base = f"http://{ip}"
    status, headers, page = http(base + "/")
    assert status == 200
    for header in ("Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy"):
        assert header in headers, f"{header} missing: {sorted(headers)}"
    assert "Server" not in headers or not re.search(r"\d", headers["Server"]), headers.get("Server")
    # a form post without the CSRF token and cookie is refused and changes nothing
    form = b"name=Mallory&job_title=x&department=x&location=x&email=mallory%40example.com"
    status = http(base + "/employees", form, {"Content-Type": "application/x-www-form-urlencoded"})[0]
    assert status in (400, 403), status
    # an XSS payload stored through the API is escaped on the page; an SQL-injection payload is plain data
    xss = "<script>alert(1)</script>"
    payload = {"name": xss, "job_title": "x'); DROP TABLE employees;--", "department": "QA", "location": "Lab"}
    body = json.dumps(dict(payload, email="xss@example.com")).encode()
    as_json = {"Content-Type": "application/json"}
    # a change without the administrator's credentials is refused (the flow keeps them beside its key)
    status = http(base + "/api/employees", body, as_json)[0]
    assert status == 401, status
    password = Path(f"{key}.admin-password").read_text().strip()
    admin = {**as_json, "Authorization": "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()}
    status, _headers, created = http(base + "/api/employees", body, admin)
    assert status == 201, created
    page = http(base + "/?q=" + urllib.request.quote("' OR 1=1 --"))[2]
    assert xss not in page
    page = http(base + "/")[2]
    assert xss not in page and "&lt;script&gt;" in page
    listing = http(base + "/api/employees")[2]
    assert "DROP TABLE" in listing and listing.count('"email"') >= 5  # the table is still there
    # an oversized upload is refused by nginx before it reaches the app
    big = b"x" * (11 * 1024 * 1024)  # above the default photo limit of 10 MiB (webserver_upload_max_bytes)
    status = http(base + "/api/employees/1/photo", big, {"Content-Type": "image/png"}, method="PUT")[0]
    assert status == 413, status
