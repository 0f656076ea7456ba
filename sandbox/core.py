"""The state the sandbox's services share, beside moto's: hosts, image layers, firewalls, client tokens, and the
load balancers, certificates, keys and image lifecycle that EC2, ELB and Auto Scaling each see a side of.

The services (sandbox/services/) receive one :class:`Core`; none reaches into another."""

from __future__ import annotations

import base64
import functools
import ipaddress
import json
import logging
import shutil
import threading
import traceback
from pathlib import Path
from urllib.parse import unquote

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from . import acm, autoscaling, config, elb, iam, kms, net, strict
from .errors import SandboxError, ec2_error
from .faults import INTERNAL_AGENT, Chaos, Faults
from .hosts import Host
from .image_lifecycle import ImageLifecycle
from .s3 import ForeignBuckets

log = logging.getLogger("sandbox")

GONE = ("shutting-down", "terminated")  # hosts whose namespace is going or gone


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
        self.autoscaling = autoscaling.Engine(self)  # Auto Scaling groups' instances as real hosts
        # Buckets of other accounts (sandbox/s3.py): made through the control API, refused to this account.
        self.foreign_buckets = ForeignBuckets(config.ACCOUNT_ID)

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

    # ------------------------------------------------------------ hosts: an instance's real body
    def make_host(self, *, instance_id, region, image_id, ip, subnet_id, mac, zone, key_name, user_data) -> None:
        """Boot the host of a new instance of a sandbox image (``user_data`` base64, as the API takes it)."""
        ec2 = self.ec2(region)
        cidr = ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"][0]["CidrBlock"]
        netw = ipaddress.ip_network(cidr)
        public_key = None
        if key_name:
            kp = ec2.describe_key_pairs(KeyNames=[key_name], IncludePublicKey=True)["KeyPairs"]
            public_key = kp[0].get("PublicKey") if kp else None
        host = Host(
            instance_id=instance_id,
            region=region,
            layers=list(self.images[image_id]),
            ip=ip,
            prefix=netw.prefixlen,
            gateway=str(netw.network_address + 1),
            mac=mac,
            az=zone,
            public_key=public_key,
            user_data=base64.b64decode(user_data or b""),
        )
        self.hosts[instance_id] = host
        self.spawn(instance_id, self._boot, host)

    def _boot(self, host: Host) -> None:
        net.create_host_net(host.instance_id, host.ip, host.prefix, host.gateway, host.mac)
        self.refresh_firewalls(host.region, only=host.instance_id)  # its own rules before it boots
        self.refresh_firewalls_later(host.region)  # its address in the others' group-source rules
        host.start()

    def start_hosts(self, instance_ids: list[str]) -> None:
        for iid in instance_ids:
            host = self.hosts.get(iid)
            if host and host.state in ("stopped", "stopping"):
                host.state = "pending"
                self.spawn(iid, host.start)

    def stop_hosts(self, instance_ids: list[str]) -> None:
        for iid in instance_ids:
            host = self.hosts.get(iid)
            if host and host.state not in ("stopped", "terminated"):
                host.state = "stopping"
                self.spawn(iid, host.stop)

    def reboot_hosts(self, instance_ids: list[str]) -> None:
        for iid in instance_ids:
            host = self.hosts.get(iid)
            if host and host.state == "running":

                def reboot(h=host):
                    h.stop()
                    h.start()

                self.spawn(iid, reboot)

    def terminate_hosts(self, instance_ids: list[str]) -> None:
        for iid in instance_ids:
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

    # ------------------------------------------------------------ images: layers of hosts' disks
    def tag_snapshots(self, region, image_id, tags) -> None:
        img = self.ec2(region).describe_images(ImageIds=[image_id])["Images"][0]
        snaps = [
            m["Ebs"]["SnapshotId"] for m in img.get("BlockDeviceMappings", []) if m.get("Ebs", {}).get("SnapshotId")
        ]
        if snaps:
            self.ec2(region).create_tags(Resources=snaps, Tags=tags)

    def image_instance(self, instance_id: str, image_id: str, no_reboot: bool) -> None:
        """The new image ``image_id`` of a sandbox host: pending until its disk is copied into a layer."""
        host = self.hosts.get(instance_id)
        if not host:
            return
        self.pending_images.add(image_id)
        self.spawn(host.instance_id, self._snapshot, host, image_id, no_reboot)

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

    def copy_image_layers(self, source_id: str, image_id: str) -> None:
        if source_id in self.images:
            self.images[image_id] = list(self.images[source_id])

    def forget_image(self, image_id: str) -> None:
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

    # ------------------------------------------------------------ security groups -> iptables in each netns
    def ec2_changed(self) -> None:
        """An EC2 call other than a read was answered: what a firewall is made of may have changed."""
        with self._ec2_changes_lock:
            self._ec2_changes += 1

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
        self.autoscaling.shutdown()
        self.elb.shutdown()
        threads = []
        for host in list(self.hosts.values()):
            t = threading.Thread(target=host.destroy, daemon=True)
            t.start()
            threads.append(t)
        for t in threads:
            t.join(30)
