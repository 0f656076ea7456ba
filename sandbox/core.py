"""The WSGI middleware in front of moto: watches mutating EC2 calls, makes them real, fixes fidelity gaps."""

from __future__ import annotations

import base64
import contextlib
import functools
import ipaddress
import json
import logging
import re
import shutil
import socket
import threading
import time
import traceback
import uuid
import xml.etree.ElementTree as ET
from io import BytesIO
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from . import acm, config, elb, iam, kms, net, strict
from .errors import SandboxError
from .faults import ERRORS, INTERNAL_AGENT, Chaos, Faults, access_key_of, is_internal
from .hosts import Host
from .image_lifecycle import ImageLifecycle
from .s3 import ForeignBuckets
from .ssm import PublicParameters, is_ssm, ssm_names, ssm_region

log = logging.getLogger("sandbox")
NS = "{" + config.EC2_NS.rstrip("/") + "}"
ET.register_namespace("", config.EC2_NS.rstrip("/"))

GONE = ("shutting-down", "terminated")  # hosts whose namespace is going or gone
STATE_CODES = {
    "pending": 0,
    "running": 16,
    "shutting-down": 32,
    "terminated": 48,
    "stopping": 64,
    "stopped": 80,
}
_REGION_RE = re.compile(r"Credential=[^/]+/\d+/([a-z0-9-]+)/(?:ec2|elasticloadbalancing)/")
_PUBLIC_RES = [
    (
        re.compile(
            rb"<association><ipOwnerId>[^<]*</ipOwnerId><publicDnsName>[^<]*</publicDnsName>"
            rb"<publicIp>[^<]*</publicIp></association>"
        ),
        b"",
    ),
    (re.compile(rb"<ipAddress>[^<]*</ipAddress>"), b""),
    (re.compile(rb"<dnsName>ec2-[^<]*</dnsName>"), b"<dnsName/>"),
]


_PROFILE_RE = re.compile(rb"<iamInstanceProfile>\s*<arn>([^<]+)</arn>\s*<id>([^<]+)</id>", re.DOTALL)


def ec2_error(code: str, message: str, status: int = 400) -> tuple[int, bytes]:
    from xml.sax.saxutils import escape

    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Response><Errors><Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
        f"</Errors><RequestID>{uuid.uuid4()}</RequestID></Response>"
    )
    return status, body.encode()


