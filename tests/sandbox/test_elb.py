"""The sandbox's application load balancer is real (HAProxy in its own namespace; run as root).

Three Debian hosts serve a tiny HTTP server (its answer names the host); one load balancer in two subnets
forwards port 80 to a target group on port 8080 with health checks on /healthz every 5 s. Every test is bounded.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import subprocess
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from sandbox_helpers import TEST_SERVER, base_ami, eventually, ssh, wait_ssh, wait_state, web_site

from sandbox import elb, net


def start_server(host: dict) -> None:
    ssh(host["key"], host["ip"], f"cat > /tmp/srv.py <<'EOF'\n{TEST_SERVER}\nEOF")
    ssh(
        host["key"],
        host["ip"],
        f"nohup python3 /tmp/srv.py {host['id']} >/dev/null 2>&1 </dev/null & echo $! > /tmp/srv.pid",
    )
    deadline = time.monotonic() + 10
    while ssh(host["key"], host["ip"], "curl -fsS -o /dev/null http://127.0.0.1:8080/healthz", check=False).returncode:
        assert time.monotonic() < deadline, f"the test server on {host['id']} did not start"
        time.sleep(0.2)


def stop_server(host: dict) -> None:
    ssh(host["key"], host["ip"], "kill $(cat /tmp/srv.pid)")


def get(address: str, path: str = "/", timeout: float = 5) -> tuple[int, str]:
    conn = http.client.HTTPConnection(address, 80, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


def paced_gets(address: str, count: int, results: list, stop: threading.Event | None = None) -> threading.Thread:
    """A started thread sending ``count`` GETs to ``address``, 10 a second, each (status, body) or (0, error) into
    ``results``; it ends early once ``stop`` is set."""

    def probe():
        start = time.monotonic()
        for n in range(count):
            time.sleep(max(0.0, start + n * 0.1 - time.monotonic()))
            try:
                results.append(get(address, timeout=3))
            except OSError as exc:
                results.append((0, repr(exc)))
            if stop is not None and stop.is_set():
                break

    prober = threading.Thread(target=probe)
    prober.start()
    return prober


def health(elbv2, group: str) -> dict[str, tuple[str, str]]:
    found = elbv2.describe_target_health(TargetGroupArn=group)["TargetHealthDescriptions"]
    return {d["Target"]["Id"]: (d["TargetHealth"]["State"], d["TargetHealth"].get("Reason", "")) for d in found}


def wait_health(elbv2, group: str, wanted: dict[str, str | None], timeout: float = 60) -> dict:
    """Until every target named has the state wanted (None: gone from DescribeTargetHealth)."""
    deadline = time.monotonic() + timeout
    while True:
        now = health(elbv2, group)
        if all(now.get(tid, (None,))[0] == state for tid, state in wanted.items()):
            return now
        assert time.monotonic() < deadline, f"target health {now}, wanted {wanted}"
        time.sleep(0.5)


def wait_active(elbv2, arn: str, timeout: float = elb.DEFAULT_PROVISIONING + 10) -> float:
    """Until the load balancer reads ``active``; the seconds that took."""
    start = time.monotonic()
    while True:
        (lb,) = elbv2.describe_load_balancers(LoadBalancerArns=[arn])["LoadBalancers"]
        if lb["State"]["Code"] == "active":
            return time.monotonic() - start
        assert lb["State"]["Code"] == "provisioning", lb["State"]
        assert time.monotonic() - start < timeout, f"still provisioning after {timeout} s"
        time.sleep(0.2)


def lb_dir(arn: str) -> Path:
    """Where the sandbox keeps one load balancer's HAProxy configuration (under elb.LB_DIR)."""
    return elb.Balancer(arn=arn, name="", region="", ip="", prefix=0, gateway="", eni="", groups=[]).dir


