"""Real hosts behind the sandbox's EC2 API (run as root: make test-sandbox)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from sandbox_helpers import base_ami, eventually, ssh, ssh_group, wait_image, wait_ssh, wait_state

from sandbox import config, elb, hosts, limits, net

TIMINGS: dict[str, float] = {}


def launch(ec2, ami, key_name, group, **kw) -> tuple[str, float]:
    t0 = time.monotonic()
    res = eventually(
        ec2.run_instances,
        ImageId=ami,
        MinCount=1,
        MaxCount=1,
        InstanceType="t3.micro",
        KeyName=key_name,
        SecurityGroupIds=[group],
        **kw,
    )
    iid = res["Instances"][0]["InstanceId"]
    assert res["Instances"][0]["State"]["Name"] == "pending"
    inst = wait_state(ec2, iid, "running")
    return iid, time.monotonic() - t0, inst


def host_objects(instance_id: str) -> dict[str, bool]:
    ns = f"bks-{instance_id}"
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    mounts = Path("/proc/self/mounts").read_text()
    return {
        "netns": ns in netns,
        "mount": f"/hosts/{instance_id}/" in mounts,
        "dir": (config.HOSTS_DIR / instance_id).exists(),
    }


@pytest.fixture(scope="module")
def web(sandbox, ec2, tmp_path_factory, open_group):
    """One Debian 12 host launched with a new CreateKeyPair key; nginx installed by the first test."""
    name = f"web-{uuid.uuid4().hex[:8]}"
    key = tmp_path_factory.mktemp("web") / "id"
    key.write_text(ec2.create_key_pair(KeyName=name)["KeyMaterial"])
    key.chmod(0o600)
    ami = base_ami(ec2, "12")
    iid, took, inst = launch(ec2, ami["ImageId"], name, open_group)
    TIMINGS["run_to_running_s"] = took
    yield {"id": iid, "ip": inst["PrivateIpAddress"], "key": key, "key_name": name, "inst": inst, "group": open_group}
    if sandbox.pid():
        with contextlib.suppress(ClientError):  # the down test may have restarted it: instance gone
            ec2.terminate_instances(InstanceIds=[iid])


@pytest.fixture(scope="module")
def open_group(ec2):
    return ssh_group(ec2, "ssh")


def test_base_amis_look_like_debian(ec2, sandbox):
    for region in config.AMI_REGIONS:
        client = sandbox.client(region)
        for version in ("12", "13"):
            img = base_ami(client, version)
            assert img["OwnerId"] == "136693071363"
            assert img["Architecture"] == "x86_64"
            assert img["RootDeviceName"] == "/dev/xvda"
            assert img["Name"].startswith(f"debian-{version}-amd64-")
            assert img["State"] == "available"


def test_base_image_ids_are_unique_to_each_region(sandbox):
    """AMI IDs are per region: same name, owner and date, another ID; a region does not know another's ID."""
    east, west = sandbox.client("us-east-1"), sandbox.client("eu-west-1")
    for version in ("12", "13"):
        a, b = base_ami(east, version), base_ami(west, version)
        assert a["ImageId"] != b["ImageId"]
        assert (a["Name"], a["OwnerId"], a["CreationDate"]) == (b["Name"], b["OwnerId"], b["CreationDate"])
        with pytest.raises(ClientError) as err:
            west.describe_images(ImageIds=[a["ImageId"]])
        assert err.value.response["Error"]["Code"] == "InvalidAMIID.NotFound"
        assert west.describe_images(ImageIds=[b["ImageId"]])["Images"][0]["ImageId"] == b["ImageId"]


def test_launch_ssh_systemd_apt(ec2, web):
    inst = web["inst"]
    assert "PublicIpAddress" not in inst, "sandbox instances must have no public IP"
    assert inst["PrivateIpAddress"].startswith("172.31.")
    assert TIMINGS["run_to_running_s"] < 15
    wait_ssh(web["key"], web["ip"])
    state = ssh(web["key"], web["ip"], "systemctl is-system-running --wait || true").stdout.strip()
    assert state in ("running", "degraded"), state
    assert ssh(web["key"], web["ip"], "hostname").stdout.strip() == "ip-" + web["ip"].replace(".", "-")
    ssh(
        web["key"],
        web["ip"],
        "sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx",
    )
    ssh(web["key"], web["ip"], "systemctl is-active nginx && echo sandbox-marker | sudo tee /etc/bakery-marker")


