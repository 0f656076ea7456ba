"""EC2: moto's answers made real (hosts, images, firewalls) and strict (eventual consistency, zones, IAM by
resource), idempotent by client token, with what moto gets wrong about instances and images fixed."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from urllib.parse import urlencode

from .. import config, net, strict
from ..errors import SandboxError, ec2_error
from .base import Answer, Request, Service, answer_of, region_of

NS = "{" + config.EC2_NS.rstrip("/") + "}"
ET.register_namespace("", config.EC2_NS.rstrip("/"))

STATE_CODES = {
    "pending": 0,
    "running": 16,
    "shutting-down": 32,
    "terminated": 48,
    "stopping": 64,
    "stopped": 80,
}
# No public addresses: the sandbox gives instances none, whatever moto makes up.
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
_INSTANCE_ANSWERS = (
    "RunInstances",
    "DescribeInstances",
    "DescribeInstanceStatus",
    "StartInstances",
    "StopInstances",
    "TerminateInstances",
)

# EC2 actions on an existing resource whose authorization names that resource (EC2's Service Authorization
# Reference, "Actions defined by Amazon EC2": resource types instance, security-group, image, snapshot), with the
# request parameter that names it; every other EC2 action is checked on "*" here.
RESOURCE_ACTIONS = {
    **dict.fromkeys(
        ("TerminateInstances", "StopInstances", "StartInstances", "RebootInstances", "ModifyInstanceAttribute",
         "ModifyInstanceMetadataOptions", "CreateImage"),
        ("InstanceId", "instance"),
    ),
    **dict.fromkeys(
        ("AuthorizeSecurityGroupIngress", "AuthorizeSecurityGroupEgress", "RevokeSecurityGroupIngress",
         "RevokeSecurityGroupEgress", "DeleteSecurityGroup", "ModifySecurityGroupRules",
         "UpdateSecurityGroupRuleDescriptionsIngress", "UpdateSecurityGroupRuleDescriptionsEgress"),
        ("GroupId", "security-group"),
    ),
    **dict.fromkeys(
        ("DeregisterImage", "ModifyImageAttribute", "ResetImageAttribute", "EnableImageDeprecation",
         "DisableImageDeprecation", "EnableImageDeregistrationProtection", "DisableImageDeregistrationProtection"),
        ("ImageId", "image"),
    ),
    **dict.fromkeys(
        ("DeleteSnapshot", "ModifySnapshotAttribute", "ResetSnapshotAttribute"), ("SnapshotId", "snapshot")
    ),
}  # fmt: skip


def resource_ids(params: dict, name: str) -> list[str]:
    """The IDs a request names in ``name.N`` (in order) or in ``name`` (e.g. ``InstanceId.1``, ``GroupId``)."""
    pattern = re.compile(re.escape(name) + r"\.(\d+)")
    numbered = sorted((int(m[1]), v) for k, v in params.items() if (m := pattern.fullmatch(k)))
    if numbered:
        return [v for _n, v in numbered]
    return [params[name]] if params.get(name) else []


def ec2_arn(region: str, kind: str, resource_id: str) -> str:
    """An EC2 resource's ARN; images and snapshots have no account in theirs, instances and security groups do."""
    account = "" if kind in ("image", "snapshot") else config.ACCOUNT_ID
    return f"arn:aws:ec2:{region}:{account}:{kind}/{resource_id}"