def haproxy_pids(under: Path = elb.LB_DIR) -> list[int]:
    """HAProxy processes whose configuration lives under ``under``: every load balancer of the sandbox by
    default, or one load balancer's directory (tests look only at what they made: a demo may run beside them)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if b"haproxy" in cmdline and (str(under) + "/").encode() in cmdline:
                pids.append(int(proc.name))
    return pids


@pytest.fixture(scope="module")
def elbv2(sandbox):
    return sandbox.client("us-east-1", service="elbv2")


@pytest.fixture(scope="module")
def site(sandbox, ec2, elbv2, tmp_path_factory):
    """Three hosts with the test server, a load balancer in two subnets, a target group and a listener on 80."""
    made = web_site(ec2, elbv2, "elb", tmp_path_factory.mktemp("elb") / "id", drain_seconds=30)
    key, subnets, lb = made["key"], made["subnets"], made["lb"]
    res = eventually(ec2.run_instances, ImageId=base_ami(ec2, "12")["ImageId"], MinCount=3, MaxCount=3,
                     InstanceType="t3.micro", KeyName=made["key_name"], SecurityGroupIds=[made["web_group"]],
                     SubnetId=subnets[0]["SubnetId"])  # fmt: skip
    hosts = []
    for inst in res["Instances"]:
        running = wait_state(ec2, inst["InstanceId"], "running", timeout=120)
        hosts.append({"id": inst["InstanceId"], "ip": running["PrivateIpAddress"], "key": key})
    for host in hosts:
        wait_ssh(key, host["ip"], timeout=60)
        start_server(host)
    wait_active(elbv2, lb["LoadBalancerArn"])
    yield {"lb": lb, "tg": made["tg"], "listener": made["listener"], "hosts": hosts, "subnets": subnets,
           "lb_group": made["lb_group"], "vpc_cidr": made["vpc"]["CidrBlock"]}  # fmt: skip
    if sandbox.pid():
        ec2.terminate_instances(InstanceIds=[h["id"] for h in hosts])


def test_dns_name_is_the_address_haproxy_serves(site, elbv2):
    address = site["lb"]["DNSName"]
    assert ipaddress.ip_address(address) in ipaddress.ip_network(site["subnets"][0]["CidrBlock"])
    described = elbv2.describe_load_balancers(LoadBalancerArns=[site["lb"]["LoadBalancerArn"]])["LoadBalancers"][0]
    assert described["DNSName"] == address
    assert haproxy_pids()
    # CreateLoadBalancer is idempotent: the same settings give the same load balancer, others are refused.
    again = elbv2.create_load_balancer(Name=site["lb"]["LoadBalancerName"],
                                       Subnets=[s["SubnetId"] for s in site["subnets"]],
                                       SecurityGroups=[site["lb_group"]], Type="application")  # fmt: skip
    assert again["LoadBalancers"][0]["LoadBalancerArn"] == site["lb"]["LoadBalancerArn"]
    assert again["LoadBalancers"][0]["DNSName"] == address
    with pytest.raises(ClientError) as err:
        elbv2.create_load_balancer(Name=site["lb"]["LoadBalancerName"], Subnets=[site["subnets"][1]["SubnetId"]],
                                   SecurityGroups=[site["lb_group"]], Type="application")  # fmt: skip
    assert err.value.response["Error"]["Code"] == "DuplicateLoadBalancerName"
    # No target yet: HAProxy answers itself (503), so the address and the listener are real.
    assert get(address)[0] == 503


def test_the_load_balancers_own_security_group_guards_it(site, ec2):
    address = site["lb"]["DNSName"]
    rule = [{"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": site["vpc_cidr"]}]}]
    ec2.revoke_security_group_ingress(GroupId=site["lb_group"], IpPermissions=rule)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                get(address, timeout=1)
            except OSError:
                break  # dropped: port 80 is closed without the rule
            assert time.monotonic() < deadline, "port 80 of the load balancer still open without an ingress rule"
            time.sleep(0.3)
    finally:
        ec2.authorize_security_group_ingress(GroupId=site["lb_group"], IpPermissions=rule)
    deadline = time.monotonic() + 10
    while True:
        with contextlib.suppress(OSError):
            assert get(address, timeout=1)[0] == 503
            break
        assert time.monotonic() < deadline, "port 80 of the load balancer still closed with the rule back"
        time.sleep(0.3)


def test_targets_are_initial_then_healthy_and_get_no_request_before(site, elbv2):
    a, b = site["hosts"][:2]
    elbv2.register_targets(TargetGroupArn=site["tg"], Targets=[{"Id": a["id"]}, {"Id": b["id"]}])
    now = health(elbv2, site["tg"])
    assert now[a["id"]][0] == "initial" and now[b["id"]][0] == "initial", now
    assert get(site["lb"]["DNSName"])[0] == 503  # not healthy yet: no request reaches them
    t0 = time.monotonic()
    wait_health(elbv2, site["tg"], {a["id"]: "healthy", b["id"]: "healthy"}, timeout=40)
    took = time.monotonic() - t0
    # AWS: "After your target is registered, it must pass one health check to be considered healthy" (the
    # healthy threshold, 2 here, is for an unhealthy target coming back): one check, not two 5 s apart.
    assert took < 5 + 2, f"healthy after {took:.1f} s: more than one health check (every 5 s) was waited for"
    described = elbv2.describe_target_health(TargetGroupArn=site["tg"], Targets=[{"Id": a["id"]}])
    assert described["TargetHealthDescriptions"][0]["HealthCheckPort"] == "8080"


def test_requests_are_balanced_across_healthy_targets(site):
    a, b = site["hosts"][:2]
    served = Counter(get(site["lb"]["DNSName"])[1] for _ in range(20))
    assert served == Counter({a["id"]: 10, b["id"]: 10}), served


def test_a_target_whose_server_stops_is_unhealthy_and_gets_no_request(site, elbv2):
    a, b = site["hosts"][:2]
    stop_server(b)
    try:
        now = wait_health(elbv2, site["tg"], {b["id"]: "unhealthy"}, timeout=30)
        assert now[b["id"]][1] == "Target.FailedHealthChecks"
        assert now[a["id"]][0] == "healthy"
        answers = [get(site["lb"]["DNSName"]) for _ in range(10)]
        assert answers == [(200, a["id"])] * 10
    finally:
        start_server(b)
    wait_health(elbv2, site["tg"], {b["id"]: "healthy"}, timeout=40)
    # A server that answers the health check with 500: ResponseCodeMismatch.
    ssh(b["key"], b["ip"], "touch /tmp/sick")
    try:
        now = wait_health(elbv2, site["tg"], {b["id"]: "unhealthy"}, timeout=30)
        assert now[b["id"]][1] == "Target.ResponseCodeMismatch"
    finally:
        ssh(b["key"], b["ip"], "rm -f /tmp/sick")
    wait_health(elbv2, site["tg"], {b["id"]: "healthy"}, timeout=40)


def _slow_requests(address: str, seconds: float, count: int) -> tuple[list, list[threading.Thread]]:
    out: list = []
    threads = [threading.Thread(target=lambda: out.append(get(address, f"/slow/{seconds}", timeout=seconds + 10)))
               for _ in range(count)]  # fmt: skip
    for t in threads:
        t.start()
    time.sleep(0.5)
    return out, threads


def test_deregistration_drains_until_no_connection_is_left(site, elbv2):
    a, b = site["hosts"][:2]
    out, threads = _slow_requests(site["lb"]["DNSName"], 4, 2)  # round robin: one on each target
    elbv2.deregister_targets(TargetGroupArn=site["tg"], Targets=[{"Id": b["id"]}])
    t0 = time.monotonic()
    assert health(elbv2, site["tg"])[b["id"]] == ("draining", "Target.DeregistrationInProgress")
    assert [get(site["lb"]["DNSName"])[1] for _ in range(4)] == [a["id"]] * 4  # no new request to b
    wait_health(elbv2, site["tg"], {b["id"]: None}, timeout=15)
    took = time.monotonic() - t0
    for t in threads:
        t.join(15)
    assert sorted(out) == sorted([(200, a["id"]), (200, b["id"])])  # the in-flight request on b finished
    assert 2.5 < took < 10, f"draining ended after {took:.1f} s (request 4 s, delay 30 s)"


def test_deregistration_ends_after_the_delay(site, elbv2):
    a, b = site["hosts"][:2]
    elbv2.modify_target_group_attributes(
        TargetGroupArn=site["tg"], Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "3"}]
    )
    elbv2.register_targets(TargetGroupArn=site["tg"], Targets=[{"Id": b["id"]}])
    wait_health(elbv2, site["tg"], {b["id"]: "healthy"}, timeout=40)
    out, threads = _slow_requests(site["lb"]["DNSName"], 12, 2)
    elbv2.deregister_targets(TargetGroupArn=site["tg"], Targets=[{"Id": b["id"]}])
    t0 = time.monotonic()
    wait_health(elbv2, site["tg"], {b["id"]: None}, timeout=10)
    took = time.monotonic() - t0
    assert 2 < took < 6, f"draining ended after {took:.1f} s (delay 3 s, request 12 s)"
    for t in threads:
        t.join(20)
    assert (200, a["id"]) in out
    elbv2.modify_target_group_attributes(
        TargetGroupArn=site["tg"], Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "30"}]
    )


def test_no_failed_request_while_targets_come_and_go(site, elbv2):
    """10 requests a second for 15 s while c is registered and, once healthy, a is deregistered."""
    a, b, c = site["hosts"]
    elbv2.register_targets(TargetGroupArn=site["tg"], Targets=[{"Id": b["id"]}])
    wait_health(elbv2, site["tg"], {a["id"]: "healthy", b["id"]: "healthy"}, timeout=40)
    results: list = []
    stop = threading.Event()
    prober = paced_gets(site["lb"]["DNSName"], 150, results, stop)
    try:
        elbv2.register_targets(TargetGroupArn=site["tg"], Targets=[{"Id": c["id"]}])
        wait_health(elbv2, site["tg"], {c["id"]: "healthy"}, timeout=12)
        elbv2.deregister_targets(TargetGroupArn=site["tg"], Targets=[{"Id": a["id"]}])
        wait_health(elbv2, site["tg"], {a["id"]: None}, timeout=10)
    finally:
        prober.join(30)
        stop.set()
    failed = [r for r in results if r[0] != 200]
    assert len(results) == 150 and not failed, f"{len(failed)} of {len(results)} failed: {failed[:3]}"
    served = Counter(r[1] for r in results)
    assert set(served) == {a["id"], b["id"], c["id"]}, served
    assert health(elbv2, site["tg"]) == {b["id"]: ("healthy", ""), c["id"]: ("healthy", "")}


def test_a_reload_drops_no_request_and_keeps_health(site, elbv2):
    """ModifyTargetGroup rewrites HAProxy's configuration and reloads it, under 10 requests a second for 5 s."""
    b, c = site["hosts"][1:]
    results: list = []
    prober = paced_gets(site["lb"]["DNSName"], 50, results)
    time.sleep(1)
    elbv2.modify_target_group(TargetGroupArn=site["tg"], HealthCheckTimeoutSeconds=3)
    assert health(elbv2, site["tg"]) == {b["id"]: ("healthy", ""), c["id"]: ("healthy", "")}
    prober.join(15)
    failed = [r for r in results if r[0] != 200]
    assert len(results) == 50 and not failed, f"{len(failed)} of {len(results)} failed: {failed[:3]}"
    cfg = (lb_dir(site["lb"]["LoadBalancerArn"]) / "haproxy.cfg").read_text()
    assert "timeout check 3s" in cfg