def test_each_host_runs_in_a_cgroup_of_its_own(web):
    """Its systemd's units below its own cgroup: hosts sharing one tree raced on each other's unit cgroups."""
    nspawn = subprocess.run(
        ["pgrep", "-f", f"machine={net.ns_name(web['id'])}"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert len(nspawn) == 1, nspawn
    guest_init = subprocess.run(["pgrep", "-P", nspawn[0]], capture_output=True, text=True).stdout.split()[0]
    own = f"/{hosts.CGROUP_PARENT}/{web['id']}/"
    lines = Path(f"/proc/{guest_init}/cgroup").read_text().splitlines()
    named = [line for line in lines if line.split(":")[1] in ("name=systemd", "")]
    assert named and all(own in line for line in named), lines


def test_port_80_closed_until_ingress_allows(ec2, web):
    url = f"http://{web['ip']}/"
    probe = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--connect-timeout", "2", url]
    assert subprocess.run(probe, capture_output=True, text=True).stdout != "200"
    ec2.authorize_security_group_ingress(
        GroupId=web["group"],
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
    )
    deadline = time.monotonic() + 10
    while subprocess.run(probe, capture_output=True, text=True).stdout != "200":
        assert time.monotonic() < deadline, "port 80 still closed after the ingress rule"
        time.sleep(0.3)


def test_a_new_member_of_a_group_is_admitted_by_the_rules_that_name_the_group(ec2, web, tmp_path):
    """A rule "from group A" on a running host admits a host that joins A afterwards, and only such a host.

    The firewalls are built from one read of the region shared until the next EC2 change (Core._firewall_view):
    the member's launch and its joining A are such changes, so the running target's rules take in its address.
    """
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    tag = uuid.uuid4().hex[:8]
    members = ec2.create_security_group(GroupName=f"members-{tag}", Description="members", VpcId=vpc)["GroupId"]
    target_group = ec2.create_security_group(GroupName=f"target-{tag}", Description="target", VpcId=vpc)["GroupId"]
    eventually(
        ec2.authorize_security_group_ingress,
        GroupId=target_group,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "UserIdGroupPairs": [{"GroupId": members}]}],
    )
    key = tmp_path / "id"
    key.write_text(ec2.create_key_pair(KeyName=f"members-{tag}")["KeyMaterial"])
    key.chmod(0o600)
    ami = base_ami(ec2, "12")["ImageId"]
    target, _, target_inst = launch(ec2, ami, f"members-{tag}", target_group)
    member = None
    try:
        member, _, member_inst = launch(ec2, ami, f"members-{tag}", web["group"])
        eventually(ec2.modify_instance_attribute, InstanceId=member, Groups=[web["group"], members])
        probe = f"timeout 2 bash -c '</dev/tcp/{target_inst['PrivateIpAddress']}/22' && echo open || echo closed"
        wait_ssh(key, member_inst["PrivateIpAddress"])
        deadline = time.monotonic() + 15
        while ssh(key, member_inst["PrivateIpAddress"], probe).stdout.strip() != "open":
            assert time.monotonic() < deadline, "the member is not admitted by the rule naming its group"
            time.sleep(0.5)
        # The web host is in no group the rule names: dropped.
        assert ssh(web["key"], web["ip"], probe).stdout.strip() == "closed"
    finally:
        ec2.terminate_instances(InstanceIds=[target] + ([member] if member else []))


def test_the_gateway_keeps_its_mac_when_the_host_with_the_lowest_port_address_goes(ec2, web):
    """A host that goes away never changes its neighbours' gateway: the bridge's MAC is fixed, not its lowest port's.

    The departing host's veth is given the lowest address there is first, the case where a bridge left to itself
    would have taken that address and then lost it with the host, while the other hosts' ARP caches still named it.
    """
    bridge = Path(f"/sys/class/net/{config.BRIDGE}")
    assert (bridge / "address").read_text().strip() == config.BRIDGE_MAC
    gone, _, _ = launch(ec2, base_ami(ec2, "12")["ImageId"], web["key_name"], web["group"])
    try:
        subprocess.run(["ip", "link", "set", net.veth_name(gone), "address", "00:00:00:00:00:01"], check=True)
        assert (bridge / "address").read_text().strip() == config.BRIDGE_MAC
    finally:
        ec2.terminate_instances(InstanceIds=[gone])
    wait_state(ec2, gone, "terminated")
    assert (bridge / "address").read_text().strip() == config.BRIDGE_MAC
    # The web host answers the controller through its gateway: its ARP entry for it names the fixed address.
    neigh = ssh(web["key"], web["ip"], "ip neigh show $(ip route show default | cut -d' ' -f3)").stdout
    assert config.BRIDGE_MAC in neigh, neigh


