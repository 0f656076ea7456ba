"""Application load balancers with a real body: one HAProxy per load balancer, in its own network namespace.

moto answers the ELBv2 API; this module watches the calls that change what a load balancer does and makes them
real. The load balancer holds one address of its first subnet (a network interface moto allocates, so no
instance gets it), routed from the controller like an instance's; its ``DNSName`` in every answer IS that
address. Listeners are HAProxy frontends, target groups are backends of fixed server slots; targets are put in
and taken out of slots with HAProxy's runtime API (stats socket), so registering and deregistering never reload.
A listener change writes the configuration again and reloads seamlessly (master-worker, listening sockets handed
over, servers' health kept through a server-state file). ``DescribeTargetHealth`` is answered from HAProxy's own
health checks, read every half second by one poller thread, which also ends draining.

A new load balancer is ``provisioning`` for ``SANDBOX_ELB_PROVISIONING`` seconds (default 5; AWS takes minutes), as
on AWS: its state reads ``provisioning``, its address does not answer (HAProxy runs without frontends) and its
targets are ``initial`` (``Elb.RegistrationInProgress``); then it turns ``active`` and serves.

Zones, as on AWS: ``CreateLoadBalancer`` refuses a subnet in a constrained zone (``SANDBOX_ELB_CONSTRAINED_ZONES``,
default ``us-east-1e``) with ELB's ``ValidationError``, and a target in a zone the load balancer does not enable is
``unused`` (``Target.NotInUse``) and gets no request. After ``DeleteLoadBalancer`` its network interface lingers for
``SANDBOX_ELB_ENI_LINGER`` seconds (default 20; minutes on AWS): meanwhile ``DeleteSecurityGroup`` of its groups
answers ``DependencyViolation`` and ``DeleteTargetGroup`` of the groups it forwarded to ``ResourceInUse``.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

from . import config, net, strict
from .errors import SandboxError, ec2_error

log = logging.getLogger("sandbox")
ELB_XMLNS = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"
LB_DIR = config.STATE_DIR / "lbs"
SLOTS = 128  # servers per target group (HAProxy backend): the 64 hosts the sandbox holds, and a refresh batch as large
POLL = 0.5  # seconds between two reads of every load balancer's server states
DEFAULT_DELAY = 300  # deregistration_delay.timeout_seconds, as on AWS
DEFAULT_PROVISIONING = 5.0  # seconds a new load balancer is provisioning (SANDBOX_ELB_PROVISIONING)
MAX_PROVISIONING = 600.0
DEFAULT_ENI_LINGER = 20.0  # seconds a deleted load balancer's network interface stays (SANDBOX_ELB_ENI_LINGER)
MAX_ENI_LINGER = 900.0
DEFAULT_CONSTRAINED_ZONES = "us-east-1e"  # zones that cannot take a load balancer (SANDBOX_ELB_CONSTRAINED_ZONES)
_STATE_RE = re.compile(rb"<State>\s*<Code>([a-z_]+)</Code>")
_DNS_RE = re.compile(rb"<DNSName>([^<]+)</DNSName>")
_FORWARD_RE = re.compile(
    r"DefaultActions\.member\.\d+\.(TargetGroupArn|ForwardConfig\.TargetGroups\.member\.\d+\.TargetGroupArn)"
)

# Security policies of HTTPS listeners (Elastic Load Balancing's "Security policies for your Application Load
# Balancer"): the TLS versions each allows. The sandbox's HAProxy offers exactly these; ciphers stay OpenSSL's.
TLS_POLICIES = {
    **dict.fromkeys(("ELBSecurityPolicy-TLS13-1-3-2021-06", "ELBSecurityPolicy-TLS13-1-3-FIPS-2023-04"),
                    ("TLSv1.3", "TLSv1.3")),
    **dict.fromkeys(("ELBSecurityPolicy-TLS13-1-2-2021-06", "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
                     "ELBSecurityPolicy-TLS13-1-2-Ext1-2021-06", "ELBSecurityPolicy-TLS13-1-2-Ext2-2021-06",
                     "ELBSecurityPolicy-TLS13-1-2-FIPS-2023-04"), ("TLSv1.2", "TLSv1.3")),
    "ELBSecurityPolicy-TLS13-1-1-2021-06": ("TLSv1.1", "TLSv1.3"),
    "ELBSecurityPolicy-TLS13-1-0-2021-06": ("TLSv1.0", "TLSv1.3"),
    **dict.fromkeys(("ELBSecurityPolicy-TLS-1-2-2017-01", "ELBSecurityPolicy-TLS-1-2-Ext-2018-06",
                     "ELBSecurityPolicy-FS-1-2-2019-08", "ELBSecurityPolicy-FS-1-2-Res-2019-08",
                     "ELBSecurityPolicy-FS-1-2-Res-2020-10"), ("TLSv1.2", "TLSv1.2")),
    **dict.fromkeys(("ELBSecurityPolicy-TLS-1-1-2017-01", "ELBSecurityPolicy-FS-1-1-2019-08"), ("TLSv1.1", "TLSv1.2")),
    **dict.fromkeys(("ELBSecurityPolicy-2016-08", "ELBSecurityPolicy-2015-05", "ELBSecurityPolicy-TLS-1-0-2015-04",
                     "ELBSecurityPolicy-FS-2018-06"), ("TLSv1.0", "TLSv1.2")),
}  # fmt: skip
DEFAULT_TLS_POLICY = "ELBSecurityPolicy-2016-08"  # the API's default for an HTTPS listener given none

INITIAL = ("initial", "Elb.InitialHealthChecking", "Initial health checks in progress")
REGISTERING = ("initial", "Elb.RegistrationInProgress", "Target registration is in progress")
DRAINING = ("draining", "Target.DeregistrationInProgress", "Target deregistration is in progress")
NOT_IN_USE = ("unused", "Target.NotInUse", "Target group is not configured to receive traffic from the load balancer")
NOT_IN_ZONE = (
    "unused", "Target.NotInUse", "Target is in an Availability Zone that is not enabled for the load balancer"
)  # fmt: skip
NOT_REGISTERED = ("unused", "Target.NotRegistered", "Target is not registered to the target group")
TIMEOUT = ("unhealthy", "Target.Timeout", "Request timed out")
FAILED = ("unhealthy", "Target.FailedHealthChecks", "Health checks failed")


def provisioning_from_env(environ=os.environ) -> float:
    """Seconds a new load balancer reads ``provisioning`` (SANDBOX_ELB_PROVISIONING); SandboxError names a bad one."""
    return _seconds_from_env(environ, "SANDBOX_ELB_PROVISIONING", DEFAULT_PROVISIONING, MAX_PROVISIONING)


def linger_from_env(environ=os.environ) -> float:
    """Seconds a deleted load balancer's interface lingers (SANDBOX_ELB_ENI_LINGER); SandboxError names a bad one."""
    return _seconds_from_env(environ, "SANDBOX_ELB_ENI_LINGER", DEFAULT_ENI_LINGER, MAX_ENI_LINGER)