def test_a_terminated_instance_is_deregistered(site, ec2, elbv2):
    b, c = site["hosts"][1:]
    ec2.terminate_instances(InstanceIds=[c["id"]])
    # Draining at once; an idle target (no request in flight here) may have finished draining by the next read.
    assert health(elbv2, site["tg"]).get(c["id"], ("gone", "")) in (
        ("draining", "Target.DeregistrationInProgress"),
        ("gone", ""),
    )
    wait_health(elbv2, site["tg"], {c["id"]: None, b["id"]: "healthy"}, timeout=15)
    assert [get(site["lb"]["DNSName"])[1] for _ in range(4)] == [b["id"]] * 4


def test_a_new_load_balancer_is_provisioning_then_active(site, ec2, elbv2):
    """As on AWS: for a while (SANDBOX_ELB_PROVISIONING, 5 s by default) a new load balancer reads provisioning, its
    address does not answer and its targets are initial (Elb.RegistrationInProgress); then it is active and serves."""
    tag, c = uuid.uuid4().hex[:8], site["hosts"][0]  # a: in service (the third host is terminated by now)
    vpc_id = ec2.describe_subnets(SubnetIds=[site["subnets"][0]["SubnetId"]])["Subnets"][0]["VpcId"]
    tg = elbv2.create_target_group(Name=f"new-{tag}", Protocol="HTTP", Port=8080, VpcId=vpc_id,
                                   HealthCheckPath="/healthz", HealthCheckIntervalSeconds=5,
                                   HealthCheckTimeoutSeconds=2,
                                   TargetType="instance")["TargetGroups"][0]["TargetGroupArn"]  # fmt: skip
    lb = elbv2.create_load_balancer(Name=f"new-{tag}", Subnets=[s["SubnetId"] for s in site["subnets"]],
                                    SecurityGroups=[site["lb_group"]])["LoadBalancers"][0]  # fmt: skip
    created = time.monotonic()
    try:
        assert lb["State"]["Code"] == "provisioning"
        elbv2.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=80,
                              DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}])  # fmt: skip
        elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": c["id"]}])
        described = elbv2.describe_load_balancers(LoadBalancerArns=[lb["LoadBalancerArn"]])["LoadBalancers"][0]
        assert described["State"]["Code"] == "provisioning"  # moto's own answer would say active by now
        assert health(elbv2, tg)[c["id"]] == ("initial", "Elb.RegistrationInProgress")
        with pytest.raises(OSError):  # nothing listens on its address yet
            get(lb["DNSName"], timeout=2)
        wait_active(elbv2, lb["LoadBalancerArn"])
        took = time.monotonic() - created
        assert elb.DEFAULT_PROVISIONING - 0.5 <= took <= elb.DEFAULT_PROVISIONING + 3, took
        wait_health(elbv2, tg, {c["id"]: "healthy"}, timeout=15)
        assert get(lb["DNSName"]) == (200, c["id"])
    finally:
        elbv2.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
        # Its lingering interface keeps the group in use for SANDBOX_ELB_ENI_LINGER seconds (ResourceInUse), as on AWS.
        deadline = time.monotonic() + elb.DEFAULT_ENI_LINGER + 10
        while True:
            try:
                eventually(elbv2.delete_target_group, TargetGroupArn=tg)
                break
            except ClientError as err:
                if err.response["Error"]["Code"] != "ResourceInUse" or time.monotonic() > deadline:
                    raise
            time.sleep(0.5)


