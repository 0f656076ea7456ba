#!/usr/bin/python
# Copyright: (c) 2026, bakery.ec2 contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: ec2_launch
short_description: Launch and keep a named group of EC2 instances, idempotently
version_added: 0.1.0
description:
  - Keeps exactly O(count) instances named O(name) (their C(Name) tag) in the region, launched from an image,
    with a hardware type, in a subnet, behind firewall rules and reachable with a key pair.
  - Instances in the C(pending), C(running), C(stopping) and C(stopped) states count. When O(subnet_id) is given,
    only instances in its VPC count.
  - Missing instances are launched in one RunInstances call with a deterministic client token and tagged at
    launch (instance and volumes), so a rerun after the controller died mid-task creates no duplicates.
    Surplus instances are terminated oldest first (by launch time, then ID).
  - New instances go to a zone that offers O(instance_type) (C(DescribeInstanceTypeOfferings)). When EC2 answers
    C(Unsupported) or C(InsufficientInstanceCapacity), the launch moves to the next zone that offers the type, with
    its own client token, unless O(availability_zone) or O(subnet_id) pins the zone.
  - Existing instances are reconciled in place where EC2 allows it, namely tags, state (stop and start),
    security groups, termination protection and, when O(metadata_options) is given, instance metadata
    options. What cannot change in place
    (image, subnet, availability zone, key, instance type, volumes) is reported in RV(drift) with a warning;
    instances are never replaced.
  - Every option is checked before anything changes (name, image, instance type with the image's architecture,
    ENA support and boot mode, the zone's offering of the type, subnet, security groups, key pair, CIDRs, ports,
    tags, user data size); bad input fails in one line naming the value.
author:
  - bakery.ec2 maintainers (@bakery-ec2)