def _seconds_from_env(environ, name: str, default: float, maximum: float) -> float:
    try:
        return strict.parse_seconds(name, environ.get(name) or default, maximum)
    except ValueError as exc:
        raise SandboxError(str(exc)) from None


def constrained_from_env(environ=os.environ) -> frozenset[str]:
    """Zones that cannot take a load balancer (SANDBOX_ELB_CONSTRAINED_ZONES: names separated by commas; "none")."""
    value = environ.get("SANDBOX_ELB_CONSTRAINED_ZONES", DEFAULT_CONSTRAINED_ZONES).strip()
    zones = frozenset(z.strip() for z in value.split(",") if z.strip()) - {"none"}
    bad = sorted(z for z in zones if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d[a-z]", z))
    if bad:
        raise SandboxError(f"SANDBOX_ELB_CONSTRAINED_ZONES: {bad[0]!r} is not an availability zone name")
    return zones


def elb_error(code: str, message: str, status: int = 400) -> tuple[int, bytes]:
    body = (
        f'<ErrorResponse xmlns="{ELB_XMLNS}"><Error><Type>Sender</Type><Code>{escape(code)}</Code>'
        f"<Message>{escape(message)}</Message></Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    )
    return status, body.encode()


def matcher_regex(codes: str) -> str:
    """A target group's matcher (``200``, ``200,202``, ``200-299``) as HAProxy's status regular expression."""
    found: list[str] = []
    for part in (codes or "200").split(","):
        low, _, high = part.strip().partition("-")
        found += [str(c) for c in range(int(low), int(high or low) + 1)]
    return "^(" + "|".join(found) + ")$"


def _members(params: dict, prefix: str) -> list[str]:
    return [v for k, v in sorted(params.items(), key=lambda kv: _member_no(kv[0])) if re.fullmatch(prefix, k)]


def _member_no(key: str) -> int:
    m = re.search(r"member\.(\d+)", key)
    return int(m.group(1)) if m else 0


def _targets(params: dict) -> list[tuple[str, int | None]]:
    out = []
    n = 1
    while f"Targets.member.{n}.Id" in params:
        port = params.get(f"Targets.member.{n}.Port")
        out.append((params[f"Targets.member.{n}.Id"], int(port) if port else None))
        n += 1
    return out


def _redirect_config(params: dict) -> dict[str, str] | None:
    """The RedirectConfig of a listener's first default action when it is a redirect."""
    if params.get("DefaultActions.member.1.Type") != "redirect":
        return None
    prefix = "DefaultActions.member.1.RedirectConfig."
    return {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}


def redirect_rules(listener: Listener) -> list[str]:
    """HAProxy rules answering every request with the listener's redirect, its #{...} parts filled in as ELB does
    (the host without its port, the path without its leading slash; ``?`` only with a query)."""
    cfg = listener.redirect or {}
    fill = {"#{protocol}": listener.protocol.lower(), "#{port}": str(listener.port),
            "#{host}": "%[req.hdr(host),field(1,:)]", "#{path}": "%[path,regsub(^/,)]",
            "#{query}": "%[query]"}  # fmt: skip

    def part(name: str, default: str) -> str:
        text = cfg.get(name, default)
        for key, value in fill.items():
            text = text.replace(key, value)
        return text.replace(" ", "%20")

    base = f"{part('Protocol', '#{protocol}').lower()}://{part('Host', '#{host}')}:{part('Port', '#{port}')}"
    base += part("Path", "/#{path}")
    code = cfg.get("StatusCode", "HTTP_301").removeprefix("HTTP_")
    query = part("Query", "#{query}")
    rules = [f"  http-request redirect location {base}?{query} code {code} if {{ query -m found }}"] if query else []
    return [*rules, f"  http-request redirect location {base} code {code}"]


def _forward_groups(params: dict) -> list[str]:
    """Target groups a listener's default actions forward to (simple TargetGroupArn or a ForwardConfig)."""
    return [v for k, v in sorted(params.items()) if _FORWARD_RE.fullmatch(k)]


@dataclass
class Target:
    id: str
    port: int
    ip: str
    slot: int
    since: float = field(default_factory=time.monotonic)
    seen_up: bool = False  # healthy once since its registration (else: initial until it fails)
    zone: str = ""  # the instance's availability zone ("" for an IP target)
    drain_until: float | None = None  # draining when set


@dataclass
class Group:
    """A target group as HAProxy needs it (read from moto when a listener or a target needs it)."""

    arn: str
    region: str
    port: int
    path: str = "/"
    hc_port: str = "traffic-port"
    interval: int = 30
    timeout: int = 5
    healthy: int = 5
    unhealthy: int = 2
    matcher: str = "200"
    targets: dict[str, Target] = field(default_factory=dict)  # "id:port" -> target

    @property
    def backend(self) -> str:
        return "g-" + hashlib.sha1(self.arn.encode()).hexdigest()[:12]  # noqa: S324 - a name, not security

    def free_slot(self) -> int:
        used = {t.slot for t in self.targets.values()}
        for slot in range(1, SLOTS + 1):
            if slot not in used:
                return slot
        raise SandboxError(f"target group {self.arn} has all its {SLOTS} sandbox slots in use")


@dataclass
class Listener:
    """A listener as HAProxy needs it: its port and protocol, what its default action does, its TLS settings."""

    port: int
    groups: list[str]  # target groups it forwards to
    protocol: str = "HTTP"
    certificate: str = ""  # HTTPS: the ACM certificate's ARN
    policy: str = ""  # HTTPS: the security policy (TLS_POLICIES)
    redirect: dict[str, str] | None = None  # a redirect default action's RedirectConfig

    @classmethod
    def from_params(cls, params: dict, was: Listener | None = None) -> Listener:
        """From CreateListener's parameters, or ModifyListener's over the listener it changes."""
        new = cls(int(params.get("Port") or (was.port if was else 80)), list(was.groups) if was else [],
                  params.get("Protocol") or (was.protocol if was else "HTTP"),
                  params.get("Certificates.member.1.CertificateArn") or (was.certificate if was else ""),
                  params.get("SslPolicy") or (was.policy if was else ""), was.redirect if was else None)  # fmt: skip
        if was is None or any(k.startswith("DefaultActions.") for k in params):
            new.groups = _forward_groups(params)
            new.redirect = _redirect_config(params)
        if new.protocol != "HTTPS":  # a listener turned to HTTP gives its certificate and policy up
            new.certificate, new.policy = "", ""
        elif not new.policy:
            new.policy = DEFAULT_TLS_POLICY
        return new


@dataclass
class Balancer:
    arn: str
    name: str
    region: str
    ip: str
    prefix: int
    gateway: str
    eni: str
    groups: list[str]  # security group IDs
    subnets: list[str] = field(default_factory=list)
    zones: list[str] = field(default_factory=list)  # the availability zones it enables
    listeners: dict[str, Listener] = field(default_factory=dict)  # listener ARN -> what HAProxy's frontend does
    proc: subprocess.Popen | None = None
    stats: dict[tuple[str, str], dict] = field(default_factory=dict)  # (backend, server) -> show stat row
    active_at: float = 0.0  # monotonic time it turns active: HAProxy's configuration has its listeners from then on
    serving: bool = True  # set once HAProxy runs that configuration: it reads active (and serves) from then on

    @property
    def key(self) -> str:  # names its namespace (bks-lb-...) and veth, as an instance ID does for a host
        return "lb-" + hashlib.sha1(self.arn.encode()).hexdigest()[:12]  # noqa: S324 - a name, not security

    @property
    def dir(self) -> Path:
        return LB_DIR / self.key

    @property
    def socket(self) -> Path:
        return self.dir / "admin.sock"

    def group_arns(self) -> list[str]:
        return sorted({g for listener in self.listeners.values() for g in listener.groups})

    def cli(self, command: str, timeout: float = 2.0) -> str:
        """One command on HAProxy's runtime API (the worker's stats socket)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(self.socket))
            s.sendall(command.encode() + b"\n")
            chunks = []
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")


class Balancers:
    """Every load balancer body of the sandbox; ``core`` gives the internal API clients and the hosts."""

    def __init__(self, core):
        self.core = core
        self.bodies = False  # the sandbox's server turns them on; the API front without hosts stays API-only
        self.lbs: dict[str, Balancer] = {}
        self.groups: dict[str, Group] = {}
        self.lock = threading.RLock()
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()
        self.provisioning = provisioning_from_env()
        self.linger = linger_from_env()
        self.constrained = constrained_from_env()
        # Deleted load balancers whose interface still lingers: ARN -> (ENI, security groups, target groups, until).
        self.lingering: dict[str, tuple[str, list[str], list[str], float]] = {}

    # ------------------------------------------------------------ API hooks
    def before(self, action: str, params: dict, region: str):
        if action == "DeleteTargetGroup":
            return self._refuse_in_use(params.get("TargetGroupArn", ""))
        if action in ("CreateListener", "ModifyListener"):
            return self._check_tls(params) if self.bodies else None
        if action == "CreateLoadBalancer" and params.get("Type", "application") == "application":
            subnets = _members(params, r"Subnets\.member\.\d+") or _members(
                params, r"SubnetMappings\.member\.\d+\.SubnetId"
            )
            if not subnets:
                return None  # moto answers the error
            ec2 = self.core.ec2(region)
            found = ec2.describe_subnets(Filters=[{"Name": "subnet-id", "Values": subnets}])["Subnets"]
            refused = sorted({s["AvailabilityZone"] for s in found} & self.constrained)
            if refused:  # ELB's own words (a constrained zone; older accounts have default subnets there)
                return elb_error(
                    "ValidationError",
                    f"The following Availability Zones {', '.join(refused)} cannot be associated with a load balancer. "
                    "Please try a different Availability Zone.",
                )
            if not found or not self.bodies:
                return None
            same = next((lb for lb in list(self.lbs.values()) if lb.name == params.get("Name") and lb.region == region),
                        None)  # fmt: skip
            if same is not None:  # CreateLoadBalancer is idempotent on AWS: the same settings give the same one
                groups = _members(params, r"SecurityGroups\.member\.\d+")
                if sorted(subnets) != sorted(same.subnets) or (groups and sorted(groups) != sorted(same.groups)):
                    return elb_error("DuplicateLoadBalancerName",
                                     f"A load balancer with the same name '{same.name}' exists, but with different "
                                     "settings")  # fmt: skip
                return same.arn
            vpc = ec2.describe_vpcs(VpcIds=[found[0]["VpcId"]])["Vpcs"][0]
            try:
                net.ensure_vpc_range(vpc["CidrBlock"])
            except SandboxError as exc:
                return elb_error("InvalidConfigurationRequest", str(exc))
            if not any(k.startswith("SecurityGroups.member.") for k in params):
                # AWS gives an application load balancer the VPC's default security group when none is named.
                wanted = [{"Name": "vpc-id", "Values": [vpc["VpcId"]]}, {"Name": "group-name", "Values": ["default"]}]
                default = ec2.describe_security_groups(Filters=wanted)["SecurityGroups"]
                if default:
                    return {**params, "SecurityGroups.member.1": default[0]["GroupId"]}
        return None

    def _check_tls(self, params: dict):
        """ELB refuses a security policy it does not have, and a certificate ACM does not hold."""
        policy = params.get("SslPolicy")
        if policy and policy not in TLS_POLICIES:
            return elb_error("SSLPolicyNotFound", f"SSL policy '{policy}' not found")
        arn = params.get("Certificates.member.1.CertificateArn")
        if arn and self.core.acm.pem(arn) is None:
            return elb_error("CertificateNotFound", f"Certificate '{arn}' not found")
        return None

    def certificate_users(self, arn: str) -> list[str]:
        """The load balancers whose listeners use the certificate (ACM's InUseBy)."""
        with self.lock:
            lbs = list(self.lbs.values())
        return sorted(lb.arn for lb in lbs if any(x.certificate == arn for x in list(lb.listeners.values())))

    def _tls(self, lb: Balancer, listener: Listener) -> str:
        """An HTTPS listener's bind options: its certificate (with its key, written for HAProxy) and TLS versions."""
        if listener.protocol != "HTTPS":
            return ""
        pem = self.core.acm.pem(listener.certificate)
        if pem is None:
            raise SandboxError(f"load balancer {lb.name}: certificate {listener.certificate} is not in ACM")
        path = lb.dir / ("c-" + hashlib.sha1(listener.certificate.encode()).hexdigest()[:12] + ".pem")  # noqa: S324
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(pem)
        low, high = TLS_POLICIES.get(listener.policy, TLS_POLICIES[DEFAULT_TLS_POLICY])
        return f" ssl crt {path} ssl-min-ver {low} ssl-max-ver {high} alpn http/1.1"

    def after(self, action: str, params: dict, region: str, body: bytes) -> bytes:
        handler = getattr(self, f"_after_{action}", None) if self.bodies else None
        if handler:
            body = handler(params, region, body) or body
        if action in ("CreateLoadBalancer", "DescribeLoadBalancers"):
            body = self.rewrite_states(body)
        return self.rewrite_dns(body)

    def rewrite_states(self, body: bytes) -> bytes:
        """A load balancer still provisioning reads so (moto calls it active from its first description on)."""
        for lb in [lb for lb in list(self.lbs.values()) if not lb.serving]:
            tag = f"<LoadBalancerArn>{lb.arn}</LoadBalancerArn>".encode()
            start = body.find(tag)
            while start != -1:
                end = body.find(b"<LoadBalancerArn>", start + len(tag))
                state = _STATE_RE.search(body, start, end if end != -1 else len(body))
                if state:
                    body = body[: state.start(1)] + b"provisioning" + body[state.end(1) :]
                start = body.find(tag, start + len(tag))
        return body

    @staticmethod
    def as_created(body: bytes) -> bytes:
        """moto's DescribeLoadBalancers answer for one load balancer, as CreateLoadBalancer's answer."""
        body = body.replace(b"DescribeLoadBalancersResponse", b"CreateLoadBalancerResponse")
        return re.sub(rb"<NextMarker>[^<]*</NextMarker>", b"", body.replace(b"DescribeLoadBalancersResult",
                                                                            b"CreateLoadBalancerResult"))  # fmt: skip

    def instance_gone(self, instance_id: str) -> None:
        """A terminated instance is deregistered from its target groups (it drains), as on AWS."""
        with self.lock:
            for group in list(self.groups.values()):
                for target in list(group.targets.values()):
                    if target.id == instance_id and target.drain_until is None:
                        self._drain(group, target, self._delay(group.arn, group.region))

    def rewrite_dns(self, body: bytes) -> bytes:
        """Every DNSName is the load balancer's address (moto's invented host name resolves nowhere)."""
        if b"<DNSName>" not in body:
            return body
        by_dns = {_moto_dns(lb.name, lb.region).encode(): lb.ip.encode() for lb in list(self.lbs.values())}
        return _DNS_RE.sub(lambda m: b"<DNSName>" + by_dns.get(m.group(1), m.group(1)) + b"</DNSName>", body)

    def _after_CreateLoadBalancer(self, params, region, body):
        arn = _xml_text(body, "LoadBalancerArn")
        if not arn or arn in self.lbs or b"<Type>application</Type>" not in body:
            return None
        elbv2 = self.core.client("elbv2", region)
        lb = elbv2.describe_load_balancers(LoadBalancerArns=[arn])["LoadBalancers"][0]
        subnet_id = lb["AvailabilityZones"][0]["SubnetId"]
        ec2 = self.core.ec2(region)
        cidr = ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"][0]["CidrBlock"]
        groups = lb.get("SecurityGroups", [])
        eni = ec2.create_network_interface(
            SubnetId=subnet_id, Groups=groups, Description=f"ELB app/{lb['LoadBalancerName']}/{arn.rsplit('/', 1)[-1]}"
        )["NetworkInterface"]
        netw = ipaddress.ip_network(cidr)
        body_ = Balancer(arn=arn, name=lb["LoadBalancerName"], region=region, ip=eni["PrivateIpAddress"],
                         prefix=netw.prefixlen, gateway=str(netw.network_address + 1),
                         eni=eni["NetworkInterfaceId"], groups=groups,
                         subnets=[z["SubnetId"] for z in lb["AvailabilityZones"]],
                         zones=[z["ZoneName"] for z in lb["AvailabilityZones"]],
                         active_at=time.monotonic() + self.provisioning,
                         serving=self.provisioning == 0)  # fmt: skip
        with self.lock:
            self.lbs[arn] = body_
            self._start(body_)
        self.core.refresh_firewalls_later(region)
        log.info("load balancer %s: HAProxy on %s (namespace %s)", body_.name, body_.ip, net.ns_name(body_.key))
        return None

    def _after_DeleteLoadBalancer(self, params, region, body):
        with self.lock:
            lb = self.lbs.pop(params.get("LoadBalancerArn", ""), None)
            self._forget_unused_drains()
        if lb is None:
            return None
        self._destroy(lb)
        # As on AWS, its network interface outlives it for a while (holding its security groups).
        with self.lock:
            self.lingering[lb.arn] = (lb.eni, list(lb.groups), lb.group_arns(), time.monotonic() + self.linger)
        timer = threading.Timer(self.linger, self._release, (lb.arn, region))
        timer.daemon = True
        timer.start()
        self.core.refresh_firewalls_later(region)
        return None

    def _release(self, arn: str, region: str) -> None:
        """A deleted load balancer's lingering interface goes at last."""
        with self.lock:
            gone = self.lingering.pop(arn, None)
        if gone is not None:
            with contextlib.suppress(Exception):
                self.core.ec2(region).delete_network_interface(NetworkInterfaceId=gone[0])

    def refuse_ec2(self, action: str, params: dict) -> tuple[int, bytes] | None:
        """EC2's DependencyViolation for a security group a load balancer's interface (live or lingering) holds."""
        group = params.get("GroupId", "")
        if action != "DeleteSecurityGroup" or not group:
            return None
        with self.lock:
            held = [lb.eni for lb in self.lbs.values() if group in lb.groups]
            held += [eni for eni, groups, _, _ in self.lingering.values() if group in groups]
        if not held:
            return None
        return ec2_error("DependencyViolation", f"resource {group} has a dependent object")

    def _refuse_in_use(self, group_arn: str) -> tuple[int, bytes] | None:
        """ResourceInUse for a target group a load balancer deleted a moment ago still counts as used."""
        with self.lock:
            used = any(group_arn in groups for _, _, groups, _ in self.lingering.values())
        if not used:
            return None
        return elb_error("ResourceInUse", f"Target group '{group_arn}' is currently in use by a listener or a rule")

    def _after_SetSecurityGroups(self, params, region, body):
        lb = self.lbs.get(params.get("LoadBalancerArn", ""))
        if lb is not None:
            lb.groups = _members(params, r"SecurityGroups\.member\.\d+")
            with contextlib.suppress(Exception):
                self.core.ec2(region).modify_network_interface_attribute(NetworkInterfaceId=lb.eni, Groups=lb.groups)
            self.core.refresh_firewalls_later(region)

    def _after_CreateListener(self, params, region, body):
        lb = self.lbs.get(params.get("LoadBalancerArn", ""))
        arn = _xml_text(body, "ListenerArn")
        if lb is None or not arn:
            return None
        with self.lock:
            for garn in _forward_groups(params):
                self._group(garn, region)
            lb.listeners[arn] = Listener.from_params(params)
            self._reload(lb)
        return None

    def _after_ModifyListener(self, params, region, body):
        arn = params.get("ListenerArn", "")
        with self.lock:
            for lb in self.lbs.values():
                if arn in lb.listeners:
                    listener = lb.listeners[arn] = Listener.from_params(params, lb.listeners[arn])
                    for garn in listener.groups:
                        self._group(garn, region)
                    self._reload(lb)

    def _after_DeleteListener(self, params, region, body):
        arn = params.get("ListenerArn", "")
        with self.lock:
            for lb in self.lbs.values():
                if lb.listeners.pop(arn, None) is not None:
                    self._reload(lb)
            self._forget_unused_drains()

    def _forget_unused_drains(self) -> None:
        """Targets draining in a group no load balancer uses any more have nothing left to drain."""
        for group in self.groups.values():
            if not self._lbs_using(group.arn):
                for key in [k for k, t in group.targets.items() if t.drain_until is not None]:
                    group.targets.pop(key)

    def _after_ModifyTargetGroup(self, params, region, body):
        arn = params.get("TargetGroupArn", "")
        with self.lock:
            if arn in self.groups:
                self._read_group(self.groups[arn], region)
                for lb in self.lbs.values():
                    if arn in lb.group_arns():
                        self._reload(lb)

    def _after_DeleteTargetGroup(self, params, region, body):
        with self.lock:
            self.groups.pop(params.get("TargetGroupArn", ""), None)

    def _after_RegisterTargets(self, params, region, body):
        with self.lock:
            group = self._group(params.get("TargetGroupArn", ""), region)
            wanted = _targets(params)
            ec2 = self.core.ec2(region)
            ids = sorted({tid for tid, _ in wanted if tid.startswith("i-")})
            ips = {tid: tid for tid, _ in wanted if not tid.startswith("i-")}  # target type ip: the ID is the address
            zones = {}
            for r in ec2.describe_instances(InstanceIds=ids)["Reservations"] if ids else []:
                for inst in r["Instances"]:
                    ips[inst["InstanceId"]] = inst.get("PrivateIpAddress", "")
                    zones[inst["InstanceId"]] = inst.get("Placement", {}).get("AvailabilityZone", "")
            for tid, port in wanted:
                port = port or group.port
                key = f"{tid}:{port}"
                target = group.targets.get(key)
                if target is not None and target.drain_until is None:
                    continue  # registered already: nothing changes (as on AWS)
                if target is None:
                    target = group.targets[key] = Target(tid, port, ips.get(tid, ""), group.free_slot(),
                                                         zone=zones.get(tid, ""))  # fmt: skip
                else:  # registered again while draining: back in service, health checks from the start
                    target.drain_until, target.seen_up, target.since = None, False, time.monotonic()
                for lb in self._lbs_using(group.arn):
                    self._enable(lb, group, target)
        return None

    def _after_DeregisterTargets(self, params, region, body):
        with self.lock:
            group = self.groups.get(params.get("TargetGroupArn", ""))
            if group is None:
                return None
            delay = self._delay(group.arn, region)
            for tid, port in _targets(params):
                target = group.targets.get(f"{tid}:{port or group.port}")
                if target is not None and target.drain_until is None:
                    self._drain(group, target, delay)
        return None

    def _drain(self, group: Group, target: Target, delay: int) -> None:
        lbs = self._lbs_using(group.arn)
        if not lbs:  # not in use: nothing to drain
            group.targets.pop(f"{target.id}:{target.port}")
            return
        target.drain_until = time.monotonic() + delay
        for lb in lbs:
            self._cli(lb, f"set server {group.backend}/s{target.slot} state drain")

    def _after_DescribeTargetHealth(self, params, region, body):
        with self.lock:
            group = self._group(params.get("TargetGroupArn", ""), region)
            asked = _targets(params)
            if asked:
                ports = [(tid, port or group.port) for tid, port in asked]
                found = [(tid, port, group.targets.get(f"{tid}:{port}")) for tid, port in ports]
            else:
                found = [(t.id, t.port, t) for t in group.targets.values()]
            members = []
            for tid, port, target in found:
                state = NOT_REGISTERED if target is None else self.health(group, target)
                hc_port = str(port) if group.hc_port == "traffic-port" else group.hc_port
                health = f"<State>{state[0]}</State>"
                if state[0] != "healthy":
                    health += f"<Reason>{state[1]}</Reason><Description>{escape(state[2])}</Description>"
                members.append(
                    f"<member><HealthCheckPort>{hc_port}</HealthCheckPort><Target><Id>{escape(tid)}</Id>"
                    f"<Port>{port}</Port></Target><TargetHealth>{health}</TargetHealth></member>"
                )
        return (
            f'<DescribeTargetHealthResponse xmlns="{ELB_XMLNS}"><DescribeTargetHealthResult>'
            f"<TargetHealthDescriptions>{''.join(members)}</TargetHealthDescriptions></DescribeTargetHealthResult>"
            f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
            "</DescribeTargetHealthResponse>"
        ).encode()

    # ------------------------------------------------------------ target health, from HAProxy
    def health(self, group: Group, target: Target) -> tuple[str, str, str]:
        if target.drain_until is not None:
            return DRAINING
        host = self.core.hosts.get(target.id)
        if host is not None and host.state != "running":
            what = "stopped" if host.state in ("stopped", "stopping") else host.state
            return ("unused", "Target.InvalidState", f"Target is in the {what} state")
        lbs = self._lbs_using(group.arn)
        if not lbs:
            return NOT_IN_USE
        if not any(_enables(lb, target) for lb in lbs):
            return NOT_IN_ZONE
        if not any(lb.serving for lb in lbs):  # no load balancer of the group serves yet
            return REGISTERING
        row = lbs[0].stats.get((group.backend, f"s{target.slot}"))
        if row is None:
            return REGISTERING
        status = row.get("status", "")
        if status.startswith("UP"):
            return ("healthy", "", "")
        if not status.startswith("DOWN"):
            return REGISTERING
        if not target.seen_up:
            going_up = int(row.get("check_health") or 0) > 0
            settling = time.monotonic() - target.since < group.interval * group.unhealthy + group.timeout
            if going_up or settling or not row.get("check_status"):
                return INITIAL
        check = row.get("check_status", "")
        if check == "L7STS":
            return ("unhealthy", "Target.ResponseCodeMismatch",
                    f"Health checks failed with these codes: [{row.get('check_code', '')}]")  # fmt: skip
        if check in ("L4TOUT", "L6TOUT", "L7TOUT"):
            return TIMEOUT
        return FAILED

    def poll_once(self) -> None:
        """Provisioning load balancers turn active when their time comes; every load balancer's server states into
        ``stats``; draining targets leave once idle or late."""
        with self.lock:
            for lb in list(self.lbs.values()):
                if not lb.serving and time.monotonic() >= lb.active_at:  # a failed reload is tried again
                    self._reload(lb)  # its listeners' frontends: the address answers from now on
                    lb.serving = True
                    log.info("load balancer %s: active", lb.name)
            lbs = [lb for lb in self.lbs.values() if lb.listeners and lb.proc is not None]
        for lb in lbs:
            try:
                rows = _parse_stat(lb.cli("show stat -1 4 -1"))
            except OSError:
                continue  # reloading or stopped meanwhile: read again next time
            with self.lock:
                lb.stats = rows
                for garn in lb.group_arns():
                    group = self.groups.get(garn)
                    if group is None:
                        continue
                    for target in list(group.targets.values()):
                        row = rows.get((group.backend, f"s{target.slot}"), {})
                        if self._first_check_passed(row, target):
                            # As on AWS, a newly registered target is healthy once it passes one health check
                            # (HealthyThresholdCount is for an unhealthy target to become healthy again): HAProxy
                            # would wait for `rise` checks, so it is told the server is up.
                            self._cli(lb, f"set server {group.backend}/s{target.slot} health up")
                            row["status"] = "UP"
                        if row.get("status", "").startswith("UP") and target.drain_until is None:
                            target.seen_up = True
                            if row.get("weight") == "0":  # up now: requests may come (see _enable)
                                self._cli(lb, f"set weight {group.backend}/s{target.slot} 100%")
                        if target.drain_until is not None:
                            busy = int(row.get("scur") or 0) + int(row.get("qcur") or 0)
                            if busy == 0 or time.monotonic() >= target.drain_until:
                                self._drained(group, target)

    @staticmethod
    def _first_check_passed(row: dict, target: Target) -> bool:
        """A target never up since its registration whose health checks have just passed once."""
        return (
            not target.seen_up
            and target.drain_until is None
            and row.get("status", "").startswith("DOWN")
            and row.get("check_status") == "L7OK"
            and int(row.get("check_health") or 0) > 0
        )

    def _drained(self, group: Group, target: Target) -> None:
        for lb in self._lbs_using(group.arn):
            self._cli(lb, f"set server {group.backend}/s{target.slot} state maint")
            self._cli(lb, f"shutdown sessions server {group.backend}/s{target.slot}")
        group.targets.pop(f"{target.id}:{target.port}", None)

    def _poll(self) -> None:
        while not self._stop.wait(POLL):
            try:
                self.poll_once()
            except Exception:  # one bad read must not end health reporting
                log.exception("load balancer poller")

    # ------------------------------------------------------------ groups
    def _group(self, arn: str, region: str) -> Group:
        group = self.groups.get(arn)
        if group is None:
            group = self.groups[arn] = Group(arn=arn, region=region, port=80)
            self._read_group(group, region)
        return group

    def _read_group(self, group: Group, region: str) -> None:
        tg = self.core.client("elbv2", region).describe_target_groups(TargetGroupArns=[group.arn])["TargetGroups"][0]
        group.port = int(tg.get("Port") or 80)
        group.path = tg.get("HealthCheckPath") or "/"
        group.hc_port = str(tg.get("HealthCheckPort") or "traffic-port")
        group.interval = int(tg.get("HealthCheckIntervalSeconds") or 30)
        group.timeout = int(tg.get("HealthCheckTimeoutSeconds") or 5)
        group.healthy = int(tg.get("HealthyThresholdCount") or 5)
        group.unhealthy = int(tg.get("UnhealthyThresholdCount") or 2)
        group.matcher = (tg.get("Matcher") or {}).get("HttpCode") or "200"

    def _delay(self, arn: str, region: str) -> int:
        attrs = self.core.client("elbv2", region).describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]
        for attr in attrs:
            if attr["Key"] == "deregistration_delay.timeout_seconds":
                return int(attr["Value"])
        return DEFAULT_DELAY

    def _lbs_using(self, group_arn: str) -> list[Balancer]:
        return [lb for lb in self.lbs.values() if group_arn in lb.group_arns() and lb.proc is not None]

    # ------------------------------------------------------------ security groups (the sandbox's firewall refresh)
    def members(self, region: str) -> list[tuple[str, str, list[str]]]:
        """(namespace key, address, security groups) of every load balancer of the region."""
        with self.lock:
            return [(lb.key, lb.ip, list(lb.groups)) for lb in self.lbs.values() if lb.region == region]

    # ------------------------------------------------------------ HAProxy
    def _config(self, lb: Balancer, known: dict | None = None) -> str:
        """HAProxy's configuration; ``known``: servers serving now (kept enabled, their health from the state file)."""
        known = known or {}
        lines = [
            "global",
            f"  stats socket {lb.socket} mode 600 level admin expose-fd listeners",
            f"  server-state-file {lb.dir / 'servers.state'}",
            f"  pidfile {lb.dir / 'haproxy.pid'}",
            "defaults",
            "  mode http",
            "  option forwardfor",
            "  timeout connect 5s",
            "  timeout client 60s",  # the load balancer's idle timeout (AWS default)
            "  timeout server 60s",
            "  load-server-state-from-file global",
            "backend bks-idle",  # a load balancer without listeners still runs (and answers its stats socket)
        ]
        by_port: dict[int, Listener] = {}
        for listener in lb.listeners.values():
            by_port.setdefault(listener.port, listener)
        provisioning = time.monotonic() < lb.active_at
        for port, listener in sorted(by_port.items()) if not provisioning else ():  # nothing listens yet
            lines += [f"frontend l{port}", f"  bind {lb.ip}:{port}{self._tls(lb, listener)}"]
            # As an application load balancer: the client's scheme and port for the targets (X-Forwarded-For is
            # added by `option forwardfor`, after what the client sent).
            lines += [f"  http-request set-header X-Forwarded-Proto {listener.protocol.lower()}",
                      f"  http-request set-header X-Forwarded-Port {port}"]  # fmt: skip
            if listener.redirect is not None:
                lines += redirect_rules(listener)
            elif listener.groups:
                lines.append(f"  default_backend {self.groups[listener.groups[0]].backend}")
            else:
                lines.append("  http-request return status 503")
        for garn in lb.group_arns():
            g = self.groups[garn]
            check_port = "" if g.hc_port == "traffic-port" else f" port {g.hc_port}"
            lines += [
                f"backend {g.backend}",
                "  balance roundrobin",
                "  option httpchk",
                f"  http-check send meth GET uri {g.path} ver HTTP/1.1 hdr Host {lb.ip}",
                f"  http-check expect rstatus {matcher_regex(g.matcher)}",
                f"  timeout check {g.timeout}s",
                f"  default-server inter {g.interval}s fall {g.unhealthy} rise {g.healthy} check{check_port}",
            ]
            by_slot = {t.slot: t for t in g.targets.values()}
            for slot in range(1, SLOTS + 1):
                t = by_slot.get(slot)
                addr = f"{t.ip}:{t.port}" if t else "0.0.0.0:80"
                off = "" if t and _serving(known.get((g.backend, f"s{slot}")), t) else " disabled"
                lines.append(f"  server s{slot} {addr}{off}")
        return "\n".join(lines) + "\n"

    def _start(self, lb: Balancer) -> None:
        lb.dir.mkdir(parents=True, exist_ok=True)
        net.create_host_net(lb.key, lb.ip, lb.prefix, lb.gateway, None)
        cfg = lb.dir / "haproxy.cfg"
        cfg.write_text(self._config(lb))
        logf = (lb.dir / "haproxy.log").open("ab")
        lb.proc = subprocess.Popen(
            ["ip", "netns", "exec", net.ns_name(lb.key), "haproxy", "-W", "-db", "-f", str(cfg)],
            stdout=logf,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        logf.close()
        net.record_add("lb_pids", [lb.proc.pid, str(cfg)])
        self._wait_socket(lb, None)
        if self._poller is None:
            self._poller = threading.Thread(target=self._poll, name="elb-poller", daemon=True)
            self._poller.start()

    def _wait_socket(self, lb: Balancer, old_pid: str | None, timeout: float = 10) -> None:
        """Until the (new) worker answers on the stats socket."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                info = lb.cli("show info", timeout=0.5)
                pid = re.search(r"^Pid: (\d+)", info, re.MULTILINE)
                if pid and pid.group(1) != old_pid:
                    return
            except OSError:
                pass
            if lb.proc is not None and lb.proc.poll() is not None:
                tail = (lb.dir / "haproxy.log").read_text(errors="replace")[-400:]
                raise SandboxError(f"HAProxy of load balancer {lb.name} exited ({lb.proc.returncode}): {tail}")
            if time.monotonic() > deadline:
                raise SandboxError(f"HAProxy of load balancer {lb.name} did not answer on {lb.socket}")
            time.sleep(0.05)

    def _reload(self, lb: Balancer) -> None:
        """The configuration again (listeners changed); the running servers keep their health (state file)."""
        if lb.proc is None:
            return
        state = self._cli(lb, "show servers state")
        known = _parse_servers_state(state)
        (lb.dir / "servers.state").write_text(state)
        old = re.search(r"^Pid: (\d+)", self._cli(lb, "show info"), re.MULTILINE)
        (lb.dir / "haproxy.cfg").write_text(self._config(lb, known))
        os.kill(lb.proc.pid, signal.SIGUSR2)
        self._wait_socket(lb, old.group(1) if old else None)
        for garn in lb.group_arns():
            g = self.groups[garn]
            for t in list(g.targets.values()):
                if not _serving(known.get((g.backend, f"s{t.slot}")), t):
                    self._enable(lb, g, t)  # new here: health checks from the start, no request before healthy
                elif t.drain_until is not None:
                    self._cli(lb, f"set server {g.backend}/s{t.slot} state drain")

    def _enable(self, lb: Balancer, group: Group, target: Target) -> None:
        """A slot for the target, given requests once it passed one health check (the poller brings it up).

        HAProxy takes a server leaving maintenance for up: it leaves with weight 0 (no request), its checks are
        restarted from down, and the poller gives it its weight once HAProxy says it is up.
        """
        server = f"{group.backend}/s{target.slot}"
        self._cli(lb, f"set server {server} state maint")
        if not _enables(lb, target):  # a zone the load balancer does not enable: no health check, no request
            return
        self._cli(lb, f"set server {server} addr {target.ip} port {target.port}")
        self._cli(lb, f"set weight {server} 0")
        self._cli(lb, f"set server {server} state ready; set server {server} health down")

    def _cli(self, lb: Balancer, command: str) -> str:
        try:
            return lb.cli(command)
        except OSError as exc:
            raise SandboxError(f"HAProxy of load balancer {lb.name}: {command!r} failed: {exc}") from exc

    def _destroy(self, lb: Balancer) -> None:
        proc, lb.proc = lb.proc, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            net.record_remove("lb_pids", [proc.pid, str(lb.dir / "haproxy.cfg")])
        net.delete_host_net(lb.key, lb.ip)
        shutil.rmtree(lb.dir, ignore_errors=True)
        log.info("load balancer %s: HAProxy stopped, namespace removed", lb.name)

    def shutdown(self) -> None:
        self._stop.set()
        with self.lock:
            lbs, self.lbs = list(self.lbs.values()), {}
        for lb in lbs:
            with contextlib.suppress(Exception):
                self._destroy(lb)


def _enables(lb: Balancer, target: Target) -> bool:
    """Whether the load balancer routes to the target's zone (an IP target, or a load balancer without zones: yes)."""
    return not target.zone or not lb.zones or target.zone in lb.zones


def _moto_dns(name: str, region: str) -> str:
    return f"{name}-1.{region}.elb.amazonaws.com"


def _xml_text(body: bytes, tag: str) -> str | None:
    m = re.search(rb"<" + tag.encode() + rb">([^<]+)</" + tag.encode() + rb">", body)
    return m.group(1).decode() if m else None


def _parse_stat(text: str) -> dict[tuple[str, str], dict]:
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("# "):
        return {}
    names = lines[0][2:].split(",")
    rows = {}
    for line in lines[1:]:
        row = dict(zip(names, line.split(","), strict=False))
        rows[(row.get("pxname", ""), row.get("svname", ""))] = row
    return rows


def _serving(was: dict | None, target: Target) -> bool:
    """Whether a slot served this target before a reload (not in forced maintenance, same address)."""
    return was is not None and not was["admin"] & 0x01 and was["addr"] == target.ip and was["port"] == target.port


def _parse_servers_state(text: str) -> dict[tuple[str, str], dict]:
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) > 6 and not line.startswith("#") and parts[0].isdigit():
            port = int(parts[18]) if len(parts) > 18 and parts[18].isdigit() else 0
            out[(parts[1], parts[3])] = {"addr": parts[4], "admin": int(parts[6]), "port": port}
    return out


def kill_recorded(pids: list) -> None:
    """After a crash: stop the HAProxy masters the record names (checking they are ours)."""
    for pid, cfg in pids:
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"haproxy" not in b" ".join(cmdline) or cfg.encode() not in cmdline:
                continue
            net.terminate(pid, grace=5)
