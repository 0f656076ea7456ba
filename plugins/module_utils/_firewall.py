# Copyright: (c) 2026, bakery.ec2 contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private: ec2_launch's firewall, the security group it manages, and security groups by ID or name.
Not a public API.

The ``firewall`` option becomes a set of atoms, one per permission EC2 stores: ``(proto, from, to, kind,
source)`` with ``kind`` ``cidr``, ``cidr6`` or ``group``. :class:`Firewall` keeps a security group named like
the task, tagged as made by ec2_launch, in the instances' VPC, holding exactly those rules;
:func:`drop_firewall` deletes it with ``state: absent`` once no instance uses it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ansible_collections.bakery.ec2.plugins.module_utils._changes import wait_until
from ansible_collections.bakery.ec2.plugins.module_utils._client import CONSISTENCY_TIMEOUT
from ansible_collections.bakery.ec2.plugins.module_utils._errors import AwsError, TaskError, not_found
from ansible_collections.bakery.ec2.plugins.module_utils._instances import instance_ids_with
from ansible_collections.bakery.ec2.plugins.module_utils._shapes import check_id, chunks
from ansible_collections.bakery.ec2.plugins.module_utils._tags import tag_specifications, tags_to_dict

if TYPE_CHECKING:
    from ansible_collections.bakery.ec2.plugins.module_utils._changes import Changes
    from ansible_collections.bakery.ec2.plugins.module_utils._client import AwsClient

    Atom = tuple[str, int, int, str, str]  # (proto, from, to, kind, source)

MANAGED_TAG = ("ManagedBy", "bakery.ec2.ec2_launch")
PROTOCOLS = {"tcp": "tcp", "udp": "udp", "icmp": "icmp", "all": "-1", "6": "tcp", "17": "udp", "1": "icmp"}
# NotFound codes of a group, retried only right after this run created it (eventual consistency).
GROUP_NOT_FOUND = ("InvalidGroup.NotFound", "InvalidGroupId.NotFound")
# A group may still be held by the network interfaces of instances that just terminated.
GROUP_DELETE_TIMEOUT = 300


# --- pure helpers: rules ----------------------------------------------------------------------------


def parse_ports(value: object, where: str) -> tuple[int, int]:
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


def parse_cidr(value: object, where: str) -> tuple[str, str]:
    """Canonical form of an IPv4 or IPv6 CIDR and its kind; ValueError naming the value."""
    try:
        net = ipaddress.ip_network(str(value).strip(), strict=True)
    except ValueError as err:
        raise ValueError(f"{where}: {value!r} is not a valid CIDR ({err})") from None
    return str(net), ("cidr" if net.version == 4 else "cidr6")


def firewall_atoms(rules: Iterable[dict[str, Any]] | None, name: str) -> set[Atom]:
    """Turn the ``firewall`` option into a set of atoms ``(proto, from, to, kind, source)``.

    ``kind`` is ``cidr``, ``cidr6`` or ``group``; a group source is still a reference (ID or name),
    ``name`` itself meaning the managed group. One atom is one permission EC2 stores.
    """
    atoms: set[Atom] = set()
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


def atoms_from_permissions(permissions: Iterable[dict[str, Any]] | None) -> set[Atom]:
    atoms: set[Atom] = set()
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


def permissions_from_atoms(atoms: Iterable[Atom]) -> list[dict[str, Any]]:
    grouped: dict[tuple[str, int, int], dict[str, Any]] = {}
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


def rule_text(atom: Atom) -> str:
    proto, low, high, _kind, source = atom
    if proto == "-1":
        what = "all"
    elif proto == "icmp" and low == -1:
        what = "icmp"
    else:
        what = f"{proto} {low}" if low == high else f"{proto} {low}-{high}"
    return f"{what} from {source}"


def ssh_open_to_world(atoms: Iterable[Atom]) -> bool:
    return any(
        kind in ("cidr", "cidr6")
        and source in ("0.0.0.0/0", "::/0")
        and (proto == "-1" or (proto == "tcp" and low <= 22 <= high))
        for proto, low, high, kind, source in atoms
    )