class Ec2(Service):
    name = "ec2"
    takes_faults = True
    audited = True

    def owns(self, req: Request) -> bool:
        return req.service == "ec2" and req.region is not None and req.method == "POST"

    def error(self, code: str, message: str, status: int = 400, req: Request | None = None) -> Answer:
        return answer_of(*ec2_error(code, message, status))

    # ------------------------------------------------------------ IAM
    def requested(self, req: Request) -> list[tuple[str, str]]:
        action, params, region = req.action, req.params, region_of(req)
        param, kind = RESOURCE_ACTIONS.get(action, ("", ""))
        named = resource_ids(params, param) if param else []
        # The action is checked on each resource it names (its ARN and its tags), else on "*" (so is a security
        # group named by GroupName, in the default VPC).
        wanted = [(f"ec2:{action}", ec2_arn(region, kind, i)) for i in named] or [(f"ec2:{action}", "*")]
        if any(k.startswith("TagSpecification.") for k in params):
            wanted.append(("ec2:CreateTags", "*"))  # tagging at creation needs ec2:CreateTags, as on AWS
        profile = params.get("IamInstanceProfile.Arn") or params.get("IamInstanceProfile.Name")
        if profile:  # launching with a role passes it: iam:PassRole on the role
            wanted += [("iam:PassRole", role) for role in self.core.profile_roles(profile) or []]
        return wanted

    # ------------------------------------------------------------ strictness
    def refusal(self, req: Request) -> Answer | None:
        if req.internal:
            return None
        refused = self.core.strict.check(req.action, req.params, req.region)
        return self.error(*refused) if refused else None

    # ------------------------------------------------------------ the answer
    def answer(self, req: Request) -> Answer:
        core, action, region, params, raw = self.core, req.action, req.region, req.params, req.raw
        token_key = None
        if action in ("RunInstances", "CopyImage") and params.get("ClientToken"):
            token_key = (
                (region, params["ClientToken"]) if action == "RunInstances" else (region, action, params["ClientToken"])
            )
        answered = core.kms.answer(action, region)  # what moto does not answer (the EBS default key)
        if answered is not None:
            return "200 OK", [("Content-Type", "text/xml")], answered
        if action == "RunInstances":  # who asks: EC2 uses KMS keys on the caller's behalf (sandbox/kms.py)
            params = {**params, "_caller": req.environ.get("bakery.caller")}
        with core.token_lock if token_key else _nullctx():
            if token_key and token_key in core.tokens:
                if action == "CopyImage":
                    return self._copy_replay(params, core.tokens[token_key])
                return "200 OK", [("Content-Type", "text/xml")], self._replay(req, core.tokens[token_key])
            pre = self.before(action, params, region)
            if isinstance(pre, tuple):  # an answer of the sandbox's own: mostly a refusal
                return answer_of(*pre)
            if isinstance(pre, dict):
                params = pre
                raw = urlencode({k: v for k, v in params.items() if not k.startswith("_")}).encode()
            status, headers, body = self.moto(req.environ, raw)
            code = int(status.split()[0])
            if code >= 500 and not body.lstrip().startswith(b"<?xml") and b"<Errors>" not in body[:500]:
                text = re.sub(rb"<[^>]+>", b" ", body).decode(errors="replace")
                text = " ".join(text.split())[:300] or "internal error"
                return self.error("InternalError", f"moto could not handle {action}: {text}", 500)
            if code == 200:
                body = self.after(action, params, region, body)
                if token_key:
                    core.tokens[token_key] = _copy_request(params) + body if action == "CopyImage" else body
                if not req.internal:
                    core.strict.record(action, region, body)
                    body = core.strict.rewrite(action, region, body)
            return status, headers, body

    def _replay(self, req: Request, stored: bytes) -> bytes:
        """The reservation a ClientToken made, with its instances' states as they are now (as EC2 answers)."""
        root = ET.fromstring(stored)  # noqa: S314 - moto's own response, kept by this process
        items = {
            el.findtext(f"{NS}instanceId"): el
            for el in root.iter(f"{NS}item")
            if el.find(f"{NS}instanceState") is not None
        }
        query = {"Action": "DescribeInstances", "Version": "2016-11-15"}
        query.update({f"InstanceId.{n}": iid for n, iid in enumerate(items, 1)})
        status, _headers, body = self.moto(dict(req.environ), urlencode(query).encode())
        if not status.startswith("200"):
            return self.after("DescribeInstances", {}, req.region, stored)
        now = ET.fromstring(self.after("DescribeInstances", {}, req.region, body))  # noqa: S314 - moto's
        for el in now.iter(f"{NS}item"):
            iid, state = el.findtext(f"{NS}instanceId"), el.find(f"{NS}instanceState")
            if iid in items and state is not None:
                old = items[iid].find(f"{NS}instanceState")
                old[:] = list(state)
        return ET.tostring(root, xml_declaration=True, encoding="UTF-8")

    def _copy_replay(self, params: dict, stored: bytes) -> Answer:
        """CopyImage with a used ClientToken: the same image if the request is the same, else a mismatch."""
        request, _, body = stored.partition(b"\n\n")
        if request != _copy_request(params)[:-2]:
            return self.error(
                "IdempotentParameterMismatch",
                f"The client token {params['ClientToken']} has already been used with different parameters.",
            )
        return "200 OK", [("Content-Type", "text/xml")], body

    # ------------------------------------------------------------ before moto
    def before(self, action: str, params: dict, region: str) -> tuple[int, bytes] | dict | None:
        """A refusal (status, body), the request's parameters changed (a dict), or None: moto answers as asked."""
        core = self.core
        answered = core.lifecycle.before(action, params, region)
        if answered:
            return answered
        if action == "DeleteSecurityGroup":  # a load balancer's network interface may hold it
            return core.elb.refuse_ec2(action, params)
        if action == "RunInstances":
            encrypted = core.kms.before_run(params, region, params.get("_caller"))
            refused = self._before_run(encrypted or params, region)
            return encrypted if refused is None else refused
        if action == "CreateImage":
            name = params.get("Name", "")
            found = core.ec2(region).describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": [name]}])
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
        if image not in self.core.images:
            return None
        changed = False
        subnet = params.get("SubnetId") or params.get("NetworkInterface.1.SubnetId")
        ec2 = self.core.ec2(region)
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
            if ref and self.core.instance_profile(ref) is None:
                return ec2_error(
                    "InvalidParameterValue",
                    f"Value ({ref}) for parameter iamInstanceProfile.{what} is invalid. "
                    f"Invalid IAM Instance Profile {what if what == 'name' else 'ARN'}",
                )
        return None

    def _check_zone(self, params: dict, region: str):
        """EC2 refuses a type its zone does not offer (Unsupported), or a zone out of capacity (fault)."""
        ec2 = self.core.ec2(region)
        subnet = params.get("SubnetId") or params.get("NetworkInterface.1.SubnetId")
        zone = params.get("Placement.AvailabilityZone")
        if not zone and subnet:
            subs = ec2.describe_subnets(Filters=[{"Name": "subnet-id", "Values": [subnet]}])["Subnets"]
            zone = subs[0]["AvailabilityZone"] if subs else None
        zone = zone or region + "a"
        itype = params.get("InstanceType", "m1.small")
        offered = self.core.offering_zones(region, itype)
        if offered and zone not in offered:
            return ec2_error("Unsupported", strict.unsupported_message(itype, zone, offered))
        if self.core.faults.take_zone(zone):
            return ec2_error("InsufficientInstanceCapacity", strict.capacity_message(itype, zone), 500)
        return None

    # ------------------------------------------------------------ after moto
    def after(self, action: str, params: dict, region: str, body: bytes) -> bytes:
        """Moto's answer made real (hosts, images, firewalls) and corrected (states, addresses, profiles)."""
        core = self.core
        if not action.startswith(("Describe", "Get")):  # it may have changed what a firewall is made of
            core.ec2_changed()
        if action == "RunInstances":
            core.kms.after_run(params, region, body)
        if action == "ModifyEbsDefaultKmsKeyId":
            core.kms.after_modify(region, body)
        handler = getattr(self, f"_after_{action}", None)
        if handler:
            body = handler(params, region, body) or body
        if action in _INSTANCE_ANSWERS:
            for pattern, repl in _PUBLIC_RES:
                body = pattern.sub(repl, body)
            body = self._rewrite_states(body)
            body = self._rewrite_profiles(body)
            body = core.kms.rewrite(body, _set_state_reason)
        body = core.lifecycle.after(action, params, region, body)
        if action == "DescribeImages" and core.pending_images:
            body = self._rewrite_images(body)
        return body

    def _after_RunInstances(self, params, region, body):
        root = ET.fromstring(body)  # noqa: S314 - moto's own response, from this process
        for item in root.iter(NS + "item"):
            iid = item.findtext(NS + "instanceId")
            if not iid or item.findtext(NS + "imageId") not in self.core.images or self.core.kms.is_doomed(iid):
                continue  # (an instance EC2 cannot encrypt never boots)
            self.core.make_host(
                instance_id=iid,
                region=region,
                image_id=item.findtext(NS + "imageId"),
                ip=item.findtext(NS + "privateIpAddress"),
                subnet_id=item.findtext(NS + "subnetId"),
                mac=item.findtext(f"{NS}networkInterfaceSet/{NS}item/{NS}macAddress"),
                zone=item.findtext(f"{NS}placement/{NS}availabilityZone"),
                key_name=item.findtext(NS + "keyName"),
                user_data=params.get("UserData", ""),
            )

    def _after_StartInstances(self, params, region, body):
        self.core.start_hosts(_ids(params))

    def _after_StopInstances(self, params, region, body):
        self.core.stop_hosts(_ids(params))

    def _after_RebootInstances(self, params, region, body):
        self.core.reboot_hosts(_ids(params))

    def _after_TerminateInstances(self, params, region, body):
        self.core.terminate_hosts(_ids(params))

    def _after_CreateImage(self, params, region, body):
        image_id = ET.fromstring(body).findtext(NS + "imageId")  # noqa: S314 - moto's own response
        tags = params.pop("_snapshot_tags", None)
        if tags and image_id:
            self.core.tag_snapshots(region, image_id, tags)
        if image_id:
            no_reboot = params.get("NoReboot", "false").lower() == "true"
            self.core.image_instance(params.get("InstanceId", ""), image_id, no_reboot)

    def _after_CopyImage(self, params, region, body):
        image_id = ET.fromstring(body).findtext(NS + "imageId")  # noqa: S314 - moto's own response
        if image_id:
            self.core.copy_image_layers(params.get("SourceImageId", ""), image_id)

    def _after_DeregisterImage(self, params, region, body):
        self.core.forget_image(params.get("ImageId", ""))

    def _after_AuthorizeSecurityGroupIngress(self, params, region, body):
        self.core.refresh_firewalls_later(region)

    _after_RevokeSecurityGroupIngress = _after_AuthorizeSecurityGroupIngress
    _after_ModifyInstanceAttribute = _after_AuthorizeSecurityGroupIngress
    _after_ModifyNetworkInterfaceAttribute = _after_AuthorizeSecurityGroupIngress

    # ------------------------------------------------------------ answers corrected
    def _rewrite_states(self, body: bytes) -> bytes:
        hosts = self.core.hosts
        if not hosts or not any(iid.encode() in body for iid in list(hosts)):
            return body
        root = ET.fromstring(body)  # noqa: S314 - moto's own response, from this process
        changed = False
        for tag in ("instanceState", "currentState"):
            for item in root.iter(NS + "item"):
                host = hosts.get(item.findtext(NS + "instanceId") or "")
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
                profile = self.core.instance_profile(match.group(1).decode())
                ids[match.group(1)] = profile["InstanceProfileId"].encode() if profile else match.group(2)
            pid = ids[match.group(1)]
            return match.group(0).replace(b"<id>" + match.group(2) + b"</id>", b"<id>" + pid + b"</id>")

        return _PROFILE_RE.sub(profile_id, body)

    def _rewrite_images(self, body: bytes) -> bytes:
        pending = set(self.core.pending_images)
        if not any(i.encode() in body for i in pending):
            return body
        root = ET.fromstring(body)  # noqa: S314 - moto's own response, from this process
        for item in root.iter(NS + "item"):
            if item.findtext(NS + "imageId") in pending and item.find(NS + "imageState") is not None:
                item.find(NS + "imageState").text = "pending"
        return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root)


def _ids(params: dict) -> list[str]:
    return [v for k, v in sorted(params.items()) if k.startswith("InstanceId.")]


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


def _copy_request(params: dict) -> bytes:
    """The parameters that make a CopyImage request what it is (EC2 compares them for a used token)."""
    same = {k: v for k, v in params.items() if k not in ("ClientToken", "Version") and not k.startswith("_")}
    return json.dumps(same, sort_keys=True).encode() + b"\n\n"


class _nullctx:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False