class Core:
    """State the sandbox keeps beside moto: hosts, image layers, client tokens."""

    def __init__(self, port: int, base_layers: dict[str, list[str]], window: float = 0.0, seed: int = 0):
        self.port = port
        self.images: dict[str, list[str]] = dict(base_layers)  # ami id -> lower dirs, top first
        self.base_ids = set(base_layers)
        self.pending_images: set[str] = set()
        self.hosts: dict[str, Host] = {}
        self.tokens: dict[tuple[str, str], bytes] = {}
        self.token_lock = threading.Lock()
        self.oplocks: dict[str, threading.Lock] = {}
        self._clients: dict[tuple[str, str], object] = {}
        self.threads: list[threading.Thread] = []
        self._refresh_queued: set[str] = set()  # regions with a firewall refresh waiting to run
        self._refresh_lock = threading.Lock()
        # What the firewalls are made of (each live instance's groups, the groups' rules) read once per region and
        # shared by every refresh until an EC2 change: see _firewall_view.
        self._ec2_changes = 0
        self._ec2_changes_lock = threading.Lock()
        self._fw_views: dict[str, tuple] = {}
        self._fw_view_lock = threading.Lock()
        self.faults = Faults()
        self.chaos = Chaos()
        self.strict = strict.Strict(window, seed)
        self.gate = iam.Gate()
        self.admin_key: tuple[str, str] = (config.ACCESS_KEY, config.SECRET_KEY)
        self.role_creds: dict[tuple[str, str], iam.RoleCredentials] = {}  # (instance, role ARN) -> credentials
        self.elb = elb.Balancers(self)  # application load balancers' bodies (HAProxy), sandbox/elb.py
        # Deprecation, deregistration protection, what still names an image (sandbox/image_lifecycle.py).
        self.lifecycle = ImageLifecycle(self.ec2, ec2_error, self.strict.foreign_image)
        self.acm = acm.Certificates()  # imported certificates and their keys, for HTTPS listeners (sandbox/acm.py)
        self.acm.in_use = self.elb.certificate_users
        self.kms = kms.EbsKeys(self)  # EBS encryption by default and its KMS key, sandbox/kms.py

    def enforce_iam(self, policy_text: str) -> dict[str, tuple[str, str]]:
        """Make the IAM users, then check every request; the sandbox's own calls sign as the admin."""
        self.gate.profile_roles = self.profile_roles
        self.gate.role_trust = self.role_trust
        self.gate.resource_tags = self.resource_tags
        keys = self.gate.bootstrap(config.endpoint(self.port), policy_text)
        self.admin_key = keys[iam.ADMIN_USER]
        self._clients.clear()
        return keys

    # ------------------------------------------------------------ internal API client (to ourselves)
    def client(self, service: str, region: str = config.REGION):
        if (service, region) not in self._clients:
            self._clients[(service, region)] = boto3.client(
                service,
                region_name=region,
                endpoint_url=config.endpoint(self.port),
                aws_access_key_id=self.admin_key[0],
                aws_secret_access_key=self.admin_key[1],
                config=Config(retries={"max_attempts": 2}, user_agent_extra=INTERNAL_AGENT),
            )
        return self._clients[(service, region)]

    def ec2(self, region: str):
        return self.client("ec2", region)

    # ------------------------------------------------------------ instance profiles and their roles
    def instance_profile(self, ref: str) -> dict | None:
        """An instance profile by name or ARN (as RunInstances names it), or None if there is none."""
        name = ref.rsplit("/", 1)[-1] if ref.startswith("arn:") else ref
        try:
            profile = self.client("iam").get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "NoSuchEntity":
                return None
            raise
        if ref.startswith("arn:") and profile["Arn"] != ref:
            return None
        return profile

    def profile_roles(self, ref: str) -> list[str] | None:
        profile = self.instance_profile(ref)
        return None if profile is None else [r["Arn"] for r in profile.get("Roles", [])]

    @staticmethod
    def resource_tags(region: str, resource_id: str) -> dict[str, str]:
        """An EC2 resource's tags as moto holds them now (no consistency window: IAM reads the resource itself)."""
        from moto.ec2.models import ec2_backends

        try:
            return dict(ec2_backends[config.ACCOUNT_ID][region].tags.get(resource_id) or {})
        except KeyError:  # a region moto does not know
            return {}

    def role_trust(self, role_arn: str) -> dict | None:
        try:
            role = self.client("iam").get_role(RoleName=role_arn.rsplit("/", 1)[-1])["Role"]
        except ClientError:
            return None
        doc = role.get("AssumeRolePolicyDocument") or {}
        return json.loads(unquote(doc)) if isinstance(doc, str) else doc

    def role_credentials(self, instance_id: str, role_arn: str) -> dict:
        """What IMDS serves at ``iam/security-credentials/ROLE``: minted by STS AssumeRole, as EC2 does."""
        key = (instance_id, role_arn)
        with self.token_lock:
            creds = self.role_creds.get(key)
            if creds is None:

                def mint() -> dict:
                    sts = self.client("sts")
                    out = sts.assume_role(RoleArn=role_arn, RoleSessionName=instance_id,
                                          DurationSeconds=iam.ROLE_CREDENTIALS_SECONDS)  # fmt: skip
                    return out["Credentials"]

                creds = self.role_creds[key] = iam.RoleCredentials(mint, clock=lambda: self.gate.clock())
        doc = creds.get()
        access_key, expires = creds.expiry()
        self.gate.expires[access_key] = expires
        return doc

    @staticmethod
    def log_imds_failure(path: str, exc: Exception) -> None:
        log.warning("metadata %s: %s: %s", path, type(exc).__name__, exc)

    def instance_iam(self, inst: dict) -> dict:
        """The ``iam/`` part of an instance's metadata (empty without an instance profile, as on EC2)."""
        arn = (inst.get("IamInstanceProfile") or {}).get("Arn")
        profile = self.instance_profile(arn) if arn else None
        if profile is None:
            return {}
        info = {
            "Code": "Success",
            "LastUpdated": iam.imds_time(self.gate.clock()),
            "InstanceProfileArn": profile["Arn"],
            "InstanceProfileId": profile["InstanceProfileId"],
        }
        out = {"iam/info": json.dumps(info, indent=2)}
        for role in profile.get("Roles", []):
            out[f"iam/security-credentials/{role['RoleName']}"] = functools.partial(
                lambda iid, arn: json.dumps(self.role_credentials(iid, arn), indent=2), inst["InstanceId"], role["Arn"]
            )
        return out

    def spawn(self, instance_id: str, fn, *args) -> None:
        lock = self.oplocks.setdefault(instance_id, threading.Lock())

        def run():
            with lock:
                try:
                    fn(*args)
                except Exception:
                    log.error("host operation %s on %s failed:\n%s", fn.__name__, instance_id, traceback.format_exc())

        t = threading.Thread(target=run, name=f"{fn.__name__}-{instance_id}", daemon=True)
        self.threads = [x for x in self.threads if x.is_alive()] + [t]
        t.start()

    # ------------------------------------------------------------ before moto
    def before(self, action: str, params: dict, region: str) -> tuple[int, bytes] | dict | None:
        answered = self.lifecycle.before(action, params, region)
        if answered:
            return answered
        if action == "DeleteSecurityGroup":  # a load balancer's network interface may hold it
            return self.elb.refuse_ec2(action, params)
        if action == "RunInstances":
            encrypted = self.kms.before_run(params, region, params.get("_caller"))
            refused = self._before_run(encrypted or params, region)
            return encrypted if refused is None else refused
        if action == "CreateImage":
            name = params.get("Name", "")
            found = self.ec2(region).describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": [name]}])
            if found["Images"]:
                return ec2_error(
                    "InvalidAMIName.Duplicate",
                    f"AMI name {name} is already in use by AMI {found['Images'][0]['ImageId']}",
                )
            # moto fails (HTTP 500) on snapshot tag specifications: keep them for CreateTags afterwards.
            return _drop_snapshot_tags(params)
        return None

    def _before_run(self, params: dict, region: str):
        refused = self._check_zone(params, region) or self._check_profile(params)
        if refused:
            return refused
        image = params.get("ImageId", "")
        if image not in self.images:
            return None
        changed = False
        subnet = params.get("SubnetId") or params.get("NetworkInterface.1.SubnetId")
        ec2 = self.ec2(region)
        if not subnet:
            az = params.get("Placement.AvailabilityZone") or region + "a"
            subs = ec2.describe_subnets(
                Filters=[{"Name": "default-for-az", "Values": ["true"]}, {"Name": "availability-zone", "Values": [az]}]
            )["Subnets"]
            if not subs:
                return ec2_error("InvalidParameterValue", f"No default subnet for availability zone {az}")
            subnet = subs[0]["SubnetId"]
            if "NetworkInterface.1.DeviceIndex" not in params:
                params["SubnetId"] = subnet
                changed = True
        sub = ec2.describe_subnets(SubnetIds=[subnet])["Subnets"][0]
        vpc = ec2.describe_vpcs(VpcIds=[sub["VpcId"]])["Vpcs"][0]
        try:
            net.ensure_vpc_range(vpc["CidrBlock"])
        except SandboxError as exc:
            return ec2_error("InvalidParameterValue", str(exc))
        return params if changed else None

    def _check_profile(self, params: dict):
        """EC2 refuses an instance profile that does not exist (moto answers with IAM's NoSuchEntity)."""
        for field, what in (("Arn", "arn"), ("Name", "name")):
            ref = params.get(f"IamInstanceProfile.{field}")
            if ref and self.instance_profile(ref) is None:
                return ec2_error(
                    "InvalidParameterValue",
                    f"Value ({ref}) for parameter iamInstanceProfile.{what} is invalid. "
                    f"Invalid IAM Instance Profile {what if what == 'name' else 'ARN'}",
                )
        return None

    def _check_zone(self, params: dict, region: str):
        """EC2 refuses a type its zone does not offer (Unsupported), or a zone out of capacity (fault)."""
        ec2 = self.ec2(region)
        subnet = params.get("SubnetId") or params.get("NetworkInterface.1.SubnetId")
        zone = params.get("Placement.AvailabilityZone")
        if not zone and subnet:
            subs = ec2.describe_subnets(Filters=[{"Name": "subnet-id", "Values": [subnet]}])["Subnets"]
            zone = subs[0]["AvailabilityZone"] if subs else None
        zone = zone or region + "a"
        itype = params.get("InstanceType", "m1.small")
        offered = self.offering_zones(region, itype)
        if offered and zone not in offered:
            return ec2_error("Unsupported", strict.unsupported_message(itype, zone, offered))
        if self.faults.take_zone(zone):
            return ec2_error("InsufficientInstanceCapacity", strict.capacity_message(itype, zone), 500)
        return None

    def offering_zones(self, region: str, instance_type: str) -> list[str]:
        pages = (
            self.ec2(region)
            .get_paginator("describe_instance_type_offerings")
            .paginate(LocationType="availability-zone", Filters=[{"Name": "instance-type", "Values": [instance_type]}])
        )
        return sorted({o["Location"] for page in pages for o in page["InstanceTypeOfferings"]})

    def zones(self, region: str) -> list[str]:
        found = self.ec2(region).describe_availability_zones()["AvailabilityZones"]
        return sorted(z["ZoneName"] for z in found)

    # ------------------------------------------------------------ after moto
    def after(self, action: str, params: dict, region: str, body: bytes) -> bytes:
        if not action.startswith(("Describe", "Get")):  # it may have changed what a firewall is made of
            with self._ec2_changes_lock:
                self._ec2_changes += 1
        if action == "RunInstances":
            self.kms.after_run(params, region, body)
        if action == "ModifyEbsDefaultKmsKeyId":
            self.kms.after_modify(region, body)
        handler = getattr(self, f"_after_{action}", None)
        if handler:
            body = handler(params, region, body) or body
        if action in (
            "RunInstances",
            "DescribeInstances",
            "DescribeInstanceStatus",
            "StartInstances",
            "StopInstances",
            "TerminateInstances",
        ):
            for pattern, repl in _PUBLIC_RES:
                body = pattern.sub(repl, body)
            body = self._rewrite_states(body)
            body = self._rewrite_profiles(body)
            body = self.kms.rewrite(body, _set_state_reason)
        body = self.lifecycle.after(action, params, region, body)
        if action == "DescribeImages" and self.pending_images:
            body = self._rewrite_images(body)
        return body

    def _after_RunInstances(self, params, region, body):
        root = ET.fromstring(body)  # noqa: S314 - moto's own response, from this process
        for item in root.iter(NS + "item"):
            iid = item.findtext(NS + "instanceId")
            if not iid or item.findtext(NS + "imageId") not in self.images or self.kms.is_doomed(iid):
                continue  # (an instance EC2 cannot encrypt never boots)
            self._make_host(item, params, region)
        return None

    def _make_host(self, item, params, region) -> None:
        iid = item.findtext(NS + "instanceId")
        ami = item.findtext(NS + "imageId")
        ip = item.findtext(NS + "privateIpAddress")
        subnet_id = item.findtext(NS + "subnetId")
        mac = item.findtext(f"{NS}networkInterfaceSet/{NS}item/{NS}macAddress")
        az = item.findtext(f"{NS}placement/{NS}availabilityZone")
        key = item.findtext(NS + "keyName")
        ec2 = self.ec2(region)
        cidr = ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"][0]["CidrBlock"]
        netw = ipaddress.ip_network(cidr)
        public_key = None
        if key:
            kp = ec2.describe_key_pairs(KeyNames=[key], IncludePublicKey=True)["KeyPairs"]
            public_key = kp[0].get("PublicKey") if kp else None
        user_data = base64.b64decode(params.get("UserData", "") or b"")
        host = Host(
            instance_id=iid,
            region=region,
            layers=list(self.images[ami]),
            ip=ip,
            prefix=netw.prefixlen,
            gateway=str(netw.network_address + 1),
            mac=mac,
            az=az,
            public_key=public_key,
            user_data=user_data,
        )
        self.hosts[iid] = host
        self.spawn(iid, self._boot, host)

    def _boot(self, host: Host) -> None:
        net.create_host_net(host.instance_id, host.ip, host.prefix, host.gateway, host.mac)
        self.refresh_firewalls(host.region, only=host.instance_id)  # its own rules before it boots
        self.refresh_firewalls_later(host.region)  # its address in the others' group-source rules
        host.start()

    def _after_StartInstances(self, params, region, body):
        for iid in self._ids(params):
            host = self.hosts.get(iid)
            if host and host.state in ("stopped", "stopping"):
                host.state = "pending"
                self.spawn(iid, host.start)

    def _after_StopInstances(self, params, region, body):
        for iid in self._ids(params):
            host = self.hosts.get(iid)
            if host and host.state not in ("stopped", "terminated"):
                host.state = "stopping"
                self.spawn(iid, host.stop)

    def _after_RebootInstances(self, params, region, body):
        for iid in self._ids(params):
            host = self.hosts.get(iid)
            if host and host.state == "running":

                def reboot(h=host):
                    h.stop()
                    h.start()

                self.spawn(iid, reboot)

    def _after_TerminateInstances(self, params, region, body):
        for iid in self._ids(params):
            with self.token_lock:  # its role's credentials are no longer served (they stay valid until expiry)
                for key in [k for k in self.role_creds if k[0] == iid]:
                    self.role_creds.pop(key)
            self.elb.instance_gone(iid)
            host = self.hosts.get(iid)
            if host and host.state != "terminated":
                host.state = "shutting-down"

                def destroy(h=host):
                    h.destroy()
                    self.hosts.pop(h.instance_id, None)
                    self.gc_layers()
                    self.refresh_firewalls_later(h.region)

                self.spawn(iid, destroy)

    def _after_CreateImage(self, params, region, body):
        image_id = ET.fromstring(body).findtext(NS + "imageId")  # noqa: S314 - moto's own response
        tags = params.pop("_snapshot_tags", None)
        if tags and image_id:
            self._tag_snapshots(region, image_id, tags)
        host = self.hosts.get(params.get("InstanceId", ""))
        if not host or not image_id:
            return None
        no_reboot = params.get("NoReboot", "false").lower() == "true"
        self.pending_images.add(image_id)
        self.spawn(host.instance_id, self._snapshot, host, image_id, no_reboot)
        return None

    def _tag_snapshots(self, region, image_id, tags) -> None:
        img = self.ec2(region).describe_images(ImageIds=[image_id])["Images"][0]
        snaps = [
            m["Ebs"]["SnapshotId"] for m in img.get("BlockDeviceMappings", []) if m.get("Ebs", {}).get("SnapshotId")
        ]
        if snaps:
            self.ec2(region).create_tags(Resources=snaps, Tags=tags)

    def _snapshot(self, host: Host, image_id: str, no_reboot: bool) -> None:
        restart = host.state == "running" and not no_reboot
        log.info("image %s of %s (%s): %s", image_id, host.instance_id, host.state, "stop" if restart else "no stop")
        if restart:
            host.stop()
        config.LAYERS_DIR.mkdir(parents=True, exist_ok=True)
        final = config.LAYERS_DIR / image_id
        tmp = config.LAYERS_DIR / f".tmp-{image_id}"
        shutil.rmtree(tmp, ignore_errors=True)
        net.sh("cp", "-a", str(host.upper), str(tmp))
        tmp.rename(final)
        self.images[image_id] = [str(final), *host.layers]
        self.pending_images.discard(image_id)
        if restart:
            host.start()

    def _after_CopyImage(self, params, region, body):
        image_id = ET.fromstring(body).findtext(NS + "imageId")  # noqa: S314 - moto's own response
        source = params.get("SourceImageId", "")
        if image_id and source in self.images:
            self.images[image_id] = list(self.images[source])

    def _after_DeregisterImage(self, params, region, body):
        image_id = params.get("ImageId", "")
        if image_id in self.images and image_id not in self.base_ids:
            self.images.pop(image_id, None)
            self.gc_layers()

    def gc_layers(self) -> None:
        used = {layer for layers in self.images.values() for layer in layers}
        used |= {layer for h in self.hosts.values() if h.state != "terminated" for layer in h.layers}
        if not config.LAYERS_DIR.exists():
            return
        for layer in config.LAYERS_DIR.iterdir():
            if not layer.name.startswith(".tmp-") and str(layer) not in used:
                shutil.rmtree(layer, ignore_errors=True)

    def _after_AuthorizeSecurityGroupIngress(self, params, region, body):
        self.refresh_firewalls_later(region)

    _after_RevokeSecurityGroupIngress = _after_AuthorizeSecurityGroupIngress
    _after_ModifyInstanceAttribute = _after_AuthorizeSecurityGroupIngress
    _after_ModifyNetworkInterfaceAttribute = _after_AuthorizeSecurityGroupIngress

    @staticmethod
    def _ids(params: dict) -> list[str]:
        return [v for k, v in sorted(params.items()) if k.startswith("InstanceId.")]

    # ------------------------------------------------------------ security groups -> iptables in each netns
    def refresh_firewalls_later(self, region: str) -> None:
        """One refresh of the region's firewalls at a time; changes made while one waits share it."""
        with self._refresh_lock:
            if region in self._refresh_queued:
                return
            self._refresh_queued.add(region)

        def refresh_firewalls() -> None:
            with self._refresh_lock:
                self._refresh_queued.discard(region)
            self.refresh_firewalls(region)

        self.spawn("firewall-" + region, refresh_firewalls)

    def refresh_firewalls(self, region: str, only: str | None = None) -> None:
        """Security group rules into each live host's namespace (``only``: that host's alone)."""
        hosts = [h for h in list(self.hosts.values()) if h.region == region and h.state not in GONE]
        balancers = self.elb.members(region)
        if not hosts and not balancers:
            return
        groups_of, perms = self._firewall_view(region, hosts, balancers)
        peers: dict[str, list[str]] = {}
        members = [(h.instance_id, h.ip, h) for h in hosts] + [(key, ip, None) for key, ip, _ in balancers]
        for key, ip, _ in members:
            for g in groups_of.get(key, []):
                peers.setdefault(g, []).append(ip)
        for key, _, h in members:
            ns = net.ns_name(key)
            if (only and key != only) or not Path(f"/run/netns/{ns}").exists():
                continue
            rules = [p for g in groups_of.get(key, []) for p in perms.get(g, [])]
            try:
                net.apply_firewall(key, rules, peers)
            except SandboxError:
                # Terminated (or deleted) meanwhile, its namespace gone with it: nothing left to protect.
                if (h is not None and h.state in GONE) or not Path(f"/run/netns/{ns}").exists():
                    continue
                raise

    def _firewall_view(self, region: str, hosts: list, balancers: list) -> tuple[dict, dict]:
        """The security groups of each of ``hosts`` and ``balancers`` and the ingress rules of those groups.

        Read with one DescribeInstances of every live host and one DescribeSecurityGroups, and kept for the next
        refreshes as long as no EC2 call other than a read has been answered since and the hosts and balancers are
        the same: a fleet's boot refreshes each new host's firewall, and reading every instance of the region for each
        (N hosts, N reads of N instances) kept the endpoint busy serializing them while the fleet waited on it.
        One read at a time per sandbox; the refreshes waiting for it use its result.
        """
        key = (tuple(sorted(h.instance_id for h in hosts)), tuple((k, tuple(sorted(g))) for k, _, g in balancers))
        with self._fw_view_lock:
            with self._ec2_changes_lock:
                changes = self._ec2_changes
            cached = self._fw_views.get(region)
            if cached is not None and cached[0] == (changes, key):
                return cached[1], cached[2]
            ec2 = self.ec2(region)
            res = ec2.describe_instances(InstanceIds=list(key[0])) if hosts else {"Reservations": []}
            # A load balancer's address is a member of its security groups (instances admit it by group), and its
            # own groups' ingress rules guard it as they guard an instance.
            groups_of: dict[str, list[str]] = {k: sorted(groups) for k, _, groups in balancers}
            for r in res["Reservations"]:
                for inst in r["Instances"]:
                    gids = {g["GroupId"] for g in inst.get("SecurityGroups", [])}
                    for nic in inst.get("NetworkInterfaces", []):
                        gids |= {g["GroupId"] for g in nic.get("Groups", [])}
                    groups_of[inst["InstanceId"]] = sorted(gids)
            all_groups = sorted({g for gs in groups_of.values() for g in gs})
            perms = {}
            if all_groups:
                for sg in ec2.describe_security_groups(GroupIds=all_groups)["SecurityGroups"]:
                    perms[sg["GroupId"]] = sg.get("IpPermissions", [])
            self._fw_views[region] = ((changes, key), groups_of, perms)
            return groups_of, perms

    # ------------------------------------------------------------ response rewriting
    def _rewrite_states(self, body: bytes) -> bytes:
        if not self.hosts or not any(iid.encode() in body for iid in list(self.hosts)):
            return body
        root = ET.fromstring(body)  # noqa: S314 - moto's own response, from this process
        changed = False
        for tag in ("instanceState", "currentState"):
            for item in root.iter(NS + "item"):
                host = self.hosts.get(item.findtext(NS + "instanceId") or "")
                st = item.find(NS + tag)
                if host is None or st is None:
                    continue
                st.find(NS + "code").text = str(STATE_CODES[host.state])
                st.find(NS + "name").text = host.state
                changed = True
                if tag == "instanceState" and host.state_reason and host.state == "stopped":
                    _set_state_reason(item, *host.state_reason)
                if host.state == "pending":  # DescribeInstanceStatus: checks not passed yet
                    for check in ("systemStatus", "instanceStatus"):
                        status = item.find(f"{NS}{check}/{NS}status")
                        if status is not None:
                            status.text = "initializing"
        if not changed:
            return body
        return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root)

    def _rewrite_profiles(self, body: bytes) -> bytes:
        """IamInstanceProfile.Id is the profile's ID on EC2 (moto puts the association's ID there)."""
        if b"<iamInstanceProfile>" not in body:
            return body

        ids: dict[bytes, bytes] = {}  # one look-up per profile in an answer listing many instances

        def profile_id(match: re.Match) -> bytes:
            if match.group(1) not in ids:
                profile = self.instance_profile(match.group(1).decode())
                ids[match.group(1)] = profile["InstanceProfileId"].encode() if profile else match.group(2)
            pid = ids[match.group(1)]
            return match.group(0).replace(b"<id>" + match.group(2) + b"</id>", b"<id>" + pid + b"</id>")

        return _PROFILE_RE.sub(profile_id, body)

    def _rewrite_images(self, body: bytes) -> bytes:
        pending = set(self.pending_images)
        if not any(i.encode() in body for i in pending):
            return body
        root = ET.fromstring(body)  # noqa: S314 - moto's own response, from this process
        for item in root.iter(NS + "item"):
            if item.findtext(NS + "imageId") in pending and item.find(NS + "imageState") is not None:
                item.find(NS + "imageState").text = "pending"
        return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root)

    # ------------------------------------------------------------ metadata for the IMDS
    def metadata_for(self, ip: str) -> dict | None:
        host = next((h for h in list(self.hosts.values()) if h.ip == ip and h.state != "terminated"), None)
        if host is None:
            return None
        inst = self.ec2(host.region).describe_instances(InstanceIds=[host.instance_id])["Reservations"][0]["Instances"][
            0
        ]
        opts = inst.get("MetadataOptions", {})
        info = {
            "ami-id": inst["ImageId"],
            "instance-id": host.instance_id,
            "instance-type": inst.get("InstanceType", ""),
            "local-ipv4": host.ip,
            "local-hostname": f"{host.hostname}.ec2.internal",
            "hostname": f"{host.hostname}.ec2.internal",
            "mac": host.mac or "",
            "placement/availability-zone": host.az,
            "placement/region": host.region,
            "security-groups": "\n".join(g["GroupName"] for g in inst.get("SecurityGroups", [])),
            "reservation-id": "",
            "user-data": host.user_data.decode(errors="replace"),
            "_http_tokens": opts.get("HttpTokens", "optional"),
            "_http_endpoint": opts.get("HttpEndpoint", "enabled"),
            "_identity": {
                "accountId": config.ACCOUNT_ID,
                "architecture": "x86_64",
                "availabilityZone": host.az,
                "imageId": inst["ImageId"],
                "instanceId": host.instance_id,
                "instanceType": inst.get("InstanceType", ""),
                "privateIp": host.ip,
                "region": host.region,
            },
        }
        if host.public_key:
            info["public-keys/0/openssh-key"] = host.public_key
        info.update(self.instance_iam(inst))
        return info

    # ------------------------------------------------------------ shutdown
    def shutdown(self) -> None:
        self.elb.shutdown()
        threads = []
        for host in list(self.hosts.values()):
            t = threading.Thread(target=host.destroy, daemon=True)
            t.start()
            threads.append(t)
        for t in threads:
            t.join(30)