def is_managed(group: dict[str, Any]) -> bool:
    return tags_to_dict(group.get("Tags")).get(MANAGED_TAG[0]) == MANAGED_TAG[1]


# --- reading EC2 ------------------------------------------------------------------------------------


def resolve_groups(client: AwsClient, refs: Sequence[str], vpc_id: str | None, option: str) -> list[str]:
    """Security group IDs for ``refs`` (IDs or names in ``vpc_id``), in the order given."""
    ids = [ref for ref in refs if ref.startswith("sg-")]
    names = [ref for ref in refs if not ref.startswith("sg-")]
    found: dict[str, str] = {}
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


def find_managed_groups(
    client: AwsClient, name: str, vpc_id: str | None = None, managed_only: bool = True
) -> list[dict[str, Any]]:
    """The security groups named ``name`` (in ``vpc_id`` when given), only ec2_launch's unless ``managed_only``
    is false."""
    filters = [{"Name": "group-name", "Values": [name]}]
    if managed_only:
        filters.append({"Name": f"tag:{MANAGED_TAG[0]}", "Values": [MANAGED_TAG[1]]})
    if vpc_id:
        filters.append({"Name": "vpc-id", "Values": [vpc_id]})
    return list(client.paginate("describe_security_groups", "SecurityGroups", Filters=filters))


# --- changing EC2 -----------------------------------------------------------------------------------