def test_delete_load_balancer_leaves_nothing(site, elbv2):
    lb = site["lb"]
    here = lb_dir(lb["LoadBalancerArn"])
    ns = net.ns_name(here.name)
    assert ns in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert haproxy_pids(here)
    elbv2.delete_listener(ListenerArn=site["listener"]["Listeners"][0]["ListenerArn"])
    elbv2.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
    assert not haproxy_pids(here)
    assert ns not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    routes = subprocess.run(["ip", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    assert f"{lb['DNSName']} " not in routes
    assert lb["DNSName"] not in net.load_record().get("host_routes", [])
    assert not here.exists()

    # One more load balancer with a listener, left running: `sandbox down` must remove it
    # (test_down_leaves_nothing in test_sandbox.py, which runs last, checks that nothing is left).
    name, subnet = f"left-{uuid.uuid4().hex[:8]}", site["subnets"][1]["SubnetId"]
    left = elbv2.create_load_balancer(Name=name, Subnets=[subnet], SecurityGroups=[site["lb_group"]])["LoadBalancers"][
        0
    ]
    elbv2.create_listener(LoadBalancerArn=left["LoadBalancerArn"], Protocol="HTTP", Port=80,
                          DefaultActions=[{"Type": "forward", "TargetGroupArn": site["tg"]}])  # fmt: skip
    assert haproxy_pids(lb_dir(left["LoadBalancerArn"]))
    wait_active(elbv2, left["LoadBalancerArn"])
    # Its listener answers: 503 until a target of the group has passed its health checks from this load balancer
    # (they run while it provisions, so that may already be the case), then a host's name.
    status, body = get(left["DNSName"])
    assert status == 503 or (status == 200 and body in {h["id"] for h in site["hosts"]}), (status, body)