def _set_state_reason(item: ET.Element, code: str, message: str) -> None:
    """StateReason and StateTransitionReason of an instance that stopped by itself, as EC2 gives them."""
    for old in item.findall(NS + "stateReason"):
        item.remove(old)
    reason = ET.SubElement(item, NS + "stateReason")
    ET.SubElement(reason, NS + "code").text = code
    ET.SubElement(reason, NS + "message").text = message
    transition = item.find(NS + "reason")
    if transition is None:
        transition = ET.SubElement(item, NS + "reason")
    transition.text = message


def _drop_snapshot_tags(params: dict) -> dict | None:
    keep, snap_tags, changed = {}, [], False
    specs: dict[str, dict] = {}
    for k, v in params.items():
        m = re.match(r"TagSpecification\.(\d+)\.(.*)", k)
        if m:
            specs.setdefault(m.group(1), {})[m.group(2)] = v
        else:
            keep[k] = v
    n = 1
    for _, spec in sorted(specs.items()):
        if spec.get("ResourceType") == "snapshot":
            changed = True
            i = 1
            while f"Tag.{i}.Key" in spec:
                snap_tags.append({"Key": spec[f"Tag.{i}.Key"], "Value": spec.get(f"Tag.{i}.Value", "")})
                i += 1
            continue
        for sk, sv in spec.items():
            keep[f"TagSpecification.{n}.{sk}"] = sv
        n += 1
    if not changed:
        return None
    keep["_snapshot_tags"] = snap_tags
    return keep