class Firewall:
    """The security group ``name`` in ``vpc_id`` that ec2_launch manages: made if missing, holding exactly
    the rules asked for. :meth:`look` reads and checks (nothing changes), :meth:`apply` changes through
    ``changes`` (:class:`Changes`), so check mode changes nothing."""

    def __init__(self, changes: Changes, name: str, vpc_id: str | None) -> None:
        self.changes = changes
        self.client = changes.client
        self.name = name
        self.vpc_id = vpc_id
        self.group: dict[str, Any] | None = None
        self.group_id: str | None = None
        self.created = False  # by this run, which may not see it everywhere yet
        self.rules: set[Atom] = set()
        self.current_rules: set[Atom] = set()
        self.before: list[str] = []  # the rules before, as text (diff mode)

    @property
    def placeholder(self) -> str:
        """What stands for the group's ID before it exists (check mode, and the rules before creation)."""
        return f"(new group {self.name})"

    @property
    def member_id(self) -> str:
        """The ID to attach to the instances (its placeholder in check mode before it exists)."""
        return self.group_id or self.placeholder

    @property
    def not_found_codes(self) -> tuple[str, ...]:
        """NotFound codes a call naming the group may meet and retry: only when this run created it."""
        return GROUP_NOT_FOUND if self.created else ()

    def after(self) -> list[str]:
        return [rule_text(a) for a in self.rules]

    def look(self, rules: Iterable[dict[str, Any]] | None, warn: Callable[[str], None]) -> None:
        """Find the group, refuse one not made by ec2_launch, and resolve ``rules`` (the ``firewall`` option)."""
        if not self.vpc_id:
            raise TaskError("firewall: no VPC to keep the security group in; give subnet_id")
        groups = find_managed_groups(self.client, self.name, self.vpc_id, managed_only=False)
        self.group = groups[0] if groups else None
        if self.group and not is_managed(self.group):
            raise TaskError(
                f"firewall: security group {self.name!r} ({self.group['GroupId']}) exists in {self.vpc_id} "
                "and was not made by ec2_launch; rename the task or the group"
            )
        self.group_id = self.group["GroupId"] if self.group else None
        atoms = firewall_atoms(rules, self.name)
        refs = sorted({source for _p, _l, _h, kind, source in atoms if kind == "group" and source != self.name})
        group_ids = resolve_groups(self.client, refs, self.vpc_id, "firewall.source_group")
        resolved = {ref: group_ids[idx] for idx, ref in enumerate(refs)}
        self.rules = {
            (p, low, high, kind, self.member_id if kind == "group" and src == self.name else resolved.get(src, src))
            for p, low, high, kind, src in atoms
        }
        self.current_rules = atoms_from_permissions(self.group.get("IpPermissions")) if self.group else set()
        self.before = [rule_text(a) for a in self.current_rules]
        if ssh_open_to_world(self.rules):
            warn(f"firewall: port 22 of {self.name!r} is open to the whole internet")

    def apply(self) -> None:
        """Create the group when missing, then revoke the rules not asked for and authorize the missing ones."""
        name = self.name
        if self.group is None:
            tags = {"Name": name, MANAGED_TAG[0]: MANAGED_TAG[1]}
            try:
                created = self.changes.act(
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
                created = self.adopt_duplicate()
                self.current_rules = atoms_from_permissions(created.get("IpPermissions"))
            if created:
                self.created = True
                placeholder = self.placeholder
                self.group_id = created["GroupId"]
                self.rules = {
                    (p, lo, hi, k, self.group_id if s == placeholder else s) for p, lo, hi, k, s in self.rules
                }
        # Revoke first: a group holds at most 60 rules per direction.
        revoke, authorize = self.current_rules - self.rules, self.rules - self.current_rules
        if revoke:
            self.changes.act(
                f"revoke {', '.join(rule_text(a) for a in sorted(revoke))} on {name}",
                "revoke_security_group_ingress",
                GroupId=self.group_id,
                IpPermissions=permissions_from_atoms(revoke),
            )
        if authorize and self.changes.will(f"authorize {', '.join(rule_text(a) for a in sorted(authorize))} on {name}"):
            self.authorize_checked(authorize)

    def adopt_duplicate(self) -> dict[str, Any]:
        """After InvalidGroup.Duplicate on create: the group is ours (a retried create whose answer was lost)
        when it carries the managed tag, which EC2 sets in the same call; return it."""
        groups = wait_until(
            lambda: find_managed_groups(self.client, self.name, self.vpc_id, managed_only=False),
            bool,
            CONSISTENCY_TIMEOUT,
            f"security group {self.name} in {self.vpc_id} to be visible",
        )
        if not is_managed(groups[0]):
            raise TaskError(
                f"firewall: security group {self.name!r} ({groups[0]['GroupId']}) appeared meanwhile in "
                f"{self.vpc_id} and was not made by ec2_launch; rename the task or the group"
            )
        return groups[0]

    def authorize_checked(self, atoms: set[Atom]) -> None:
        """Authorize ``atoms``; InvalidPermission.Duplicate after a lost answer counts once every one is there."""
        codes = self.not_found_codes
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


def drop_firewall(
    changes: Changes,
    name: str,
    vpc_id: str | None,
    still_shutting_down: bool,
    timeout: float,
    warn: Callable[[str], None],
) -> list[str]:
    """With ``state: absent``: delete the managed group ``name`` (in ``vpc_id``, or in every VPC) unless an
    instance still uses it; return its rules before, as text (diff mode).

    ``still_shutting_down``: instances were terminated without waiting, so the group stays (rerun to delete
    it). ``timeout``: how long to retry DependencyViolation (network interfaces of terminated instances).
    """
    client, before = changes.client, []
    for group in find_managed_groups(client, name, vpc_id):
        gid = group["GroupId"]
        if still_shutting_down and not changes.check_mode:
            warn(f"security group {gid} kept: instances are still shutting down (wait=false); rerun to delete it")
            continue
        if not changes.check_mode and instance_ids_with(client, "instance.group-id", gid):
            warn(f"security group {gid} kept: other instances still use it")
            continue
        before = [rule_text(a) for a in atoms_from_permissions(group.get("IpPermissions"))]
        if changes.will(f"delete security group {name} ({gid})"):
            wait_until(
                lambda gid=gid: not_found(lambda: delete_group(client, gid), ("DependencyViolation",)),
                bool,
                min(timeout, GROUP_DELETE_TIMEOUT),
                f"security group {gid} to be deletable",
                describe=lambda _value, gid=gid: f"{gid} still in use (DependencyViolation)",
            )
    return before


def delete_group(client: AwsClient, group_id: str) -> bool:
    # NotFound: a retried delete whose first answer was lost; the group is gone either way.
    not_found(lambda: client.call("delete_security_group", GroupId=group_id), GROUP_NOT_FOUND)
    return True
