"""How the sandbox's load balancer reads HAProxy (no root, no sandbox): matchers, stats, target health states.

The real HAProxy and hosts are in test_elb.py; this covers the mapping of every HAProxy server state to ELB's
target health (state, reason code), including the ones the real test reaches only by timing.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from sandbox import elb

GROUP = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef"


@pytest.mark.parametrize(
    ("codes", "regex"),
    [("200", "^(200)$"), ("200,202", "^(200|202)$"), ("200-203", "^(200|201|202|203)$"), ("", "^(200)$")],
)
def test_matcher_as_haproxy_status_regex(codes, regex):
    assert elb.matcher_regex(codes) == regex


def test_show_stat_is_read_by_backend_and_server():
    text = "# pxname,svname,scur,status,check_status\ng-1,s1,0,UP,L7OK\ng-1,s2,2,DOWN 1/2,L4CON\n\n"
    rows = elb._parse_stat(text)
    assert rows[("g-1", "s2")] == {"pxname": "g-1", "svname": "s2", "scur": "2", "status": "DOWN 1/2",
                                   "check_status": "L4CON"}  # fmt: skip


def _balancers(row: dict | None, host_state: str = "running"):
    core = SimpleNamespace(hosts={"i-1": SimpleNamespace(state=host_state)})
    lbs = elb.Balancers(core)
    group = elb.Group(arn=GROUP, region="us-east-1", port=80, interval=5, timeout=2, unhealthy=2)
    lb = elb.Balancer(arn="arn:lb", name="lb", region="us-east-1", ip="172.31.0.9", prefix=20, gateway="172.31.0.1",
                      eni="eni-1", groups=[], listeners={"arn:l": elb.Listener(80, [GROUP])},
                      proc=SimpleNamespace())  # fmt: skip
    target = elb.Target("i-1", 80, "172.31.0.5", 1)
    group.targets["i-1:80"] = target
    lbs.lbs[lb.arn], lbs.groups[GROUP] = lb, group
    if row is not None:
        lb.stats[(group.backend, "s1")] = row
    return lbs, group, target


@pytest.mark.parametrize(
    ("row", "seen_up", "settled", "state"),
    [
        (None, False, False, ("initial", "Elb.RegistrationInProgress")),
        ({"status": "MAINT"}, False, False, ("initial", "Elb.RegistrationInProgress")),
        ({"status": "DOWN 1/2", "check_status": "L7OK", "check_health": "1"}, False, True,
         ("initial", "Elb.InitialHealthChecking")),
        ({"status": "DOWN", "check_status": "L4CON", "check_health": "0"}, False, False,
         ("initial", "Elb.InitialHealthChecking")),
        ({"status": "DOWN", "check_status": "L4CON", "check_health": "0"}, False, True,
         ("unhealthy", "Target.FailedHealthChecks")),
        ({"status": "UP", "check_status": "L7OK"}, False, False, ("healthy", "")),
        ({"status": "UP 1/2", "check_status": "L7STS"}, True, True, ("healthy", "")),
        ({"status": "DOWN", "check_status": "L7STS", "check_code": "500", "check_health": "0"}, True, False,
         ("unhealthy", "Target.ResponseCodeMismatch")),
        ({"status": "DOWN", "check_status": "L4TOUT", "check_health": "0"}, True, False,
         ("unhealthy", "Target.Timeout")),
        ({"status": "DOWN", "check_status": "L7TOUT", "check_health": "0"}, True, False,
         ("unhealthy", "Target.Timeout")),
    ],
)  # fmt: skip
def test_haproxy_server_state_as_target_health(row, seen_up, settled, state):
    lbs, group, target = _balancers(row)
    target.seen_up = seen_up
    if settled:  # longer ago than the unhealthy threshold's checks take
        target.since = time.monotonic() - (group.interval * group.unhealthy + group.timeout + 1)
    assert lbs.health(group, target)[:2] == state


def test_response_code_mismatch_names_the_code():
    lbs, group, target = _balancers({"status": "DOWN", "check_status": "L7STS", "check_code": "404"})
    target.seen_up = True
    assert lbs.health(group, target)[2] == "Health checks failed with these codes: [404]"


def test_draining_unused_and_stopped():
    lbs, group, target = _balancers({"status": "UP"})
    target.drain_until = time.monotonic() + 10
    assert lbs.health(group, target) == elb.DRAINING
    lbs, group, target = _balancers({"status": "UP"}, host_state="stopped")
    assert lbs.health(group, target) == ("unused", "Target.InvalidState", "Target is in the stopped state")
    lbs, group, target = _balancers({"status": "UP"})
    lbs.lbs["arn:lb"].listeners.clear()  # no listener forwards to the group
    assert lbs.health(group, target) == elb.NOT_IN_USE


def test_draining_ends_when_no_load_balancer_uses_the_group_any_more():
    lbs, group, target = _balancers({"status": "DRAIN"})
    target.drain_until = time.monotonic() + 300
    lbs._forget_unused_drains()
    assert lbs.health(group, target) == elb.DRAINING  # still in use: it drains
    lbs.lbs.clear()  # its load balancer was deleted
    lbs._forget_unused_drains()
    assert group.targets == {}


def _poll(row: dict, seen_up: bool = False, draining: bool = False):
    """One poll of the load balancer's stats (``row`` for the target's slot); the HAProxy commands it sent."""
    lbs, group, target = _balancers(None)
    target.seen_up = seen_up
    if draining:
        target.drain_until = time.monotonic() + 300
    lb = lbs.lbs["arn:lb"]
    sent = []
    header = "# pxname,svname," + ",".join(row)

    def cli(command, timeout=2.0):
        if command.startswith("show stat"):
            return header + "\n" + f"{group.backend},s1," + ",".join(row.values()) + "\n"
        sent.append(command)
        return ""

    lb.cli = cli
    lbs.poll_once()
    return sent, lbs.health(group, target)[:2], target


def test_a_new_target_is_healthy_after_one_passed_check():
    """AWS: "After your target is registered, it must pass one health check to be considered healthy"."""
    sent, state, target = _poll({"status": "DOWN 1/2", "check_status": "L7OK", "check_health": "1", "weight": "0"})
    assert sent[0].endswith("/s1 health up"), sent
    assert any(c.startswith("set weight") and c.endswith("/s1 100%") for c in sent), sent
    assert state == ("healthy", "")
    assert target.seen_up


@pytest.mark.parametrize(
    ("row", "seen_up", "draining"),
    [
        # No check passed yet.
        ({"status": "DOWN", "check_status": "L4CON", "check_health": "0", "weight": "0"}, False, False),
        # An unhealthy target coming back needs HealthyThresholdCount checks in a row, as on AWS.
        ({"status": "DOWN 1/2", "check_status": "L7OK", "check_health": "1", "weight": "100"}, True, False),
        # Draining: never brought up again.
        ({"status": "DOWN 1/2", "check_status": "L7OK", "check_health": "1", "weight": "0"}, False, True),
    ],
)
def test_no_shortcut_for_targets_coming_back_or_draining(row, seen_up, draining):
    sent, _state, _target = _poll(row, seen_up=seen_up, draining=draining)
    assert not any("health up" in c for c in sent), sent


def _listener_params(**extra) -> dict:
    return {"LoadBalancerArn": "arn:lb", "Port": "443", "Protocol": "HTTPS",
            "SslPolicy": "ELBSecurityPolicy-TLS13-1-3-2021-06",
            "Certificates.member.1.CertificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/c1",
            "DefaultActions.member.1.Type": "forward", "DefaultActions.member.1.TargetGroupArn": GROUP,
            **extra}  # fmt: skip


def test_listeners_from_create_and_modify_requests():
    https = elb.Listener.from_params(_listener_params())
    assert (https.port, https.protocol, https.policy, https.groups, https.redirect) == (
        443, "HTTPS", "ELBSecurityPolicy-TLS13-1-3-2021-06", [GROUP], None)  # fmt: skip
    # ModifyListener names what changes: the rest stays.
    assert elb.Listener.from_params({"SslPolicy": "ELBSecurityPolicy-TLS13-1-2-2021-06"}, https).groups == [GROUP]
    redirect = elb.Listener.from_params({"Port": "80", "Protocol": "HTTP", "DefaultActions.member.1.Type": "redirect",
                                         "DefaultActions.member.1.RedirectConfig.Protocol": "HTTPS",
                                         "DefaultActions.member.1.RedirectConfig.Port": "443",
                                         "DefaultActions.member.1.RedirectConfig.StatusCode": "HTTP_301"})  # fmt: skip
    assert (redirect.groups, redirect.redirect) == ([], {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"})
    assert elb.Listener.from_params({"Port": "443", "Protocol": "HTTPS"}).policy == elb.DEFAULT_TLS_POLICY
    plain = elb.Listener.from_params({"Protocol": "HTTP", "Port": "8080"}, https)
    assert (plain.certificate, plain.policy, plain.groups) == ("", "", [GROUP])


def test_redirect_rules_fill_in_what_elb_keeps_from_the_request():
    listener = elb.Listener(80, [], redirect={"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_302"})
    base = "https://%[req.hdr(host),field(1,:)]:443/%[path,regsub(^/,)]"
    assert elb.redirect_rules(listener) == [
        f"  http-request redirect location {base}?%[query] code 302 if {{ query -m found }}",
        f"  http-request redirect location {base} code 302",
    ]
    fixed = elb.Listener(80, [], redirect={"Protocol": "HTTPS", "Host": "example.com", "Path": "/new", "Query": ""})
    assert elb.redirect_rules(fixed) == ["  http-request redirect location https://example.com:80/new code 301"]


def test_tls_listener_checks_and_haproxy_accepts_the_configuration(tmp_path, monkeypatch):
    from sandbox import acm

    ca = acm.ensure_ca(tmp_path / "ca.pem", tmp_path / "ca.key")
    pems = {"arn:aws:acm:us-east-1:123456789012:certificate/c1": ca.read_text() + (tmp_path / "ca.key").read_text()}
    core = SimpleNamespace(hosts={}, acm=SimpleNamespace(pem=pems.get))
    lbs = elb.Balancers(core)
    lbs.bodies = True
    assert b"SSLPolicyNotFound" in lbs.before("CreateListener", _listener_params(SslPolicy="Made-Up"), "us-east-1")[1]
    missing = _listener_params(**{"Certificates.member.1.CertificateArn": "arn:aws:acm:us-east-1:1:certificate/x"})
    assert b"CertificateNotFound" in lbs.before("CreateListener", missing, "us-east-1")[1]
    assert lbs.before("CreateListener", _listener_params(), "us-east-1") is None
    monkeypatch.setattr(elb, "LB_DIR", tmp_path / "lbs")
    group = elb.Group(arn=GROUP, region="us-east-1", port=80)
    lb = elb.Balancer(arn="arn:lb", name="lb", region="us-east-1", ip="172.31.0.9", prefix=20, gateway="172.31.0.1",
                      eni="eni-1", groups=[])  # fmt: skip
    lb.listeners = {"l1": elb.Listener.from_params(_listener_params()),
                    "l2": elb.Listener(80, [], redirect={"Protocol": "HTTPS", "Port": "443"})}  # fmt: skip
    lbs.lbs[lb.arn], lbs.groups[GROUP] = lb, group
    lb.dir.mkdir(parents=True)
    text = lbs._config(lb)
    assert "  bind 172.31.0.9:443 ssl crt " in text
    assert "ssl-min-ver TLSv1.3 ssl-max-ver TLSv1.3" in text
    assert "  http-request set-header X-Forwarded-Proto https" in text
    assert lbs.certificate_users("arn:aws:acm:us-east-1:123456789012:certificate/c1") == ["arn:lb"]
    (cert,) = lb.dir.glob("c-*.pem")
    assert oct(cert.stat().st_mode & 0o777) == "0o600"
    (tmp_path / "haproxy.cfg").write_text(text.replace(f"stats socket {lb.socket}", f"stats socket {tmp_path}/s"))
    import subprocess

    check = subprocess.run(["haproxy", "-c", "-f", str(tmp_path / "haproxy.cfg")], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_target_in_a_zone_the_load_balancer_does_not_enable_is_not_in_use():
    lbs, group, target = _balancers({"status": "UP", "check_status": "L7OK"})
    lbs.lbs["arn:lb"].zones = ["us-east-1a", "us-east-1b"]
    target.zone = "us-east-1b"
    assert lbs.health(group, target)[0] == "healthy"
    target.zone = "us-east-1c"
    assert lbs.health(group, target) == elb.NOT_IN_ZONE
    assert elb.NOT_IN_ZONE[2] == "Target is in an Availability Zone that is not enabled for the load balancer"


def test_a_deleted_load_balancers_interface_holds_its_groups_until_released():
    lbs, _group, _target = _balancers(None)
    lbs.lingering["arn:gone"] = ("eni-9", ["sg-1"], [GROUP], time.monotonic() + 20)
    status, body = lbs.refuse_ec2("DeleteSecurityGroup", {"GroupId": "sg-1"})
    assert status == 400 and b"<Code>DependencyViolation</Code>" in body and b"sg-1" in body
    assert lbs.refuse_ec2("DeleteSecurityGroup", {"GroupId": "sg-2"}) is None
    status, body = lbs._refuse_in_use(GROUP)
    assert b"<Code>ResourceInUse</Code>" in body
    deleted = []
    lbs.core.ec2 = lambda region: SimpleNamespace(delete_network_interface=lambda **kw: deleted.append(kw))
    lbs._release("arn:gone", "us-east-1")
    assert deleted == [{"NetworkInterfaceId": "eni-9"}]
    assert lbs.refuse_ec2("DeleteSecurityGroup", {"GroupId": "sg-1"}) is None and lbs._refuse_in_use(GROUP) is None


@pytest.mark.parametrize(
    ("environ", "zones", "linger"),
    [({}, {"us-east-1e"}, 20.0), ({"SANDBOX_ELB_CONSTRAINED_ZONES": "none", "SANDBOX_ELB_ENI_LINGER": "0"}, set(), 0.0),
     ({"SANDBOX_ELB_CONSTRAINED_ZONES": "us-east-1e, eu-west-1c"}, {"us-east-1e", "eu-west-1c"}, 20.0)],
)  # fmt: skip
def test_zone_and_linger_settings(environ, zones, linger):
    assert elb.constrained_from_env(environ) == zones
    assert elb.linger_from_env(environ) == linger


def test_bad_zone_and_linger_settings_are_one_line():
    with pytest.raises(elb.SandboxError, match="SANDBOX_ELB_CONSTRAINED_ZONES: 'east' is not an availability zone"):
        elb.constrained_from_env({"SANDBOX_ELB_CONSTRAINED_ZONES": "east"})
    with pytest.raises(elb.SandboxError, match="SANDBOX_ELB_ENI_LINGER: '-1' is not between 0 and 900 seconds"):
        elb.linger_from_env({"SANDBOX_ELB_ENI_LINGER": "-1"})