options:
  name:
    description:
      - Name of the group. Instances carry it as their C(Name) tag; that tag is how they are found.
      - With O(firewall), also the name of the managed security group.
      - An empty or blank name is refused.
    type: str
    required: true
  count:
    description:
      - The exact number of instances to have. V(0) terminates them all but keeps the managed security group.
    type: int
    default: 1
  state:
    description:
      - V(running) launches, starts and keeps O(count) running instances.
      - V(stopped) does the same but stops them (new instances are launched, then stopped).
      - V(absent) terminates every instance named O(name) and deletes the security group this module
        manages for O(name) when no instance uses it any more.
    type: str
    choices: [running, stopped, absent]
    default: running
  image_id:
    description:
      - The AMI to launch from. Required when instances must be launched.
      - It must exist, be available, and suit O(instance_type) (architecture; ENA support when the type
        requires ENA; boot mode, C(legacy-bios) or C(uefi), when the type supports only the other). AMI IDs are
        per region, so an ID from another region is not found here.
      - V(resolve:ssm:NAME) reads the AMI ID from SSM parameter C(NAME) (for example
        V(resolve:ssm:/aws/service/debian/release/12/latest/amd64)) before anything else, so the drift check, check
        mode and the result know the real image; a rerun with the same value changes nothing until the parameter
        names another image. Needs C(ssm:GetParameter); the SSM endpoint is chosen as for
        O(bakery.ec2.ami_find#module:ssm_parameter).
    type: str
  instance_type:
    description:
      - The instance type, for example V(t3.micro) or V(t4g.small). It must be offered in the region, and in
        the zone of O(availability_zone) or O(subnet_id) when one is given; otherwise the task fails before
        anything is created, naming the zone and the type.
    type: str
    default: t3.micro
  subnet_id:
    description:
      - The subnet to launch into. When given, only instances in its VPC count as the group, and it pins the zone.
      - When not given, new instances go to the subnet of the newest instance of the group (in
        O(availability_zone) when given) or else to the default VPC's default subnet in O(availability_zone)
        (any zone when not given), always in a zone that offers O(instance_type). Without a pinned zone, the
        fallback when a zone has no capacity is the subnet of another zone in the same VPC, among the subnets of
        the group's instances and the default subnets.
    type: str
  availability_zone:
    description:
      - The availability zone to launch into, for example V(us-east-1a). Must agree with O(subnet_id).
      - It pins the zone, so no other zone is tried when this one has no capacity for O(instance_type).
    type: str
  key_name:
    description:
      - Name of the key pair for SSH. It must exist unless O(public_key) is given.
    type: str
  public_key:
    description:
      - An OpenSSH public key (C(ssh-rsa) or C(ssh-ed25519), as in an C(id_ed25519.pub) file).
      - The key pair O(key_name) is imported from it when missing. An existing key pair with another
        key fails the task; it is never overwritten.
      - With O(state=absent), the key pair O(key_name) is deleted when it holds this key and no instance
        (of any name) still uses it, so the task that imported a key can also remove it.
    type: str
  user_data:
    description:
      - User data (for example a cloud-init script), at most 16 KB once encoded as UTF-8.
      - Given only at launch; never returned nor logged.
    type: str
  iam_instance_profile:
    description:
      - Name or ARN of the IAM instance profile to give new instances.
    type: str
  volumes:
    description:
      - EBS volumes of new instances (the root volume is the one named like the image's root device).
      - For existing instances, differences are reported in RV(drift).
    type: list
    elements: dict
    suboptions:
      device_name:
        description: Device name, for example V(/dev/xvda) or V(/dev/sdf).
        type: str
        required: true
      size:
        description: Size in GiB. For the root volume, defaults to the image's snapshot size.
        type: int
      type:
        description: Volume type.
        type: str
        choices: [gp2, gp3, io1, io2, st1, sc1, standard]
        default: gp3
      iops:
        description: Provisioned IOPS (gp3, io1 and io2 only).
        type: int
      throughput:
        description: Throughput in MiB/s (gp3 only).
        type: int
      encrypted:
        description: Whether the volume is encrypted.
        type: bool
        default: true
      kms_key_id:
        description: KMS key to encrypt with; the account's default EBS key when not given.
        type: str
      delete_on_termination:
        description: Whether the volume is deleted with the instance.
        type: bool
        default: true
  metadata_options:
    description:
      - Instance metadata service settings, applied at launch.
      - On existing instances they are reconciled only when this option is given, and then only the suboptions
        it sets, so adopting an existing group never silently switches IMDSv1 off.
      - New instances get IMDSv2 required (O(metadata_options.http_tokens=required)) unless told otherwise.
    type: dict
    suboptions:
      http_tokens:
        description:
          - V(required) enforces IMDSv2 (session tokens); V(optional) also allows IMDSv1.
          - When not given, new instances get V(required) and existing ones are left alone.
        type: str
        choices: [required, optional]
      http_put_response_hop_limit:
        description:
          - Hop limit of metadata responses (PUT), 1 to 64; V(2) lets containers on the instance reach IMDSv2.
          - When not given, EC2's default applies to new instances and existing ones are left alone.
        type: int
      instance_metadata_tags:
        description: Whether instance tags are readable from the metadata service. Left alone when not given.
        type: str
        choices: [enabled, disabled]
  termination_protection:
    description:
      - Whether the API may not terminate the instances (C(DisableApiTermination)). Left alone when not given.
      - With V(false), protection is removed before surplus instances are terminated.
    type: bool
  security_groups:
    description:
      - Existing security groups (IDs or names in the instances' VPC) to attach.
      - When this or O(firewall) is given, the instances have exactly these groups plus the managed one.
    type: list
    elements: str
  firewall:
    description:
      - Ingress rules. The module keeps a security group named O(name) in the instances' VPC that holds
        exactly these rules (missing ones are added, others removed), attaches it to the instances, and deletes
        it when O(state=absent) leaves no instance using it. Outbound rules are left as EC2 creates them.
      - A warning is given when port 22 is open to the whole internet.
    type: list
    elements: dict
    suboptions:
      proto:
        description: Protocol. V(all) means every protocol and port.
        type: str
        choices: [tcp, udp, icmp, all]
        default: tcp
      ports:
        description:
          - A port (V(443)) or an inclusive range C(from-to) (V(8000-8080)), each 0 to 65535.
          - Required for V(tcp) and V(udp); not used with V(icmp) (all ICMP types) and V(all).
        type: raw
      cidr:
        description: A source CIDR (IPv4 or IPv6) or a list of them, for example V(203.0.113.0/24).
        type: list
        elements: str
      source_group:
        description:
          - A source security group, by ID or by name in the VPC. O(name) itself means the managed group,
            so the instances can reach each other.
        type: str
  wait:
    description:
      - Whether to wait until every instance is in the state asked (C(running), C(stopped), or C(terminated)).
      - Polling starts after a quarter of a second and backs off to every 2 seconds.
      - The wait for C(running) fails at once, with the instance's state reason, when an instance reaches
        C(stopped) (it failed to boot or shut down from inside), C(shutting-down) or C(terminated).
      - With C(false), the task still returns only once EC2 shows the instances it launched (EC2 is eventually
        consistent; bounded at 120 seconds), so that a next task finding them by name sees them.
    type: bool
    default: true
  wait_timeout:
    description:
      - How many seconds to wait. When they run out the task fails with the instance IDs and their last states.
    type: int
    default: 600
extends_documentation_fragment:
  - bakery.ec2.connection
  - bakery.ec2.tags
notes:
  - O(tags) are written at launch on the instances and their volumes and reconciled on existing instances.
    The C(Name) tag is always kept, and must equal O(name) when listed in O(tags).
  - The IAM instance profile is not checked beforehand (that would need IAM permissions); EC2 refuses an
    unknown one at launch.
  - EC2 is eventually consistent. A C(NotFound) answer about the security group, key pair or instances this
    task has just created is retried with backoff for up to two minutes; no other C(NotFound) is retried.
    C(RunInstances) is retried safely thanks to its client token.
  - A create retried after a lost answer (5xx or timeout) that meets C(InvalidGroup.Duplicate),
    C(InvalidKeyPair.Duplicate) or C(InvalidPermission.Duplicate) counts as done once the module has checked that
    what exists is what it asked for (its managed tag, the same public key, every rule present).
  - Instance, volume and group IDs go to EC2 in requests of at most 200 values each, so groups of any size work.
  - Needs C(ec2:DescribeInstanceTypeOfferings) in addition to the other EC2 permissions it uses.
  - Volumes are encrypted unless O(volumes[].encrypted=false); the root volume keeps the image's settings unless
    it is listed in O(volumes).
attributes:
  check_mode:
    support: full
    description: Nothing is changed; the result says what would change (RV(changes), RV(terminated_ids)).
  diff_mode:
    support: full
    description: Shows the count, instance IDs, states, tags and firewall rules before and after.
seealso:
  - module: bakery.ec2.ami_find
  - name: RunInstances
    description: The EC2 API call behind the launches, including client tokens.
    link: https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_RunInstances.html
"""

EXAMPLES = r"""
- name: Find the newest Debian 12 image
  bakery.ec2.ami_find:
    owners: ["136693071363"]
    name: debian-12-amd64-*
    architecture: x86_64
  register: base

- name: Three web servers in the default VPC, reachable over HTTP and SSH from the office
  bakery.ec2.ec2_launch:
    name: web
    count: 3
    image_id: "{{ base.image_id }}"
    instance_type: t3.small
    key_name: deploy
    public_key: "{{ lookup('ansible.builtin.file', '~/.ssh/id_ed25519.pub') }}"
    firewall:
      - ports: 80
        cidr: 0.0.0.0/0
      - ports: 22
        cidr: [203.0.113.0/24, 2001:db8::/32]
      - proto: all
        source_group: web
    tags:
      Role: web
  register: web

- name: Scale down to one (the two oldest are terminated)
  bakery.ec2.ec2_launch:
    name: web
    count: 1
    image_id: "{{ base.image_id }}"

- name: A database host in a given subnet with an existing group, data volume, IMDS settings and protection
  bakery.ec2.ec2_launch:
    name: db
    image_id: "{{ base.image_id }}"
    instance_type: r6i.large
    subnet_id: subnet-0123456789abcdef0
    security_groups: [sg-0123456789abcdef0, db-clients]
    key_name: deploy
    termination_protection: true
    volumes:
      - device_name: /dev/xvda
        size: 20
      - device_name: /dev/sdf
        size: 200
        type: gp3
        iops: 6000
        throughput: 250
        kms_key_id: alias/db
    metadata_options:
      http_tokens: required
      http_put_response_hop_limit: 2
      instance_metadata_tags: enabled
    user_data: |
      #cloud-config
      package_upgrade: true

- name: Two workers pinned to one zone (fails before creating anything if the zone does not offer the type)
  bakery.ec2.ec2_launch:
    name: worker
    count: 2
    image_id: "{{ base.image_id }}"
    instance_type: c7i.large
    availability_zone: us-east-1a

- name: Adopt an existing group and only raise its metadata hop limit (IMDSv1 setting left as it is)
  bakery.ec2.ec2_launch:
    name: legacy
    count: 4
    metadata_options:
      http_put_response_hop_limit: 2

- name: Workers from the image Debian's public SSM parameter names in this region (resolved by the module)
  bakery.ec2.ec2_launch:
    name: worker
    count: 2
    image_id: resolve:ssm:/aws/service/debian/release/12/latest/amd64
  register: workers  # workers.image_id is the AMI ID the parameter held

- name: Stop the web servers (kept, not terminated)
  bakery.ec2.ec2_launch:
    name: web
    count: 1
    state: stopped

- name: What would change? (check mode, with a diff)
  bakery.ec2.ec2_launch:
    name: web
    count: 2
    image_id: "{{ base.image_id }}"
    tags:
      Role: web
      Stage: prod
    purge_tags: false
  check_mode: true
  diff: true
  register: plan

- name: Remove the web servers and their firewall group
  bakery.ec2.ec2_launch:
    name: web
    state: absent

- name: Remove the bastion, its firewall group, and the key pair it imported once no instance uses it
  bakery.ec2.ec2_launch:
    name: bastion
    state: absent
    key_name: ops
    public_key: "{{ lookup('ansible.builtin.file', '~/.ssh/ops.pub') }}"
"""

RETURN = r"""
instances:
  description:
    - The instances of the group after the task, oldest first, with keys in snake_case as amazon.aws returns
      them and tags as a dict. User data is never included.
    - In check mode, the instances that exist and would be kept.
  returned: always
  type: list
  elements: dict
  contains:
    instance_id:
      description: The instance ID.
      type: str
      sample: i-0123456789abcdef0
    state:
      description: State name and code.
      type: dict
      sample: {"code": 16, "name": "running"}
    instance_type:
      description: The instance type.
      type: str
      sample: t3.micro
    image_id:
      description: The AMI the instance was launched from.
      type: str
      sample: ami-0123456789abcdef0
    launch_time:
      description: When the instance was launched.
      type: str
      sample: "2026-06-01T10:00:00+00:00"
    placement:
      description: Availability zone and tenancy.
      type: dict
      sample: {"availability_zone": "us-east-1a", "tenancy": "default"}
    private_ip_address:
      description: Private IPv4 address.
      type: str
      sample: 172.31.5.10
    private_dns_name:
      description: Private DNS name.
      type: str
      sample: ip-172-31-5-10.ec2.internal
    public_ip_address:
      description: Public IPv4 address, when it has one.
      type: str
      sample: 203.0.113.10
    public_dns_name:
      description: Public DNS name, when it has one.
      type: str
      sample: ec2-203-0-113-10.compute-1.amazonaws.com
    subnet_id:
      description: The subnet.
      type: str
      sample: subnet-0123456789abcdef0
    vpc_id:
      description: The VPC.
      type: str
      sample: vpc-0123456789abcdef0
    key_name:
      description: The key pair.
      type: str
      sample: deploy
    security_groups:
      description: Attached security groups.
      type: list
      elements: dict
      sample: [{"group_id": "sg-0123456789abcdef0", "group_name": "web"}]
    metadata_options:
      description: The instance metadata service settings.
      type: dict
      sample: {"http_tokens": "required", "http_put_response_hop_limit": 2, "http_endpoint": "enabled"}
    tags:
      description: Tags as a dict.
      type: dict
      sample: {"Name": "web", "Role": "web"}
instance_ids:
  description: IDs of the instances of the group after the task, oldest first.
  returned: always
  type: list
  elements: str
  sample: [i-0123456789abcdef0]
launched_ids:
  description: IDs of the instances launched by this task (empty in check mode).
  returned: always
  type: list
  elements: str
  sample: [i-0123456789abcdef1]
terminated_ids:
  description: IDs of the instances terminated by this task (in check mode, those that would be).
  returned: always
  type: list
  elements: str
  sample: [i-0123456789abcdef2]
drift:
  description: Differences that cannot be fixed in place; the instances are left as they are.
  returned: always
  type: list
  elements: dict
  sample: [{"instance_id": "i-0123456789abcdef0", "option": "image_id", "current": "ami-1", "wanted": "ami-2"}]
changes:
  description: What the task changed (or would change, in check mode), one line each.
  returned: always
  type: list
  elements: str
  sample: ["launch 2 instances", "authorize tcp 80 from 0.0.0.0/0 on web"]
image_id:
  description: The AMI that O(image_id) named (for V(resolve:ssm:NAME), the ID the parameter held).
  returned: when O(image_id) is given
  type: str
  sample: ami-0123456789abcdef0
security_group_id:
  description: ID of the security group managed for O(firewall) (absent in check mode before it exists).
  returned: when O(firewall) is given
  type: str
  sample: sg-0123456789abcdef0
"""

import base64
import hashlib
import ipaddress
import json
import struct

from ansible_collections.bakery.ec2.plugins.module_utils._aws import (
    CONSISTENCY_TIMEOUT,
    AwsError,
    WaitTimeout,
    check_id,
    chunks,
    compare_tags,
    dict_to_tags,
    tag_specifications,
    tags_to_dict,
    to_snake,
    validate_tags,
    wait_until,
)
from ansible_collections.bakery.ec2.plugins.module_utils._module import AwsModule
from ansible_collections.bakery.ec2.plugins.module_utils._ssm import (
    ParameterError,
    check_name,
    parameter_name,
    resolve_image,
)

LIVE_STATES = ("pending", "running", "stopping", "stopped")
USER_DATA_LIMIT = 16 * 1024
MANAGED_TAG = ("ManagedBy", "bakery.ec2.ec2_launch")
PROTOCOLS = {"tcp": "tcp", "udp": "udp", "icmp": "icmp", "all": "-1", "6": "tcp", "17": "udp", "1": "icmp"}
IOPS_TYPES = ("gp3", "io1", "io2")
# A group may still be held by the network interfaces of instances that just terminated.
GROUP_DELETE_TIMEOUT = 300
GROUP_AND_KEY_OPERATIONS = frozenset(
    (
        "import_key_pair",
        "delete_key_pair",
        "create_security_group",
        "authorize_security_group_ingress",
        "revoke_security_group_ingress",
        "delete_security_group",
    )
)
# NotFound codes of what this module creates, retried only right after it created them (eventual consistency).
GROUP_NOT_FOUND = ("InvalidGroup.NotFound", "InvalidGroupId.NotFound")
KEY_NOT_FOUND = ("InvalidKeyPair.NotFound",)
INSTANCE_NOT_FOUND = ("InvalidInstanceID.NotFound",)
# RunInstances errors after which another zone that offers the type may do.
ZONE_CAPACITY_CODES = ("Unsupported", "InsufficientInstanceCapacity")


class TaskError(Exception):
    """A failure the task reports in one line, with what was done so far."""


# --- pure helpers: validation ---------------------------------------------------------------------


def parse_ports(value, where):
    """``443`` / ``"443"`` / ``"8000-8080"`` -> ``(from, to)``; ValueError naming the value."""
    if isinstance(value, bool):
        raise ValueError(f"{where}: {value!r} is not a port or a from-to range")
    text = str(value).strip()
    parts = text.split("-") if "-" in text else [text, text]
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"{where}: {value!r} is not a port or a from-to range")
    low, high = (int(p) for p in parts)
    for port in (low, high):
        if port > 65535:
            within = "" if low == high else f" in {value!r}"
            raise ValueError(f"{where}: port {port}{within} is out of range 0-65535")
    if low > high:
        raise ValueError(f"{where}: {value!r} starts above where it ends")
    return low, high


def parse_cidr(value, where):
    """Canonical form of an IPv4 or IPv6 CIDR and its kind; ValueError naming the value."""
    try:
        net = ipaddress.ip_network(str(value).strip(), strict=True)
    except ValueError as err:
        raise ValueError(f"{where}: {value!r} is not a valid CIDR ({err})") from None
    return str(net), ("cidr" if net.version == 4 else "cidr6")


def firewall_atoms(rules, name):
    """Turn the ``firewall`` option into a set of atoms ``(proto, from, to, kind, source)``.

    ``kind`` is ``cidr``, ``cidr6`` or ``group``; a group source is still a reference (ID or name),
    ``name`` itself meaning the managed group. One atom is one permission EC2 stores.
    """
    atoms = set()
    for idx, rule in enumerate(rules or ()):
        where = f"firewall[{idx}]"
        proto = PROTOCOLS[rule["proto"]]
        if proto in ("tcp", "udp"):
            if rule.get("ports") is None:
                raise ValueError(f"{where}: ports is required with proto {rule['proto']}")
            low, high = parse_ports(rule["ports"], f"{where}.ports")
        else:
            if rule.get("ports") is not None:
                raise ValueError(f"{where}: ports {rule['ports']!r} cannot be used with proto {rule['proto']}")
            low, high = -1, -1
        cidrs = rule.get("cidr") or []
        source = rule.get("source_group")
        if bool(cidrs) == bool(source):
            raise ValueError(f"{where}: give exactly one of cidr or source_group")
        for cidr in cidrs:
            canonical, kind = parse_cidr(cidr, f"{where}.cidr")
            atoms.add((proto, low, high, kind, canonical))
        if source:
            if source.startswith("sg-") and source != name:
                error = check_id("security_group", source, f"{where}.source_group")
                if error:
                    raise ValueError(error)
            atoms.add((proto, low, high, "group", source))
    return atoms


def ssh_key_blob(text):
    """``(key_type, blob)`` of an OpenSSH ``ssh-rsa`` or ``ssh-ed25519`` public key line; ValueError if not one."""
    fields = str(text).strip().split()
    if len(fields) >= 2 and fields[0] in ("ssh-rsa", "ssh-ed25519"):
        try:
            blob = base64.b64decode(fields[1], validate=True)
        except ValueError:
            blob = b""
        if _ssh_strings(blob, 1)[:1] == [fields[0].encode()]:
            return fields[0], blob
    raise ValueError("public_key: not an OpenSSH ssh-rsa or ssh-ed25519 public key (the one line of a .pub file)")


def _ssh_strings(blob, count):
    """The first ``count`` length-prefixed strings of an SSH wire-format blob (fewer if it is short)."""
    out, pos = [], 0
    while len(out) < count and pos + 4 <= len(blob):
        (length,) = struct.unpack(">I", blob[pos : pos + 4])
        if pos + 4 + length > len(blob):
            break
        out.append(blob[pos + 4 : pos + 4 + length])
        pos += 4 + length
    return out


def _der(tag, content):
    length = len(content)
    if length < 0x80:
        head = bytes([length])
    else:
        raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
        head = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + head + content


def public_key_der(key_type, blob):
    """DER SubjectPublicKeyInfo of the key, which EC2 hashes for the fingerprint of imported keys."""
    if key_type == "ssh-ed25519":
        raw = _ssh_strings(blob, 2)[1]
        algorithm = _der(0x30, bytes.fromhex("06032b6570"))
    else:
        _kind, exponent, modulus = _ssh_strings(blob, 3)
        raw = _der(0x30, _der(0x02, modulus) + _der(0x02, exponent))
        algorithm = _der(0x30, bytes.fromhex("06092a864886f70d0101010500"))
    return _der(0x30, algorithm + _der(0x03, b"\x00" + raw))


def normalise_fingerprint(value):
    text = str(value).strip()
    for prefix in ("SHA256:", "MD5:"):
        if text.upper().startswith(prefix):
            text = text[len(prefix) :]
    if ":" in text:
        return text.replace(":", "").lower()
    return text.rstrip("=")


def key_fingerprints(key_type, blob):
    """Every form in which an EC2-like endpoint shows the fingerprint of this imported public key.

    AWS: MD5 of the DER public key for RSA, base64 SHA-256 of the key for ed25519 (as ``ssh-keygen -l``).
    moto uses SHA-256 of the DER key for ed25519. ``ssh-keygen -E md5`` style is accepted too.
    """
    der = public_key_der(key_type, blob)
    forms = {
        hashlib.md5(der).hexdigest(),  # noqa: S324 - EC2's fingerprint format, not a security use
        hashlib.sha256(der).hexdigest(),
        hashlib.md5(blob).hexdigest(),  # noqa: S324
        base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("="),
    }
    return forms


def same_public_key(key_pair, public_key):
    """Whether the existing ``key_pair`` (DescribeKeyPairs entry) holds ``public_key``."""
    key_type, blob = ssh_key_blob(public_key)
    if key_pair.get("PublicKey"):
        try:
            return ssh_key_blob(key_pair["PublicKey"]) == (key_type, blob)
        except ValueError:
            pass
    return normalise_fingerprint(key_pair.get("KeyFingerprint", "")) in key_fingerprints(key_type, blob)


def validate(params):
    """Return an error message for the first bad option value (no AWS call), or None."""
    if not params["name"].strip():
        return f"name: {params['name']!r} is blank; give the group's name (the Name tag of its instances)"
    if params["count"] < 0:
        return f"count: {params['count']} is negative; give the number of instances to have (0 or more)"
    if params["wait_timeout"] < 0:
        return f"wait_timeout: {params['wait_timeout']} is negative"
    if params["tags"]:
        error = validate_tags(params["tags"])
        if error:
            return error
        if "Name" in params["tags"] and str(params["tags"]["Name"]) != params["name"]:
            return f"tags: Name {params['tags']['Name']!r} conflicts with name {params['name']!r}"
    for option, kind in (("image_id", "image"), ("subnet_id", "subnet")):
        if option == "image_id" and parameter_name(params[option]) is not None:
            error = check_name(parameter_name(params[option]), option)
            if error:
                return error
        elif params[option] is not None:
            error = check_id(kind, params[option], option)
            if error:
                return error
    if params["user_data"] is not None and len(params["user_data"].encode("utf-8")) > USER_DATA_LIMIT:
        return f"user_data: {len(params['user_data'].encode('utf-8'))} bytes, EC2 allows at most {USER_DATA_LIMIT}"
    if params["public_key"] is not None:
        try:
            ssh_key_blob(params["public_key"])
        except ValueError as err:
            return str(err)
    for group in params["security_groups"] or ():
        if group.startswith("sg-"):
            error = check_id("security_group", group, "security_groups")
            if error:
                return error
    hop = (params["metadata_options"] or {}).get("http_put_response_hop_limit")
    if hop is not None and not 1 <= hop <= 64:
        return f"metadata_options.http_put_response_hop_limit: {hop} is not between 1 and 64"
    seen = set()
    for idx, vol in enumerate(params["volumes"] or ()):
        where = f"volumes[{idx}]"
        if vol["device_name"] in seen:
            return f"{where}.device_name: {vol['device_name']!r} is listed twice"
        seen.add(vol["device_name"])
        if vol["size"] is not None and vol["size"] < 1:
            return f"{where}.size: {vol['size']} is not a size in GiB"
        if vol["iops"] is not None and vol["type"] not in IOPS_TYPES:
            return f"{where}.iops: cannot be set for volume type {vol['type']!r} (only {', '.join(IOPS_TYPES)})"
        if vol["throughput"] is not None and vol["type"] != "gp3":
            return f"{where}.throughput: cannot be set for volume type {vol['type']!r} (only gp3)"
        if vol["kms_key_id"] and not vol["encrypted"]:
            return f"{where}.kms_key_id: given for a volume with encrypted=false"
    try:
        firewall_atoms(params["firewall"], params["name"])
    except ValueError as err:
        return str(err)
    return None


# --- pure helpers: requests, plans, results -------------------------------------------------------


def launch_time_key(instance):
    launched = instance.get("LaunchTime")
    return (launched.isoformat() if hasattr(launched, "isoformat") else str(launched or ""), instance["InstanceId"])


def oldest_first(instances):
    return sorted(instances, key=launch_time_key)


def client_token(name, region, vpc_id, current_ids, count, salt=""):
    """A deterministic RunInstances ClientToken (64 characters, EC2's limit).

    It changes with what the launch is for (group, place, instances already there, count wanted), so the same
    interrupted task rerun gets the same token and EC2 returns the same instances instead of launching more.
    """
    text = "|".join([name, region, vpc_id or "", ",".join(sorted(current_ids)), str(count), salt])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def launch_tags(params):
    tags = {str(k): "" if v is None else str(v) for k, v in (params["tags"] or {}).items()}
    tags["Name"] = params["name"]
    return tags


def block_device_mappings(volumes, image=None):
    """The BlockDeviceMappings of ``volumes``; a volume that overrides one of the image's without a
    size gets the image's size (EC2 needs a size or a snapshot in every EBS mapping)."""
    image_sizes = {
        m["DeviceName"]: m["Ebs"]["VolumeSize"]
        for m in (image or {}).get("BlockDeviceMappings") or ()
        if m.get("Ebs", {}).get("VolumeSize")
    }
    mappings = []
    for vol in volumes or ():
        ebs = {
            "VolumeType": vol["type"],
            "Encrypted": vol["encrypted"],
            "DeleteOnTermination": vol["delete_on_termination"],
        }
        for option, key in (
            ("size", "VolumeSize"),
            ("iops", "Iops"),
            ("throughput", "Throughput"),
            ("kms_key_id", "KmsKeyId"),
        ):
            if vol[option] is not None:
                ebs[key] = vol[option]
        if "VolumeSize" not in ebs and vol["device_name"] in image_sizes:
            ebs["VolumeSize"] = image_sizes[vol["device_name"]]
        mappings.append({"DeviceName": vol["device_name"], "Ebs": ebs})
    return mappings


def metadata_request(options):
    """The MetadataOptions of ``metadata_options`` (None when not given): IMDSv2 required unless set otherwise."""
    options = options or {}
    request = {"HttpTokens": options.get("http_tokens") or "required"}
    if options.get("http_put_response_hop_limit") is not None:
        request["HttpPutResponseHopLimit"] = options["http_put_response_hop_limit"]
    if options.get("instance_metadata_tags") is not None:
        request["InstanceMetadataTags"] = options["instance_metadata_tags"]
    return request


def metadata_changes(current, options):
    """The suboptions given in ``options`` that differ from the instance's ``MetadataOptions``.

    Existing instances are only reconciled when ``metadata_options`` is given, and then only in the
    suboptions it sets: adopting a fleet must not silently switch IMDSv1 off.
    """
    wanted = {
        key: (options or {}).get(option)
        for option, key in (
            ("http_tokens", "HttpTokens"),
            ("http_put_response_hop_limit", "HttpPutResponseHopLimit"),
            ("instance_metadata_tags", "InstanceMetadataTags"),
        )
    }
    return {key: value for key, value in wanted.items() if value is not None and (current or {}).get(key) != value}


def build_run_request(params, subnet_id, group_ids, count, token, image=None):
    request = {
        "ImageId": params["image_id"],
        "InstanceType": params["instance_type"],
        "MinCount": count,
        "MaxCount": count,
        "ClientToken": token,
        "SubnetId": subnet_id,
        "MetadataOptions": metadata_request(params["metadata_options"]),
        "TagSpecifications": tag_specifications(launch_tags(params), "instance", "volume"),
    }
    if group_ids:
        request["SecurityGroupIds"] = list(group_ids)
    if params["key_name"]:
        request["KeyName"] = params["key_name"]
    if params["user_data"] is not None:
        request["UserData"] = params["user_data"]
    if params["iam_instance_profile"]:
        profile = params["iam_instance_profile"]
        request["IamInstanceProfile"] = {"Arn": profile} if profile.startswith("arn:") else {"Name": profile}
    if params["volumes"]:
        request["BlockDeviceMappings"] = block_device_mappings(params["volumes"], image)
    if params["termination_protection"]:
        request["DisableApiTermination"] = True
    return request


def image_type_mismatch(image, type_info):
    """Why ``image`` cannot boot on the type (a DescribeInstanceTypes entry): ENA or boot mode; None if it can."""
    if not image:
        return None
    itype, iid = type_info.get("InstanceType"), image.get("ImageId")
    if (type_info.get("NetworkInfo") or {}).get("EnaSupport") == "required" and image.get("EnaSupport") is False:
        return f"instance_type: {itype!r} needs ENA networking but image {iid} does not have ENA support enabled"
    boot_modes = type_info.get("SupportedBootModes") or []
    image_mode = image.get("BootMode")
    if boot_modes and image_mode in ("legacy-bios", "uefi") and image_mode not in boot_modes:
        return f"instance_type: {itype!r} boots {'/'.join(boot_modes)} but image {iid} boots {image_mode} only"
    return None


def atoms_from_permissions(permissions):
    atoms = set()
    for perm in permissions or ():
        proto = PROTOCOLS.get(str(perm.get("IpProtocol")), str(perm.get("IpProtocol")))
        if proto in ("-1", "icmp") and perm.get("FromPort", -1) in (-1, None) and perm.get("ToPort", -1) in (-1, None):
            low, high = -1, -1
        else:
            low, high = perm.get("FromPort", -1), perm.get("ToPort", -1)
        for item in perm.get("IpRanges") or ():
            atoms.add((proto, low, high, "cidr", parse_cidr(item["CidrIp"], "IpRanges")[0]))
        for item in perm.get("Ipv6Ranges") or ():
            atoms.add((proto, low, high, "cidr6", parse_cidr(item["CidrIpv6"], "Ipv6Ranges")[0]))
        for item in perm.get("UserIdGroupPairs") or ():
            atoms.add((proto, low, high, "group", item["GroupId"]))
    return atoms


def permissions_from_atoms(atoms):
    grouped = {}
    for proto, low, high, kind, source in sorted(atoms):
        perm = grouped.setdefault((proto, low, high), {"IpProtocol": proto})
        if proto != "-1":
            perm["FromPort"], perm["ToPort"] = low, high
        if kind == "cidr":
            perm.setdefault("IpRanges", []).append({"CidrIp": source})
        elif kind == "cidr6":
            perm.setdefault("Ipv6Ranges", []).append({"CidrIpv6": source})
        else:
            perm.setdefault("UserIdGroupPairs", []).append({"GroupId": source})
    return [grouped[key] for key in sorted(grouped)]


def rule_text(atom):
    proto, low, high, _kind, source = atom
    if proto == "-1":
        what = "all"
    elif proto == "icmp" and low == -1:
        what = "icmp"
    else:
        what = f"{proto} {low}" if low == high else f"{proto} {low}-{high}"
    return f"{what} from {source}"


def ssh_open_to_world(atoms):
    return any(
        kind in ("cidr", "cidr6")
        and source in ("0.0.0.0/0", "::/0")
        and (proto == "-1" or (proto == "tcp" and low <= 22 <= high))
        for proto, low, high, kind, source in atoms
    )


def instance_drift(instance, params, volumes):
    """What differs from the options and cannot change in place, as ``drift`` entries."""
    wanted = {
        "image_id": (instance.get("ImageId"), params["image_id"]),
        "instance_type": (instance.get("InstanceType"), params["instance_type"]),
        "subnet_id": (instance.get("SubnetId"), params["subnet_id"]),
        "availability_zone": ((instance.get("Placement") or {}).get("AvailabilityZone"), params["availability_zone"]),
        "key_name": (instance.get("KeyName"), params["key_name"]),
    }
    drift = []
    for option, (current, want) in wanted.items():
        if want is not None and current != want:
            drift.append({"instance_id": instance["InstanceId"], "option": option, "current": current, "wanted": want})
    attached = {m["DeviceName"]: m.get("Ebs", {}).get("VolumeId") for m in instance.get("BlockDeviceMappings") or ()}
    for vol in params["volumes"] or ():
        where = f"volumes[{vol['device_name']}]"
        if vol["device_name"] not in attached:
            drift.append(
                {"instance_id": instance["InstanceId"], "option": where, "current": None, "wanted": "attached"}
            )
            continue
        actual = volumes.get(attached[vol["device_name"]])
        if not actual:
            continue
        for option, key in (
            ("size", "Size"),
            ("type", "VolumeType"),
            ("iops", "Iops"),
            ("throughput", "Throughput"),
            ("encrypted", "Encrypted"),
        ):
            if vol[option] is not None and actual.get(key) != vol[option]:
                drift.append(
                    {
                        "instance_id": instance["InstanceId"],
                        "option": f"{where}.{option}",
                        "current": actual.get(key),
                        "wanted": vol[option],
                    }
                )
    return drift


def describe_states(instances, ids):
    seen = {inst["InstanceId"]: inst["State"]["Name"] for inst in instances}
    return ", ".join(f"{iid} {seen.get(iid, 'not visible yet')}" for iid in ids)


def snapshot(instances, rules):
    """What diff mode shows of the group."""
    return {
        "count": len(instances),
        "instance_ids": [i["InstanceId"] for i in instances],
        "instances": {
            i["InstanceId"]: {"state": i["State"]["Name"], "tags": tags_to_dict(i.get("Tags"))} for i in instances
        },
        "firewall": sorted(rules),
    }


# --- AWS calls ------------------------------------------------------------------------------------


def not_found(call, codes):
    """Run ``call()``; return None when EC2 answers with one of the not-found ``codes``."""
    try:
        return call()
    except AwsError as err:
        if err.code in codes:
            return None
        raise


def find_instances(client, name, vpc_id=None):
    filters = [{"Name": "tag:Name", "Values": [name]}, {"Name": "instance-state-name", "Values": list(LIVE_STATES)}]
    if vpc_id:
        filters.append({"Name": "vpc-id", "Values": [vpc_id]})
    reservations = client.paginate("describe_instances", "Reservations", Filters=filters)
    return oldest_first(inst for res in reservations for inst in res.get("Instances", []))


def describe_ids(client, ids):
    """The instances with these IDs that EC2 shows (new ones may not be visible yet)."""
    found = []
    for part in chunks(ids):
        reservations = client.paginate(
            "describe_instances", "Reservations", Filters=[{"Name": "instance-id", "Values": part}]
        )
        found.extend(inst for res in reservations for inst in res.get("Instances", []))
    return oldest_first(found)


def check_image(module, client, image_id):
    """The image ``image_id`` names (``resolve:ssm:NAME`` is read from SSM first); TaskError when unusable."""
    name = parameter_name(image_id)
    if name is not None:
        try:
            image_id = resolve_image(module.client(client.region, "ssm"), name, "image_id")
        except ParameterError as err:
            raise TaskError(str(err)) from None
    images = not_found(
        lambda: client.call("describe_images", ImageIds=[image_id])["Images"],
        ("InvalidAMIID.NotFound", "InvalidAMIID.Unavailable", "InvalidAMIID.Malformed"),
    )
    if not images:
        raise TaskError(
            f"image_id: {image_id!r} not found in {client.region}"
            + (f" (named by SSM parameter {name!r})" if name else "")
            + "; AMI IDs are per region, so an ID from another region does not exist here: find this region's "
            "with bakery.ec2.ami_find, or copy the image here"
        )
    image = images[0]
    if image.get("State", "available") != "available":
        raise TaskError(f"image_id: {image_id!r} is {image['State']}, not available")
    return image


def check_instance_type(client, instance_type, image):
    types = not_found(
        lambda: client.call("describe_instance_types", InstanceTypes=[instance_type])["InstanceTypes"],
        ("InvalidInstanceType",),
    )
    if not types:
        raise TaskError(f"instance_type: {instance_type!r} is not offered in {client.region}")
    supported = (types[0].get("ProcessorInfo") or {}).get("SupportedArchitectures") or []
    arch = (image or {}).get("Architecture")
    if arch and supported and arch not in supported:
        raise TaskError(
            f"instance_type: {instance_type!r} runs {'/'.join(supported)} but image {image['ImageId']} is {arch}"
        )
    error = image_type_mismatch(image, types[0])
    if error:
        raise TaskError(error)


def offering_zones(client, instance_type):
    """The availability zones of the region that offer ``instance_type``; TaskError when none does."""
    offers = client.paginate(
        "describe_instance_type_offerings",
        "InstanceTypeOfferings",
        LocationType="availability-zone",
        Filters=[{"Name": "instance-type", "Values": [instance_type]}],
    )
    zones = {offer["Location"] for offer in offers}
    if not zones:
        raise TaskError(f"instance_type: {instance_type!r} is not offered in any zone of {client.region}")
    return zones


def candidate_subnets(client, params, existing, zones):
    """Subnets new instances may go to, best first: one per zone, all in one VPC.

    The subnets of the group's instances (newest first), then the default subnets of the default VPC; only
    in ``availability_zone`` when given, and only in ``zones`` (those offering the type) unless None.
    """
    pinned = params["availability_zone"]

    def usable(zone):
        return (not pinned or zone == pinned) and (zones is None or zone in zones)

    found = [
        {
            "SubnetId": inst["SubnetId"],
            "VpcId": inst["VpcId"],
            "AvailabilityZone": inst["Placement"]["AvailabilityZone"],
        }
        for inst in reversed(existing)
        if inst.get("SubnetId") and usable(inst["Placement"]["AvailabilityZone"])
    ]
    if not found or (zones is not None and not pinned):
        filters = [{"Name": "default-for-az", "Values": ["true"]}]
        if pinned:
            filters.append({"Name": "availability-zone", "Values": [pinned]})
        defaults = client.paginate("describe_subnets", "Subnets", Filters=filters)
        found += sorted(
            (subnet for subnet in defaults if usable(subnet["AvailabilityZone"])), key=lambda s: s["AvailabilityZone"]
        )
    subnets, seen = [], set()
    for subnet in found:
        if subnet["VpcId"] == found[0]["VpcId"] and subnet["AvailabilityZone"] not in seen:
            seen.add(subnet["AvailabilityZone"])
            subnets.append(subnet)
    return subnets


def find_subnet(client, params):
    """The subnet ``subnet_id`` (``SubnetId``, ``VpcId``, ``AvailabilityZone``); TaskError if it is not there."""
    zone = params["availability_zone"]
    subnets = not_found(
        lambda: client.call("describe_subnets", SubnetIds=[params["subnet_id"]])["Subnets"],
        ("InvalidSubnetID.NotFound",),
    )
    if not subnets:
        raise TaskError(f"subnet_id: {params['subnet_id']!r} not found in {client.region}")
    subnet = subnets[0]
    if zone and subnet["AvailabilityZone"] != zone:
        raise TaskError(
            f"availability_zone: {zone!r} conflicts with subnet {subnet['SubnetId']} in {subnet['AvailabilityZone']}"
        )
    return subnet


def resolve_groups(client, refs, vpc_id, option):
    """Security group IDs for ``refs`` (IDs or names in ``vpc_id``), in the order given."""
    ids = [ref for ref in refs if ref.startswith("sg-")]
    names = [ref for ref in refs if not ref.startswith("sg-")]
    found = {}
    for part in chunks(ids):
        groups = not_found(
            lambda part=part: client.call("describe_security_groups", GroupIds=part)["SecurityGroups"],
            ("InvalidGroup.NotFound", "InvalidGroupId.NotFound", "InvalidGroupId.Malformed"),
        )
        for group in groups or ():
            if vpc_id and group.get("VpcId") != vpc_id:
                raise TaskError(f"{option}: {group['GroupId']!r} is in {group.get('VpcId')}, not in {vpc_id}")
            found[group["GroupId"]] = group["GroupId"]
    if names:
        if not vpc_id:
            raise TaskError(f"{option}: group names need a VPC; give subnet_id or use group IDs")
        for part in chunks(names):
            filters = [{"Name": "group-name", "Values": part}, {"Name": "vpc-id", "Values": [vpc_id]}]
            for group in client.paginate("describe_security_groups", "SecurityGroups", Filters=filters):
                found[group["GroupName"]] = group["GroupId"]
    for ref in refs:
        if ref not in found:
            raise TaskError(f"{option}: security group {ref!r} not found in {vpc_id or client.region}")
    return [found[ref] for ref in refs]


def find_key(client, key_name):
    pairs = not_found(
        lambda: client.call("describe_key_pairs", KeyNames=[key_name], IncludePublicKey=True)["KeyPairs"],
        ("InvalidKeyPair.NotFound",),
    )
    return pairs[0] if pairs else None


def find_managed_groups(client, name, vpc_id=None, managed_only=True):
    filters = [{"Name": "group-name", "Values": [name]}]
    if managed_only:
        filters.append({"Name": f"tag:{MANAGED_TAG[0]}", "Values": [MANAGED_TAG[1]]})
    if vpc_id:
        filters.append({"Name": "vpc-id", "Values": [vpc_id]})
    return list(client.paginate("describe_security_groups", "SecurityGroups", Filters=filters))


def group_in_use(client, group_id):
    filters = [
        {"Name": "instance.group-id", "Values": [group_id]},
        {"Name": "instance-state-name", "Values": [*LIVE_STATES, "shutting-down"]},
    ]
    return any(res.get("Instances") for res in client.paginate("describe_instances", "Reservations", Filters=filters))


def wait_visible(client, ids, launched, timeout=CONSISTENCY_TIMEOUT):
    """The instances ``ids``, once EC2 shows every one of ``launched`` (just launched by this run)."""
    wanted = set(launched)
    return wait_until(
        lambda: describe_ids(client, ids),
        lambda found: wanted <= {inst["InstanceId"] for inst in found},
        timeout,
        f"{len(wanted)} new instance(s) to be visible",
        describe=lambda found: describe_states(found, sorted(wanted)),
    )


def wait_for_state(client, ids, state, timeout):
    """Wait until every instance in ``ids`` is in ``state`` (``terminated``: or gone); return them."""

    dead = {"shutting-down", "terminated"} | ({"stopped"} if state == "running" else set())
    booting = set()  # seen pending or running in this wait

    def check(instances):
        seen = {inst["InstanceId"]: inst for inst in instances}
        for iid in ids:
            inst = seen.get(iid)
            if inst is None:
                if state == "terminated":
                    continue
                return False
            current = inst["State"]["Name"]
            reason = inst.get("StateReason") or {}
            # A stopped instance has died on its way to running (failed boot, shutdown from inside), unless
            # this is a stale answer from before a StartInstances: stopped by its user, not seen booting yet.
            stale = current == "stopped" and iid not in booting
            stale = stale and reason.get("Code") == "Client.UserInitiatedShutdown"
            if state != "terminated" and current in dead and not stale:
                message = reason.get("Message", "no reason given")
                raise TaskError(f"instance {iid} went to {current} while waiting for {state}: {message}")
            if current in ("pending", "running"):
                booting.add(iid)
            if current != state:
                return False
        return True

    return wait_until(
        lambda: describe_ids(client, ids),
        check,
        timeout,
        f"{len(ids)} instance(s) to be {state}",
        describe=lambda instances: describe_states(instances, ids),
    )


# --- the task -------------------------------------------------------------------------------------


class Task:
    """One run: looks, decides, then acts through :meth:`act`, which is the only way to change anything."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.client = module.client()
        self.check_mode = module.check_mode
        self.changes = []
        self.launched = []
        self.launched_instances = []
        self.instances_touched = False
        self.terminated = []
        self.drift = []
        self.group_id = None
        self.subnet = None
        self.existing = []
        self.group = None
        self.rules = set()
        self.current_rules = set()
        self.firewall_before = []
        self.subnets = []
        self.created_group = False
        self.key_imported = False

    def act(self, change, operation, created_codes=(), **params):
        """Record ``change``; outside check mode, make the mutating call.

        ``created_codes``: NotFound codes of resources this run created that the call names; they are
        retried for a while (EC2 is eventually consistent). ``InstanceIds`` go in chunks of 200.
        """
        self.changes.append(change)
        if operation not in GROUP_AND_KEY_OPERATIONS:
            self.instances_touched = True
        if self.check_mode:
            return None
        if "InstanceIds" in params:
            for part in chunks(params.pop("InstanceIds")):
                self.client.call_created(operation, created_codes, InstanceIds=part, **params)
            return None
        return self.client.call_created(operation, created_codes, **params)

    def wait(self, ids, state):
        if ids and self.params["wait"] and not self.check_mode:
            return wait_for_state(self.client, ids, state, self.params["wait_timeout"])
        return None

    # -- reading and validating --

    def prepare(self):
        """Read everything and validate against EC2; nothing changes here."""
        params = self.params
        self.image = check_image(self.module, self.client, params["image_id"]) if params["image_id"] else None
        if self.image:  # resolve:ssm:NAME becomes the image it names, for the drift check and the launch
            params["image_id"] = self.image["ImageId"]
        check_instance_type(self.client, params["instance_type"], self.image)
        self.missing = max(0, params["count"] - len(self.existing))
        if self.missing and not params["image_id"]:
            raise TaskError(f"image_id is required to launch {self.missing} instance(s) named {params['name']!r}")
        # Zones are checked only when something is launched: existing instances keep theirs (drift otherwise).
        zones = offering_zones(self.client, params["instance_type"]) if self.missing else None
        pinned = self.subnet["AvailabilityZone"] if self.subnet else params["availability_zone"]
        if zones is not None and pinned and pinned not in zones:
            raise TaskError(
                f"instance_type: {params['instance_type']!r} is not offered in {pinned} "
                f"(offered in {', '.join(sorted(zones))}); nothing was created"
            )
        # Where new instances go, best first; the next one is tried when a zone lacks capacity.
        self.subnets = [self.subnet] if self.subnet else candidate_subnets(self.client, params, self.existing, zones)
        self.subnet = self.subnets[0] if self.subnets else None
        self.vpc_id = self.subnet["VpcId"] if self.subnet else None
        vpcs = {inst.get("VpcId") for inst in self.existing}
        if not params["subnet_id"] and len(vpcs) > 1 and (params["firewall"] is not None or params["security_groups"]):
            raise TaskError(
                f"instances named {params['name']!r} are in several VPCs ({', '.join(sorted(vpcs))}); give subnet_id"
            )
        if self.missing and not self.subnet:
            where = params["availability_zone"] or f"a zone of {self.client.region} offering {params['instance_type']}"
            raise TaskError(f"no default subnet in {where} to launch into; give subnet_id")
        self.group_ids = None
        if params["security_groups"] is not None:
            self.group_ids = resolve_groups(self.client, params["security_groups"], self.vpc_id, "security_groups")
        self.key_to_import = False
        if params["key_name"]:
            pair = find_key(self.client, params["key_name"])
            if pair is None and params["public_key"] is None:
                raise TaskError(f"key_name: key pair {params['key_name']!r} not found in {self.client.region}")
            if (
                pair is not None
                and params["public_key"] is not None
                and not same_public_key(pair, params["public_key"])
            ):
                raise TaskError(
                    f"public_key: key pair {params['key_name']!r} exists with another key "
                    f"(fingerprint {pair.get('KeyFingerprint')}); it is never overwritten"
                )
            self.key_to_import = pair is None
        if params["firewall"] is not None:
            self.prepare_firewall()

    def prepare_firewall(self):
        params = self.params
        if not self.vpc_id:
            raise TaskError("firewall: no VPC to keep the security group in; give subnet_id")
        groups = find_managed_groups(self.client, params["name"], self.vpc_id, managed_only=False)
        self.group = groups[0] if groups else None
        if self.group and tags_to_dict(self.group.get("Tags")).get(MANAGED_TAG[0]) != MANAGED_TAG[1]:
            raise TaskError(
                f"firewall: security group {params['name']!r} ({self.group['GroupId']}) exists in {self.vpc_id} "
                "and was not made by ec2_launch; rename the task or the group"
            )
        self.group_id = self.group["GroupId"] if self.group else None
        atoms = firewall_atoms(params["firewall"], params["name"])
        refs = sorted({source for _p, _l, _h, kind, source in atoms if kind == "group" and source != params["name"]})
        group_ids = resolve_groups(self.client, refs, self.vpc_id, "firewall.source_group")
        resolved = {ref: group_ids[idx] for idx, ref in enumerate(refs)}
        own = self.group_id or f"(new group {params['name']})"
        self.rules = {
            (p, low, high, kind, own if kind == "group" and src == params["name"] else resolved.get(src, src))
            for p, low, high, kind, src in atoms
        }
        self.current_rules = atoms_from_permissions(self.group.get("IpPermissions")) if self.group else set()
        self.firewall_before = [rule_text(a) for a in self.current_rules]
        if ssh_open_to_world(self.rules):
            self.module.warn(f"firewall: port 22 of {params['name']!r} is open to the whole internet")

    # -- acting --

    def apply_key(self):
        if not self.key_to_import:
            return
        name = self.params["key_name"]
        try:
            self.act(
                f"import key pair {name}",
                "import_key_pair",
                KeyName=name,
                PublicKeyMaterial=self.params["public_key"].strip().encode("utf-8"),
            )
        except AwsError as err:
            if err.code != "InvalidKeyPair.Duplicate":
                raise
            # A retried import whose first answer was lost (or a race): ours if it holds our key.
            pair = self.client.call_created(
                "describe_key_pairs", KEY_NOT_FOUND, KeyNames=[name], IncludePublicKey=True
            )["KeyPairs"][0]
            if not same_public_key(pair, self.params["public_key"]):
                raise TaskError(
                    f"public_key: key pair {name!r} appeared meanwhile with another key "
                    f"(fingerprint {pair.get('KeyFingerprint')}); it is never overwritten"
                ) from None
        self.key_imported = not self.check_mode

    def adopt_duplicate_group(self):
        """After InvalidGroup.Duplicate on create: the group is ours (a retried create whose answer was lost)
        when it carries the managed tag, which EC2 sets in the same call; return it."""
        name = self.params["name"]
        groups = wait_until(
            lambda: find_managed_groups(self.client, name, self.vpc_id, managed_only=False),
            bool,
            CONSISTENCY_TIMEOUT,
            f"security group {name} in {self.vpc_id} to be visible",
        )
        if tags_to_dict(groups[0].get("Tags")).get(MANAGED_TAG[0]) != MANAGED_TAG[1]:
            raise TaskError(
                f"firewall: security group {name!r} ({groups[0]['GroupId']}) appeared meanwhile in {self.vpc_id} "
                "and was not made by ec2_launch; rename the task or the group"
            )
        return groups[0]

    def authorize_checked(self, atoms):
        """Authorize ``atoms``; InvalidPermission.Duplicate after a lost answer counts once every one is there."""
        codes = GROUP_NOT_FOUND if self.created_group else ()
        try:
            self.client.call_created(
                "authorize_security_group_ingress",
                codes,
                GroupId=self.group_id,
                IpPermissions=permissions_from_atoms(atoms),
            )
        except AwsError as err:
            if err.code != "InvalidPermission.Duplicate":
                raise
            group = self.client.call_created("describe_security_groups", codes, GroupIds=[self.group_id])
            missing = atoms - atoms_from_permissions(group["SecurityGroups"][0].get("IpPermissions"))
            if missing:
                self.client.call(
                    "authorize_security_group_ingress",
                    GroupId=self.group_id,
                    IpPermissions=permissions_from_atoms(missing),
                )

    def apply_firewall(self):
        name = self.params["name"]
        if self.group is None:
            tags = dict(launch_tags({"name": name, "tags": None}), **{MANAGED_TAG[0]: MANAGED_TAG[1]})
            try:
                created = self.act(
                    f"create security group {name} in {self.vpc_id}",
                    "create_security_group",
                    GroupName=name,
                    Description=f"bakery.ec2.ec2_launch firewall of {name}"[:255],
                    VpcId=self.vpc_id,
                    TagSpecifications=tag_specifications(tags, "security-group"),
                )
            except AwsError as err:
                if err.code != "InvalidGroup.Duplicate":
                    raise
                created = self.adopt_duplicate_group()
                self.current_rules = atoms_from_permissions(created.get("IpPermissions"))
            if created:
                self.created_group = True
                placeholder = f"(new group {name})"
                self.group_id = created["GroupId"]
                self.rules = {
                    (p, lo, hi, k, self.group_id if s == placeholder else s) for p, lo, hi, k, s in self.rules
                }
        # Revoke first: a group holds at most 60 rules per direction.
        revoke, authorize = self.current_rules - self.rules, self.rules - self.current_rules
        if revoke:
            self.act(
                f"revoke {', '.join(rule_text(a) for a in sorted(revoke))} on {name}",
                "revoke_security_group_ingress",
                GroupId=self.group_id,
                IpPermissions=permissions_from_atoms(revoke),
            )
        if authorize:
            self.changes.append(f"authorize {', '.join(rule_text(a) for a in sorted(authorize))} on {name}")
            if not self.check_mode:
                self.authorize_checked(authorize)

    def wanted_groups(self):
        """The exact groups the instances must have, or None to leave them alone."""
        if self.group_ids is None and self.params["firewall"] is None:
            return None
        groups = list(self.group_ids or [])
        if self.params["firewall"] is not None:
            groups.append(self.group_id or f"(new group {self.params['name']})")
        return groups

    def protection(self, instances):
        """``{instance_id: DisableApiTermination}`` when termination_protection is managed."""
        if self.params["termination_protection"] is None:
            return {}
        return {
            inst["InstanceId"]: self.client.call(
                "describe_instance_attribute", Attribute="disableApiTermination", InstanceId=inst["InstanceId"]
            )["DisableApiTermination"]["Value"]
            for inst in instances
        }

    def terminate(self, instances):
        if not instances:
            return
        ids = [inst["InstanceId"] for inst in instances]
        if self.params["termination_protection"] is False:
            for iid, protected in self.protection(instances).items():
                if protected:
                    self.act(
                        f"remove termination protection of {iid}",
                        "modify_instance_attribute",
                        InstanceId=iid,
                        DisableApiTermination={"Value": False},
                    )
        self.act(f"terminate {', '.join(ids)}", "terminate_instances", InstanceIds=ids)
        self.terminated = ids

    def launch(self):
        """Launch the missing instances in the first candidate subnet that takes them.

        When EC2 answers Unsupported or InsufficientInstanceCapacity, the next zone that offers the type is
        tried with its own (as deterministic) client token, unless availability_zone or subnet_id pins one.
        """
        tried = []
        for index, subnet in enumerate(self.subnets):
            self.subnet = subnet
            zone = subnet["AvailabilityZone"]
            try:
                return self.launch_in(f"zone:{zone}|" if index else "")
            except AwsError as err:
                if err.code not in ZONE_CAPACITY_CODES or len(self.subnets) == 1:
                    raise
                tried.append(f"{zone} ({err.code})")
                if index + 1 < len(self.subnets):
                    self.module.warn(
                        f"{err.code} for {self.params['instance_type']} in {zone}: "
                        f"trying {self.subnets[index + 1]['AvailabilityZone']}"
                    )
        raise TaskError(
            f"no zone could launch {self.missing} {self.params['instance_type']} instance(s); tried {', '.join(tried)}"
        )

    def created_codes(self):
        """NotFound codes of the group and key this run just created, which RunInstances may meet."""
        return (GROUP_NOT_FOUND if self.created_group else ()) + (KEY_NOT_FOUND if self.key_imported else ())

    def launch_in(self, zone_salt):
        count = self.missing
        current = [inst["InstanceId"] for inst in self.existing]
        salt = zone_salt
        for _attempt in range(3):
            token = client_token(
                self.params["name"], self.client.region, self.vpc_id, current, self.params["count"], salt
            )
            request = build_run_request(
                self.params, self.subnet["SubnetId"], self.wanted_groups(), count, token, self.image
            )
            if self.check_mode:
                self.changes.append(f"launch {count} instance(s) in {self.subnet['SubnetId']}")
                return
            try:
                # Retrying RunInstances is safe: the client token makes EC2 launch at most once.
                reply = self.client.call_created("run_instances", self.created_codes(), **request)
            except AwsError as err:
                if err.code != "IdempotentParameterMismatch":
                    raise
                # The token was used before with other parameters; derive a new one, just as deterministic.
                request.pop("ClientToken")
                salt = (
                    zone_salt
                    + "params:"
                    + hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()
                )
                continue
            instances = reply.get("Instances", [])
            if any(inst["State"]["Name"] in ("pending", "running") for inst in instances):
                self.changes.append(f"launch {count} instance(s) in {self.subnet['SubnetId']}")
                self.instances_touched = True
                self.launched = [inst["InstanceId"] for inst in instances]
                self.launched_instances = instances
                return
            # An old token: EC2 handed back instances of an earlier launch that are gone since.
            salt = zone_salt + "stale:" + ",".join(sorted(inst["InstanceId"] for inst in instances))
        raise TaskError(f"RunInstances kept answering with instances that are gone (client token {token})")

    def reconcile(self, instances):
        params = self.params
        groups = self.wanted_groups()
        protected = self.protection(instances)
        desired_tags = launch_tags(params) if params["tags"] is not None else None
        for inst in instances:
            iid = inst["InstanceId"]
            if desired_tags is not None:
                to_set, to_unset = compare_tags(
                    tags_to_dict(inst.get("Tags")), desired_tags, params["purge_tags"], keep=("Name",)
                )
                if to_set:
                    self.act(
                        f"tag {iid} with {', '.join(sorted(to_set))}",
                        "create_tags",
                        Resources=[iid],
                        Tags=dict_to_tags(to_set),
                    )
                if to_unset:
                    self.act(
                        f"remove tags {', '.join(to_unset)} from {iid}",
                        "delete_tags",
                        Resources=[iid],
                        Tags=[{"Key": key} for key in to_unset],
                    )
            if groups is not None and sorted(g["GroupId"] for g in inst.get("SecurityGroups", [])) != sorted(groups):
                self.act(
                    f"set security groups of {iid} to {', '.join(groups)}",
                    "modify_instance_attribute",
                    GROUP_NOT_FOUND if self.created_group else (),
                    InstanceId=iid,
                    Groups=groups,
                )
            if iid in protected and protected[iid] != params["termination_protection"]:
                self.act(
                    f"set termination protection of {iid} to {params['termination_protection']}",
                    "modify_instance_attribute",
                    InstanceId=iid,
                    DisableApiTermination={"Value": params["termination_protection"]},
                )
            changes = metadata_changes(inst.get("MetadataOptions"), params["metadata_options"])
            if changes:
                self.act(
                    f"set metadata options of {iid}: {', '.join(f'{k}={v}' for k, v in sorted(changes.items()))}",
                    "modify_instance_metadata_options",
                    InstanceId=iid,
                    **changes,
                )

    def apply_state(self, instances):
        """Start or stop ``instances`` (existing ones by their last known state, new ones as pending)."""
        states = {inst["InstanceId"]: inst["State"]["Name"] for inst in instances}
        states.update((iid, "pending") for iid in self.launched)
        ids = list(states)
        if all(state == self.params["state"] for state in states.values()):
            return None
        if self.params["state"] == "running":
            to_start = [iid for iid, state in states.items() if state in ("stopping", "stopped")]
            if to_start:
                self.wait([iid for iid in to_start if states[iid] == "stopping"], "stopped")
                self.act(f"start {', '.join(to_start)}", "start_instances", InstanceIds=to_start)
            return self.wait(ids, "running")
        to_stop = [iid for iid, state in states.items() if state in ("pending", "running")]
        if to_stop:
            self.wait([iid for iid in to_stop if states[iid] == "pending"], "running")
            fresh = INSTANCE_NOT_FOUND if set(to_stop) & set(self.launched) else ()
            self.act(f"stop {', '.join(to_stop)}", "stop_instances", fresh, InstanceIds=to_stop)
        return self.wait(ids, "stopped")

    def delete_group(self, group_id):
        # NotFound: a retried delete whose first answer was lost; the group is gone either way.
        not_found(lambda: self.client.call("delete_security_group", GroupId=group_id), GROUP_NOT_FOUND)
        return True

    def drop_firewall(self, vpc_id):
        """With ``state: absent``: delete the managed group unless an instance still uses it."""
        for group in find_managed_groups(self.client, self.params["name"], vpc_id):
            gid = group["GroupId"]
            if self.terminated and not self.check_mode and not self.params["wait"]:
                self.module.warn(
                    f"security group {gid} kept: instances are still shutting down (wait=false); rerun to delete it"
                )
                continue
            if not self.check_mode and group_in_use(self.client, gid):
                self.module.warn(f"security group {gid} kept: other instances still use it")
                continue
            self.firewall_before = [rule_text(a) for a in atoms_from_permissions(group.get("IpPermissions"))]
            self.changes.append(f"delete security group {self.params['name']} ({gid})")
            if not self.check_mode:
                timeout = min(self.params["wait_timeout"], GROUP_DELETE_TIMEOUT)
                wait_until(
                    lambda gid=gid: not_found(lambda: self.delete_group(gid), ("DependencyViolation",)),
                    bool,
                    timeout,
                    f"security group {gid} to be deletable",
                    describe=lambda _value, gid=gid: f"{gid} still in use (DependencyViolation)",
                )

    def drop_key(self):
        """With ``state: absent`` and ``public_key``: delete the key pair this task imports, once unused.

        Only a key pair holding exactly ``public_key`` is deleted, so a key of the same name made by
        someone else is left alone; so is one that any instance still uses.
        """
        name = self.params["key_name"]
        if not (name and self.params["public_key"]):
            return
        pair = find_key(self.client, name)
        if pair is None:
            return
        if not same_public_key(pair, self.params["public_key"]):
            self.module.warn(f"key pair {name} kept: it holds another key than public_key")
            return
        # In check mode the instances this task would terminate still run; they do not count.
        users = instances_with_key(self.client, name) - set(self.terminated)
        if users:
            self.module.warn(f"key pair {name} kept: instances {', '.join(sorted(users))} still use it")
            return
        self.act(f"delete key pair {name}", "delete_key_pair", KeyName=name)


def instances_with_key(client, key_name):
    """IDs of the instances not yet terminated that were launched with key pair ``key_name``."""
    filters = [
        {"Name": "key-name", "Values": [key_name]},
        {"Name": "instance-state-name", "Values": [*LIVE_STATES, "shutting-down"]},
    ]
    reservations = client.paginate("describe_instances", "Reservations", Filters=filters)
    return {inst["InstanceId"] for res in reservations for inst in res.get("Instances", ())}


def run_absent(task):
    params = task.params
    vpc_id = None
    if params["subnet_id"]:
        vpc_id = find_subnet(task.client, params)["VpcId"]
    existing = find_instances(task.client, params["name"], vpc_id)
    before = snapshot(existing, [])
    task.terminate(existing)
    task.wait(task.terminated, "terminated")
    task.drop_firewall(vpc_id)
    task.drop_key()
    before["firewall"] = sorted(task.firewall_before)
    return before, [], snapshot([], [])


def run_present(task):
    params = task.params
    task.subnet = find_subnet(task.client, params) if params["subnet_id"] else None
    task.existing = find_instances(task.client, params["name"], task.subnet["VpcId"] if task.subnet else None)
    task.prepare()
    before = snapshot(task.existing, task.firewall_before)
    surplus = task.existing[: max(0, len(task.existing) - params["count"])]
    kept = task.existing[len(surplus) :]
    task.drift = [
        entry for inst in kept for entry in instance_drift(inst, params, volumes_of(task.client, kept, params))
    ]
    for entry in task.drift:
        task.module.warn(
            f"{entry['instance_id']}: {entry['option']} is {entry['current']!r}, wanted {entry['wanted']!r}; "
            "not changed in place (instances are never replaced)"
        )
    task.apply_key()
    if params["firewall"] is not None:
        task.apply_firewall()
    task.terminate(surplus)
    if task.missing:
        task.launch()
    task.reconcile(kept)
    waited = task.apply_state(kept)
    task.wait(task.terminated, "terminated")
    final_ids = [inst["InstanceId"] for inst in kept] + task.launched
    if task.check_mode or not task.instances_touched:
        final = kept
    elif waited is not None:
        final = waited
    else:
        # Instances just launched may not be visible yet (EC2 is eventually consistent): without a wait for
        # a state, wait until EC2 shows them, so that the next task, which finds them by name, sees them.
        final = wait_visible(task.client, final_ids, task.launched)
    after_rules = [rule_text(a) for a in task.rules] if params["firewall"] is not None else []
    after = snapshot(final, after_rules)
    if task.check_mode:
        after["count"] = len(kept) + task.missing
        after["instance_ids"] = after["instance_ids"] + [f"(new {n + 1})" for n in range(task.missing)]
        for iid in after["instances"]:
            after["instances"][iid]["state"] = params["state"]
            if params["tags"] is not None:
                current = after["instances"][iid]["tags"]
                after["instances"][iid]["tags"] = (
                    launch_tags(params) if params["purge_tags"] else dict(current, **launch_tags(params))
                )
    return before, final, after


def volumes_of(client, instances, params):
    """``{volume_id: volume}`` of the instances' volumes, when ``volumes`` needs comparing."""
    if not params["volumes"]:
        return {}
    ids = sorted(
        m["Ebs"]["VolumeId"]
        for inst in instances
        for m in inst.get("BlockDeviceMappings") or ()
        if m.get("Ebs", {}).get("VolumeId")
    )
    if not ids:
        return {}
    return {
        vol["VolumeId"]: vol
        for part in chunks(ids)
        for vol in client.paginate("describe_volumes", "Volumes", VolumeIds=part)
    }


ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "count": {"type": "int", "default": 1},
    "state": {"type": "str", "choices": ["running", "stopped", "absent"], "default": "running"},
    "image_id": {"type": "str"},
    "instance_type": {"type": "str", "default": "t3.micro"},
    "subnet_id": {"type": "str"},
    "availability_zone": {"type": "str"},
    "key_name": {"type": "str", "no_log": False},
    "public_key": {"type": "str", "no_log": False},
    "user_data": {"type": "str", "no_log": True},
    "iam_instance_profile": {"type": "str"},
    "volumes": {
        "type": "list",
        "elements": "dict",
        "options": {
            "device_name": {"type": "str", "required": True},
            "size": {"type": "int"},
            "type": {
                "type": "str",
                "choices": ["gp2", "gp3", "io1", "io2", "st1", "sc1", "standard"],
                "default": "gp3",
            },
            "iops": {"type": "int"},
            "throughput": {"type": "int"},
            "encrypted": {"type": "bool", "default": True},
            "kms_key_id": {"type": "str", "no_log": False},
            "delete_on_termination": {"type": "bool", "default": True},
        },
    },
    "metadata_options": {
        "type": "dict",
        "options": {
            "http_tokens": {"type": "str", "choices": ["required", "optional"]},
            "http_put_response_hop_limit": {"type": "int"},
            "instance_metadata_tags": {"type": "str", "choices": ["enabled", "disabled"]},
        },
    },
    "termination_protection": {"type": "bool"},
    "tags": {"type": "dict", "aliases": ["resource_tags"]},
    "purge_tags": {"type": "bool", "default": True},
    "security_groups": {"type": "list", "elements": "str"},
    "firewall": {
        "type": "list",
        "elements": "dict",
        "options": {
            "proto": {"type": "str", "choices": ["tcp", "udp", "icmp", "all"], "default": "tcp"},
            "ports": {"type": "raw"},
            "cidr": {"type": "list", "elements": "str"},
            "source_group": {"type": "str"},
        },
    },
    "wait": {"type": "bool", "default": True},
    "wait_timeout": {"type": "int", "default": 600},
}


def main():
    module = AwsModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True, required_by={"public_key": "key_name"})
    module.run(run)


def run(module):
    error = validate(module.params)
    if error:
        module.fail(error)
    task = Task(module)
    try:
        if module.params["state"] == "absent":
            before, final, after = run_absent(task)
        else:
            before, final, after = run_present(task)
    except (TaskError, WaitTimeout, AwsError) as err:
        extra = {"error": err.as_dict()} if isinstance(err, AwsError) else {}
        module.fail(
            str(err),
            **extra,
            changed=bool(task.changes),
            changes=task.changes,
            launched_ids=task.launched,
            terminated_ids=task.terminated,
        )
    result = {
        "changed": bool(task.changes),
        "changes": task.changes,
        "instances": [to_snake(inst) for inst in final],
        "instance_ids": [inst["InstanceId"] for inst in final],
        "launched_ids": task.launched,
        "terminated_ids": task.terminated,
        "drift": task.drift,
    }
    if module.params["image_id"]:
        result["image_id"] = module.params["image_id"]
    if module.params["firewall"] is not None and task.group_id:
        result["security_group_id"] = task.group_id
    if module.module._diff:
        result["diff"] = {"before": before, "after": after}
    module.exit(**result)


if __name__ == "__main__":
    main()