def test_guest_egress_is_dropped_except_the_mirror(sandbox, web):
    """A guest reaches the mirror its apt sources name (apt worked above); any other address is dropped here.

    192.0.2.1 (TEST-NET-1) is not the mirror, so BKS-FORWARD's DROP for the bridge meets the packet first:
    the test checks that order before it sends anything, and the packet never leaves the machine.
    """
    forward = subprocess.run(["iptables", "-w", "-S", "FORWARD"], capture_output=True, text=True).stdout.splitlines()
    assert forward[1] == f"-A FORWARD -j {config.CHAIN_FWD}", forward[:3]  # first rule: the sandbox's chain
    chain = subprocess.run(["iptables", "-w", "-S", config.CHAIN_FWD], capture_output=True, text=True).stdout
    rules = chain.splitlines()[1:]
    drop = rules.index(f"-A {config.CHAIN_FWD} -i {config.BRIDGE} -j DROP")
    assert all("192.0.2." not in r and " -d " in r for r in rules[:drop] if "ACCEPT" in r and "-o bks" not in r)

    def dropped() -> int:
        out = subprocess.run(
            ["iptables", "-w", "-L", config.CHAIN_FWD, "-v", "-x", "-n"], capture_output=True, text=True
        ).stdout
        row = next(line for line in out.splitlines() if "DROP" in line and config.BRIDGE in line.split()[5])
        return int(row.split()[0])

    before = dropped()
    probe = subprocess.run(
        ["ip", "netns", "exec", f"bks-{web['id']}", "curl", "-sS", "--connect-timeout", "2", "http://192.0.2.1/"],
        capture_output=True,
        text=True,
        timeout=15,
    )
    assert probe.returncode != 0  # timed out: nothing answered
    after = dropped()
    assert after > before, f"BKS-FORWARD dropped {before} -> {after} packets; curl: {probe.stderr.strip()}"


def test_imdsv2_required(ec2, web):
    key, ip = web["key"], web["ip"]
    get = "curl -s -o /dev/null -w '%{http_code}' http://169.254.169.254/latest/meta-data/instance-id"
    assert ssh(key, ip, get).stdout == "200"  # optional by default
    ec2.modify_instance_metadata_options(InstanceId=web["id"], HttpTokens="required", HttpEndpoint="enabled")
    assert ssh(key, ip, get).stdout == "401"
    with_token = (
        "T=$(curl -s -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token);"
        ' curl -s -H "X-aws-ec2-metadata-token: $T" http://169.254.169.254/latest/meta-data/instance-id;'
        ' echo; curl -s -H "X-aws-ec2-metadata-token: $T" http://169.254.169.254/latest/meta-data/placement/availability-zone'
    )
    out = ssh(key, ip, with_token).stdout.split()
    assert out == [web["id"], web["inst"]["Placement"]["AvailabilityZone"]]