_READ_ACTIONS = ("Describe", "Get", "List")
_AUDITED_RE = re.compile(r"^(?:i|vol|sg|ami|snap)-[0-9a-f]+$")


def _audit(action: str, region: str, params: dict, answer: tuple, environ: dict, internal: bool, ids=None) -> None:
    """One log line per changing EC2, ELB or SSM call (as CloudTrail records it): what, on which resources, by whom,
    with which outcome. It is what tells afterwards which client changed what when two views of a resource differ.
    ``ids``: the resources, when the request names them otherwise than by EC2 IDs (an SSM parameter's name)."""
    if ids is None:
        ids = sorted({v for k, v in params.items() if k != "Action" and _AUDITED_RE.match(v)})
    status, _headers, body = answer
    outcome = status.split()[0]
    if not status.startswith("200"):
        code = re.search(rb"<Code>([^<]+)</Code>|\"__type\": *\"(?:[^\"#]*#)?([^\"]+)\"", body or b"")
        outcome += f" {(code.group(1) or code.group(2)).decode(errors='replace')}" if code else ""
    who = "sandbox" if internal else access_key_of(environ) or "-"
    log.info("call %s %s %s -> %s (by %s)", region, action, ",".join(ids) or "-", outcome, who)


class Middleware:
    """WSGI app wrapping moto's: parse the EC2 Query request, call Core before/after, never leak HTML 500s."""

    def __init__(self, app, core: Core):
        self.app = app
        self.core = core
        # Debian's public parameters for the base images (sandbox/ssm.py), each naming its own region's image.
        self.ssm = PublicParameters(core.ec2, core.strict.foreign_image)
        # moto undoes a failed TransactWriteItems by restoring a copy of the tables taken when it began, which
        # would also undo other clients' writes made meanwhile (lost or phantom items when clones write at once):
        # DynamoDB requests are answered one at a time, as DynamoDB's own isolation guarantees.
        self.dynamodb_lock = threading.Lock()
        # Buckets of other accounts (sandbox/s3.py): made through the control API, refused to this account.
        self.foreign_buckets = ForeignBuckets(config.ACCOUNT_ID)

    def __call__(self, environ, start_response):
        try:
            status, headers, body = self._handle(environ)
        except _Drop:
            # Fault injection: close the connection without an answer; the client sees a connection error.
            sock = environ.get("werkzeug.socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            start_response("500 Dropped", [("Content-Length", "0")])
            return []
        except Exception as exc:
            log.error("unexpected failure:\n%s", traceback.format_exc())
            code, body = ec2_error("InternalError", f"sandbox: {type(exc).__name__}: {exc}", 500)
            status, headers = f"{code} Internal Server Error", [("Content-Type", "text/xml")]
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(body))))
        start_response(status, headers)
        return [body]

    def _replay(self, environ, region: str, stored: bytes) -> bytes:
        """The reservation a ClientToken made, with its instances' states as they are now (as EC2 answers)."""
        root = ET.fromstring(stored)  # noqa: S314 - moto's own response, kept by this process
        items = {
            el.findtext(f"{NS}instanceId"): el
            for el in root.iter(f"{NS}item")
            if el.find(f"{NS}instanceState") is not None
        }
        query = {"Action": "DescribeInstances", "Version": "2016-11-15"}
        query.update({f"InstanceId.{n}": iid for n, iid in enumerate(items, 1)})
        status, _headers, body = self._call_inner(dict(environ), urlencode(query).encode())
        if not status.startswith("200"):
            return self.core.after("DescribeInstances", {}, region, stored)
        now = ET.fromstring(self.core.after("DescribeInstances", {}, region, body))  # noqa: S314 - moto's
        for el in now.iter(f"{NS}item"):
            iid, state = el.findtext(f"{NS}instanceId"), el.find(f"{NS}instanceState")
            if iid in items and state is not None:
                old = items[iid].find(f"{NS}instanceState")
                old[:] = list(state)
        return ET.tostring(root, xml_declaration=True, encoding="UTF-8")

    def _call_inner(self, environ, raw: bytes):
        environ["wsgi.input"] = BytesIO(raw)
        environ["CONTENT_LENGTH"] = str(len(raw))
        captured = {}

        def sr(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        chunks = self.app(environ, sr)
        try:
            body = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
        return captured["status"], captured["headers"], body

    def _handle(self, environ):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_sandbox/"):
            return self._control(environ, raw)
        environ.pop("HTTP_X_MOTO_ACCOUNT_ID", None)  # moto's switch of account is the sandbox's alone
        auth = environ.get("HTTP_AUTHORIZATION", "")
        json_protocol = "HTTP_X_AMZ_TARGET" in environ
        service = (auth.partition("Credential=")[2].partition(",")[0].split("/")[3:4] or [""])[0]
        form = not json_protocol and service != "s3"  # S3 bodies are objects, not parameters
        params = dict(parse_qsl(raw.decode(errors="replace"), keep_blank_values=True)) if form else {}
        if self.core.gate.enabled and not path.startswith("/moto-api"):
            denied = self._authorize(environ, raw, params, service, json_protocol)
            if denied:
                return denied
        if service == "s3" and not is_internal(environ):
            refused = self.foreign_buckets.refusal(environ)
            if refused:
                return refused
        if service == "dynamodb":
            with self.dynamodb_lock:
                return self._call_inner(environ, raw)
        if is_ssm(environ):
            answer = self.ssm.answer(environ, raw, self._call_inner)
            action = environ.get("HTTP_X_AMZ_TARGET", "").rpartition(".")[2]
            if not action.startswith(_READ_ACTIONS):
                region = ssm_region(environ) or "-"
                _audit(action, region, {}, answer, environ, is_internal(environ), ssm_names(raw))
            return answer
        if service == "autoscaling":
            where = auth.partition("Credential=")[2].split("/")[2:3]
            refused = self.core.lifecycle.autoscaling(params, where[0] if where else config.REGION)
            return refused or self._call_inner(environ, raw)
        if acm.is_acm(environ):
            return self.core.acm.answer(environ, raw, self._call_inner)
        m = _REGION_RE.search(auth)
        if not m or environ.get("REQUEST_METHOD") != "POST":
            return self._call_inner(environ, raw)
        region = m.group(1)
        action = params.get("Action", "")
        internal = is_internal(environ)
        fault = None if internal else self.core.faults.take(action, access_key_of(environ))
        if fault:
            code, body = ec2_error(fault["code"], fault.get("message") or f"sandbox fault injected for {action}",
                                   int(fault.get("status", 503)))  # fmt: skip
            return f"{code} Fault", [("Content-Type", "text/xml")], body
        kind, delay = (None, 0.0) if internal else self.core.chaos.draw(action, access_key_of(environ))
        if delay:
            time.sleep(delay)
        if kind in ERRORS:
            code, body = ec2_error(*ERRORS[kind])
            return f"{code} Fault", [("Content-Type", "text/xml")], body
        if kind == "drop_before":
            log.info("chaos: dropped %s before it reached moto", action)
            raise _Drop
        if service == "elasticloadbalancing":
            answer = self._answer_elb(environ, raw, params, action, region)
        else:
            answer = self._answer(environ, raw, params, action, region, internal)
        if not action.startswith(_READ_ACTIONS):
            _audit(action, region, params, answer, environ, internal)
        if kind == "drop_after":
            log.info("chaos: dropped the answer to %s (%s) after moto acted", action, answer[0])
            raise _Drop
        return answer

    def _authorize(self, environ, raw: bytes, params: dict, service: str, json_protocol: bool):
        """IAM on the request as signed: None if allowed, else the service's error answer."""
        try:
            self.core.gate.check(environ, raw, params, internal=is_internal(environ))
        except iam.Denied as denied:
            log.info("IAM: %s %s", denied.code, denied.message.split(" Encoded ")[0])
            return iam.error_body(denied, service, json_protocol, environ.get("REQUEST_METHOD", "POST"))
        if service == "sts" and params.get("Action") == "DecodeAuthorizationMessage":
            return iam.decode_response(params)
        return None

    def _answer(self, environ, raw: bytes, params: dict, action: str, region: str, internal: bool = False):
        if not internal:
            refused = self.core.strict.check(action, params, region)
            if refused:
                code, body = ec2_error(*refused)
                return f"{code} Bad Request", [("Content-Type", "text/xml")], body
        token_key = None
        if action in ("RunInstances", "CopyImage") and params.get("ClientToken"):
            token_key = (
                (region, params["ClientToken"]) if action == "RunInstances" else (region, action, params["ClientToken"])
            )
        answered = self.core.kms.answer(action, region)  # what moto does not answer (the EBS default key)
        if answered is not None:
            return "200 OK", [("Content-Type", "text/xml")], answered
        if action == "RunInstances":  # who asks: EC2 uses KMS keys on the caller's behalf (sandbox/kms.py)
            params = {**params, "_caller": environ.get("bakery.caller")}
        with self.core.token_lock if token_key else _nullctx():
            if token_key and token_key in self.core.tokens:
                if action == "CopyImage":
                    return self._copy_replay(params, self.core.tokens[token_key])
                body = self._replay(environ, region, self.core.tokens[token_key])
                return "200 OK", [("Content-Type", "text/xml")], body
            pre = self.core.before(action, params, region)
            if isinstance(pre, tuple):  # an answer of the sandbox's own: mostly a refusal
                code, body = pre
                return f"{code} {'OK' if code == 200 else 'Bad Request'}", [("Content-Type", "text/xml")], body
            if isinstance(pre, dict):
                params = pre
                raw = urlencode({k: v for k, v in params.items() if not k.startswith("_")}).encode()
            status, headers, body = self._call_inner(environ, raw)
            code = int(status.split()[0])
            if code >= 500 and not body.lstrip().startswith(b"<?xml") and b"<Errors>" not in body[:500]:
                text = re.sub(rb"<[^>]+>", b" ", body).decode(errors="replace")
                text = " ".join(text.split())[:300] or "internal error"
                code, body = ec2_error("InternalError", f"moto could not handle {action}: {text}", 500)
                return "500 Internal Server Error", [("Content-Type", "text/xml")], body
            if code == 200:
                body = self.core.after(action, params, region, body)
                if token_key:
                    self.core.tokens[token_key] = _copy_request(params) + body if action == "CopyImage" else body
                if not internal:
                    self.core.strict.record(action, region, body)
                    body = self.core.strict.rewrite(action, region, body)
            return status, headers, body

    def _answer_elb(self, environ, raw: bytes, params: dict, action: str, region: str):
        """ELBv2 (moto's): the load balancers' bodies before and after; its errors in ELB's own shape."""
        pre = self.core.elb.before(action, params, region)
        if isinstance(pre, tuple):
            code, body = pre
            return f"{code} Bad Request", [("Content-Type", "text/xml")], body
        if isinstance(pre, dict):
            raw = urlencode(pre).encode()
        if isinstance(pre, str):  # the load balancer asked for exists with these settings: that one
            query = {"Action": "DescribeLoadBalancers", "Version": params.get("Version", "2015-12-01")}
            raw = urlencode({**query, "LoadBalancerArns.member.1": pre}).encode()
        status, headers, body = self._call_inner(environ, raw)
        if isinstance(pre, str) and status.startswith("200"):
            body = elb.Balancers.as_created(body)
        if status.startswith("200"):
            try:
                body = self.core.elb.after(action, pre if isinstance(pre, dict) else params, region, body)
            except SandboxError as exc:
                code, body = elb.elb_error("InternalFailure", f"sandbox: {exc}", 500)
                return f"{code} Internal Server Error", [("Content-Type", "text/xml")], body
        return status, headers, body

    @staticmethod
    def _copy_replay(params: dict, stored: bytes):
        """CopyImage with a used ClientToken: the same image if the request is the same, else a mismatch."""
        request, _, body = stored.partition(b"\n\n")
        if request != _copy_request(params)[:-2]:
            code, err = ec2_error(
                "IdempotentParameterMismatch",
                f"The client token {params['ClientToken']} has already been used with different parameters.",
            )
            return f"{code} Bad Request", [("Content-Type", "text/xml")], err
        return "200 OK", [("Content-Type", "text/xml")], body

    def _bad_zone(self, zone) -> str | None:
        if zone is None:
            return None
        region = str(zone)[:-1]
        try:
            known = self.core.zones(region)
        except Exception:  # an unknown region has no zones
            known = []
        if zone not in known:
            return f"unknown availability zone {zone!r} in a fault (known: {', '.join(known) or 'none in ' + region})"
        return None

    def _control(self, environ, raw: bytes):
        """Sandbox control API on the same port: /_sandbox/status, /_sandbox/faults (bounded fault injection)."""
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if path == "/_sandbox/status":
            out = {
                "hosts": {i: {"state": h.state, "ip": h.ip, "region": h.region} for i, h in self.core.hosts.items()},
                "pending_images": sorted(self.core.pending_images),
                # Resources the API does not show yet (eventual consistency): ID -> seconds until it does.
                "hidden": self.core.strict.consistency.hidden_now(),
                "faults": self.core.faults.list(),
                "chaos": self.core.chaos.status(),
            }
        elif path == "/_sandbox/faults" and method == "POST":
            spec = json.loads(raw or b"{}")
            bad = self._bad_zone(spec.get("zone"))
            if bad:
                return "400 Bad Request", [("Content-Type", "application/json")], json.dumps({"error": bad}).encode()
            out = self.core.faults.add(spec)
        elif path == "/_sandbox/faults" and method == "DELETE":
            self.core.faults.clear()
            out = {"faults": []}
        elif path == "/_sandbox/faults":
            out = {"faults": self.core.faults.list()}
        elif path == "/_sandbox/foreign-buckets" and method == "POST":
            base = {k: v for k, v in environ.items() if k.startswith(("wsgi.", "SERVER_")) or k == "REMOTE_ADDR"}
            try:
                out = self.foreign_buckets.add(
                    json.loads(raw or b"{}"), lambda env, body: self._call_inner({**base, **env}, body)
                )
            except (ValueError, TypeError) as exc:
                body = json.dumps({"error": str(exc)}).encode()
                return "400 Bad Request", [("Content-Type", "application/json")], body
        elif path == "/_sandbox/foreign-buckets":
            out = {"buckets": self.foreign_buckets.listed()}
        elif path == "/_sandbox/chaos" and method == "POST":
            try:
                out = self.core.chaos.configure(json.loads(raw or b"{}"))
            except (ValueError, TypeError) as exc:
                body = json.dumps({"error": str(exc)}).encode()
                return "400 Bad Request", [("Content-Type", "application/json")], body
        elif path == "/_sandbox/chaos" and method == "DELETE":
            out = self.core.chaos.off()
        elif path == "/_sandbox/chaos":
            out = self.core.chaos.status()
        else:
            return "404 Not Found", [("Content-Type", "application/json")], b'{"error": "not found"}'
        return "200 OK", [("Content-Type", "application/json")], json.dumps(out).encode()


def _copy_request(params: dict) -> bytes:
    """The parameters that make a CopyImage request what it is (EC2 compares them for a used token)."""
    same = {k: v for k, v in params.items() if k not in ("ClientToken", "Version") and not k.startswith("_")}
    return json.dumps(same, sort_keys=True).encode() + b"\n\n"


class _Drop(Exception):
    """Raised to close the client's connection without an answer."""


class _nullctx:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False