def test_clone_has_the_files_and_its_own_identity(sandbox, ec2, web, tmp_path):
    key, ip = web["key"], web["ip"]
    t0 = time.monotonic()
    boot_id = ssh(key, ip, "cat /proc/sys/kernel/random/boot_id").stdout.strip()
    image_id = ec2.create_image(InstanceId=web["id"], Name=f"web-{uuid.uuid4().hex[:8]}")["ImageId"]
    # The copy is under way (pending) while the API may still hide the new image (eventual consistency, which
    # can last longer than the copy): the sandbox's own view shows the copy, the API the image once visible.
    assert image_id in sandbox.status()["pending_images"]
    assert eventually(ec2.describe_images, ImageIds=[image_id])["Images"][0]["State"] in ("pending", "available")
    wait_image(ec2, image_id)
    TIMINGS["create_image_to_available_s"] = time.monotonic() - t0
    # the clone uses an ImportKeyPair key
    clone_key = tmp_path / "clone"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(clone_key)], check=True)
    kname = f"imported-{uuid.uuid4().hex[:8]}"
    ec2.import_key_pair(KeyName=kname, PublicKeyMaterial=(tmp_path / "clone.pub").read_bytes())
    cid, _, clone = launch(ec2, image_id, kname, web["group"])
    cip = clone["PrivateIpAddress"]
    assert cip != ip
    wait_ssh(clone_key, cip)
    assert ssh(clone_key, cip, "cat /etc/bakery-marker").stdout.strip() == "sandbox-marker"
    assert ssh(clone_key, cip, "systemctl is-active nginx").stdout.strip() == "active"
    assert ssh(clone_key, cip, "hostname").stdout.strip() != ssh(key, ip, "hostname").stdout.strip()
    hostkey = "cat /etc/ssh/ssh_host_ed25519_key.pub | cut -d' ' -f2"
    wait_ssh(key, ip)  # the source was stopped for the copy (no NoReboot) and is back
    # CreateImage without NoReboot rebooted the host for real: a new boot
    assert ssh(key, ip, "cat /proc/sys/kernel/random/boot_id").stdout.strip() != boot_id
    assert ssh(clone_key, cip, hostkey).stdout != ssh(key, ip, hostkey).stdout
    # terminate removes the host
    assert all(host_objects(cid).values())
    ec2.terminate_instances(InstanceIds=[cid])
    wait_state(ec2, cid, "terminated")
    assert not any(host_objects(cid).values()), host_objects(cid)
    # the image's files go once it is deregistered and nothing uses them
    ec2.deregister_image(ImageId=image_id)
    deadline = time.monotonic() + 10
    while (config.LAYERS_DIR / image_id).exists():
        assert time.monotonic() < deadline, "image layer not freed"
        time.sleep(0.2)


def test_reboot_from_inside_the_guest_boots_the_same_host(ec2, web):
    """`reboot` in the guest (what ansible.builtin.reboot does) brings the same host back, disk kept."""
    boot_id = ssh(web["key"], web["ip"], "cat /proc/sys/kernel/random/boot_id").stdout.strip()
    host_key = ssh(web["key"], web["ip"], "cat /etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[1]
    ssh(web["key"], web["ip"], "sudo systemd-run --on-active=1 systemctl reboot", check=False)
    deadline = time.monotonic() + 60
    while True:
        res = ssh(web["key"], web["ip"], "cat /proc/sys/kernel/random/boot_id", timeout=10, check=False)
        if res.returncode == 0 and res.stdout.strip() != boot_id:
            break
        assert time.monotonic() < deadline, "the host did not come back after a reboot from inside"
        time.sleep(0.5)
    assert ssh(web["key"], web["ip"], "cat /etc/bakery-marker").stdout.strip() == "sandbox-marker"
    assert ssh(web["key"], web["ip"], "cat /etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[1] == host_key
    assert ec2.describe_instances(InstanceIds=[web["id"]])["Reservations"][0]["Instances"][0]["State"]["Name"] == (
        "running"
    )


def test_duplicate_image_name_fails(ec2, web):
    name = f"dup-{uuid.uuid4().hex[:8]}"
    first = ec2.create_image(InstanceId=web["id"], Name=name, NoReboot=True)["ImageId"]
    with pytest.raises(ClientError) as err:
        ec2.create_image(InstanceId=web["id"], Name=name, NoReboot=True)
    assert err.value.response["Error"]["Code"] == "InvalidAMIName.Duplicate"
    wait_image(ec2, first)
    ec2.deregister_image(ImageId=first)


def test_same_client_token_gives_one_instance(ec2, web):
    ami = base_ami(ec2, "12")["ImageId"]
    token = uuid.uuid4().hex
    kw = {"ImageId": ami, "MinCount": 1, "MaxCount": 1, "ClientToken": token, "SecurityGroupIds": [web["group"]]}
    a = eventually(ec2.run_instances, **kw)
    b = ec2.run_instances(**kw)
    wait_state(ec2, a["Instances"][0]["InstanceId"], "running")  # a filter leaves it out until then
    assert a["ReservationId"] == b["ReservationId"]
    assert [i["InstanceId"] for i in a["Instances"]] == [i["InstanceId"] for i in b["Instances"]]
    found = ec2.describe_instances(Filters=[{"Name": "image-id", "Values": [ami]}])["Reservations"]
    assert sum(1 for r in found if r["ReservationId"] == a["ReservationId"]) == 1
    iid = a["Instances"][0]["InstanceId"]
    ec2.terminate_instances(InstanceIds=[iid])
    wait_state(ec2, iid, "terminated")
    # As on EC2, the token's reservation comes back with its instances' current state, so a
    # client can tell that an old token's instances are gone.
    c = ec2.run_instances(**kw)
    assert [(i["InstanceId"], i["State"]["Name"]) for i in c["Instances"]] == [(iid, "terminated")]


def test_debian13_boots_and_runs_user_data(ec2, web, tmp_path):
    ami = base_ami(ec2, "13")["ImageId"]
    kname = f"d13-{uuid.uuid4().hex[:8]}"
    key = tmp_path / "id"
    key.write_text(ec2.create_key_pair(KeyName=kname)["KeyMaterial"])
    key.chmod(0o600)
    script = "#!/bin/sh\necho ran-$(date +%s) > /var/lib/user-data-ran\n"
    iid, _, inst = launch(ec2, ami, kname, web["group"], UserData=script)
    ip = inst["PrivateIpAddress"]
    wait_ssh(key, ip)
    state = ssh(key, ip, "systemctl is-system-running --wait || true").stdout.strip()
    assert state in ("running", "degraded"), state
    assert "trixie" in ssh(key, ip, "cat /etc/os-release").stdout
    assert ssh(key, ip, "cat /var/lib/user-data-ran").stdout.startswith("ran-")
    ec2.terminate_instances(InstanceIds=[iid])


def test_moto_catalogue_amis_are_api_only(ec2):
    images = ec2.describe_images(Owners=["amazon"])["Images"]
    ami = next(i["ImageId"] for i in images if i["OwnerId"] != "136693071363")
    res = ec2.run_instances(ImageId=ami, MinCount=3, MaxCount=3)
    ids = [i["InstanceId"] for i in res["Instances"]]
    found = eventually(ec2.describe_instances, InstanceIds=ids)["Reservations"][0]["Instances"]
    assert {i["State"]["Name"] for i in found} == {"running"}
    assert not any(any(host_objects(i).values()) for i in ids)
    ec2.terminate_instances(InstanceIds=ids)


def test_unexpected_failures_are_ec2_xml_errors(ec2):
    # moto answers an unimplemented filter with an HTML 500; the sandbox turns it into an EC2 error
    with pytest.raises(ClientError) as err:
        ec2.describe_instances(Filters=[{"Name": "client-token", "Values": ["x"]}])
    assert err.value.response["Error"]["Code"]


def test_fault_injection_is_bounded(sandbox):
    import boto3
    from botocore.config import Config

    env = sandbox.env()
    client = boto3.client(
        "ec2",
        region_name="us-east-1",
        endpoint_url=sandbox.endpoint,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )
    sandbox.inject_fault("DescribeRegions", "RequestLimitExceeded", status=503, count=2, seconds=30)
    for _ in range(2):
        with pytest.raises(ClientError) as err:
            client.describe_regions()
        assert err.value.response["Error"]["Code"] == "RequestLimitExceeded"
    assert client.describe_regions()["Regions"]
    assert sandbox.status()["faults"] == []


def test_down_leaves_nothing(sandbox, web, shared_flows_down):
    print("timings:", json.dumps(TIMINGS))
    # A sandbox that was running before the tests is started again, empty, unless this is the last step of make
    # test's e2e lane (SANDBOX_DOWN_FOR_GOOD): make test ends with no sandbox running, the demo's included.
    restart = not getattr(sandbox, "started_by_fixture", True) and not os.environ.get("SANDBOX_DOWN_FOR_GOOD")
    machine = net.load_record()["sysctl_before"]  # the kernel limits as they were before the sandbox
    assert machine
    sandbox.down(say=print)
    assert {name: int((limits.PROC_SYS / name).read_text()) for name in machine} == machine
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "bks-" not in netns
    assert str(config.HOSTS_DIR) not in Path("/proc/self/mounts").read_text()
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert ": bks" not in links
    routes = subprocess.run(["ip", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    assert "bks-" not in routes and "172.31." not in routes
    for table in ("filter", "nat"):
        rules = subprocess.run(["iptables", "-w", "-t", table, "-S"], capture_output=True, text=True).stdout
        assert "BKS-" not in rules and "bks-" not in rules
    assert not config.RECORD_FILE.exists()
    assert not elb.LB_DIR.exists()
    assert not any(d.parent.exists() for d in hosts.cgroup_dirs("i-any")), "the hosts' cgroups are left"
    haproxies = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(elb.LB_DIR) not in haproxies  # no load balancer's HAProxy left (test_elb.py leaves one running)
    listening = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True).stdout
    assert f"{config.GUEST_HOST}:{sandbox.port}" not in listening  # the guests' listener went with the process
    if restart:
        sandbox.up(say=print)  # it was running before the tests: leave it running
