# Copyright: (c) 2026, bakery.ec2 contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private: the ELBv2 target groups ec2_launch registers its instances in (``target_groups``). Not a public API.

Finding the groups (by ARN or name), reading target health, registering, deregistering, and waiting until
targets are healthy or done draining. Every change goes through a :class:`Changes`, so check mode changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ansible_collections.bakery.ec2.plugins.module_utils._changes import wait_until
from ansible_collections.bakery.ec2.plugins.module_utils._errors import AwsError, WaitTimeout
from ansible_collections.bakery.ec2.plugins.module_utils._shapes import chunks

if TYPE_CHECKING:
    from ansible_collections.bakery.ec2.plugins.module_utils._changes import Changes
    from ansible_collections.bakery.ec2.plugins.module_utils._client import AwsClient

TARGET_GROUP_NOT_FOUND = ("TargetGroupNotFound",)
# What ELB may answer for an instance EC2 has just shown running (eventually consistent): retried for a while.
NEW_TARGET_CODES = ("InvalidTarget",)
# ELB's rules: a name of 1 to 32 letters, digits and hyphens, not starting or ending with a hyphen.
NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?$")
ARN_RE = re.compile(r"^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:targetgroup/[A-Za-z0-9-]{1,32}/[0-9a-f]+$")
# State shown for an instance that is not registered in a group at all.
UNREGISTERED = "unregistered"
# States of a target on its way out (ELB says unhealthy.draining for one that was unhealthy when deregistered).
DRAINING = ("draining", "unhealthy.draining")
# Reasons a target will not turn healthy however long one waits: a zone its load balancers do not enable, an instance
# that is not running, ELB's own failure. The wait ends at once.
HOPELESS_REASONS = ("Target.NotInUse", "Target.InvalidState", "Elb.InternalError")


def check_target_group_refs(refs: Iterable[str]) -> str | None:
    """An error message for the first entry of ``target_groups`` that is neither a name nor an ARN, or None."""
    for ref in refs:
        if ref.startswith("arn:"):
            if not ARN_RE.match(ref):
                return (
                    f"target_groups: {ref!r} is not a target group ARN "
                    "(arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID)"
                )
        elif not NAME_RE.match(ref):
            return f"target_groups: {ref!r} is not a target group name (1 to 32 letters, digits and hyphens) or ARN"
    return None


def find_target_groups(client: AwsClient, refs: Iterable[str]) -> list[dict[str, Any]]:
    """The target groups ``refs`` (ARNs or names) name, in order, without duplicates; TaskError-worthy message
    (ValueError) for one that is missing or not of target type ``instance``.

    One call per entry: ELB fails a whole DescribeTargetGroups when one of several names is unknown, and the
    message must name it.
    """
    groups: dict[str, dict[str, Any]] = {}
    for ref in refs:
        key = "TargetGroupArns" if ref.startswith("arn:") else "Names"
        try:
            found = client.call("describe_target_groups", **{key: [ref]})["TargetGroups"]
        except AwsError as err:
            if err.code not in TARGET_GROUP_NOT_FOUND:
                raise
            found = []
        if not found:
            raise ValueError(f"target_groups: {ref!r} not found in {client.region}")
        group = found[0]
        if group.get("TargetType", "instance") != "instance":
            raise ValueError(
                f"target_groups: {ref!r} has target type {group['TargetType']!r}; instances register only in "
                "target groups of type 'instance'"
            )
        groups.setdefault(group["TargetGroupArn"], group)
    return list(groups.values())


def describe_health(entries: Iterable[dict[str, Any]]) -> str:
    """``i-1 unhealthy (Target.FailedHealthChecks) in web-tg, ...`` for failure messages."""
    parts = []
    for entry in entries:
        why = f" ({entry['reason']})" if entry.get("reason") else ""
        parts.append(f"{entry['instance_id']} {entry['state']}{why} in {entry['target_group_name']}")
    return ", ".join(parts)


class HealthTimeout(Exception):
    """Targets not healthy in time; ``entries``: their last health (as :meth:`TargetGroups.health` gives it)."""

    def __init__(self, timeout: float, entries: list[dict[str, Any]], message: str | None = None) -> None:
        self.timeout = timeout
        self.entries = entries
        # what a rolled-back refresh says of its batch
        self.summary = f"not healthy in every target group after {timeout}s ({describe_health(entries)})"
        super().__init__(message or f"not healthy after {timeout}s: {describe_health(entries)}")


class TargetHopeless(HealthTimeout):
    """A target ELB will never route to (:data:`HOPELESS_REASONS`): the wait ended at once."""

    def __init__(self, entries: list[dict[str, Any]], message: str) -> None:
        super().__init__(0, entries, message)
        self.summary = f"cannot serve: {message}"


class TargetGroups:
    """The groups of ``target_groups`` (DescribeTargetGroups entries) and the registrations of instances in them."""

    def __init__(self, changes: Changes, groups: list[dict[str, Any]]) -> None:
        self.changes = changes
        self.client = changes.client
        self.groups = groups

    def registered(self) -> dict[str, dict[str, dict[str, Any]]]:
        """``{group ARN: {instance ID: TargetHealth}}`` of every target registered (or draining) in each group."""
        return {
            group["TargetGroupArn"]: {
                desc["Target"]["Id"]: desc.get("TargetHealth") or {}
                for desc in self.client.call("describe_target_health", TargetGroupArn=group["TargetGroupArn"])[
                    "TargetHealthDescriptions"
                ]
            }
            for group in self.groups
        }

    def health(
        self, ids: Iterable[str], registered: dict[str, dict[str, dict[str, Any]]] | None = None
    ) -> list[dict[str, Any]]:
        """One entry per instance of ``ids`` and group: instance_id, target group ARN and name, state, reason,
        description (``unregistered`` when the instance is not in the group)."""
        registered = self.registered() if registered is None else registered
        entries = []
        for iid in ids:
            for group in self.groups:
                health = registered[group["TargetGroupArn"]].get(iid)
                entry: dict[str, Any] = {
                    "instance_id": iid,
                    "target_group_arn": group["TargetGroupArn"],
                    "target_group_name": group["TargetGroupName"],
                    "state": health.get("State", "unavailable") if health is not None else UNREGISTERED,
                }
                for key, field in (("reason", "Reason"), ("description", "Description")):
                    if (health or {}).get(field):
                        entry[key] = health[field]
                entries.append(entry)
        return entries

    def register(self, ids: Sequence[str], new: bool = False) -> list[str]:
        """Register each of ``ids`` (running instances) where it is not registered, or draining; return those
        registered now anywhere. ``new``: some were launched just now (ELB may not know them yet)."""
        changed, _seen = self._change(
            ids,
            "register",
            "in",
            lambda health: health is None or health.get("State") in DRAINING,
            NEW_TARGET_CODES if new else (),
        )
        return changed

    def deregister(self, ids: Sequence[str]) -> list[str]:
        """Deregister each of ``ids`` from every group where it is registered (and not already draining);
        return those that were registered anywhere (draining included), whose draining is to be waited for."""
        _changed, seen = self._change(
            ids, "deregister", "from", lambda health: health is not None and health.get("State") not in DRAINING
        )
        return seen

    def _change(
        self,
        ids: Sequence[str],
        verb: str,
        preposition: str,
        needed: Callable[[dict[str, Any] | None], bool],
        created_codes: Collection[str] = (),
    ) -> tuple[list[str], list[str]]:
        """``verb`` (register, deregister) each of ``ids`` in every group where ``needed(its TargetHealth or
        None)``; return the IDs changed anywhere and those registered (or draining) anywhere before.
        ``created_codes``: errors retried for a while (see :meth:`Changes.act`)."""
        changed: list[str] = []
        seen: list[str] = []
        if not ids or not self.groups:
            return changed, seen
        registered = self.registered()
        for group in self.groups:
            here = registered[group["TargetGroupArn"]]
            todo = [iid for iid in ids if needed(here.get(iid))]
            for part in chunks(todo):
                self.changes.act(
                    f"{verb} {', '.join(part)} {preposition} target group {group['TargetGroupName']}",
                    f"{verb}_targets",
                    created_codes,
                    TargetGroupArn=group["TargetGroupArn"],
                    Targets=[{"Id": iid} for iid in part],
                )
            changed += [iid for iid in todo if iid not in changed]
            seen += [iid for iid in ids if iid in here and iid not in seen]
        return changed, seen

    def wait_healthy(self, ids: Sequence[str], timeout: float, zones: dict[str, str | None] | None = None) -> None:
        """Wait until each of ``ids`` is healthy in every group; :class:`HealthTimeout` with the others if not, and
        :class:`TargetHopeless` at once for a target ELB will never route to. ``zones``: ``{instance ID: zone}``,
        named in that message."""
        if not ids or not self.groups or self.changes.check_mode:
            return
        last: list[dict[str, Any]] = []

        def fetch() -> list[dict[str, Any]]:
            last[:] = self.health(ids)
            return last

        def done(entries: list[dict[str, Any]]) -> bool:
            hopeless = [entry for entry in entries if entry.get("reason") in HOPELESS_REASONS]
            if hopeless:
                raise TargetHopeless(hopeless, self.hopeless_message(hopeless[0], zones or {}))
            return all(entry["state"] == "healthy" for entry in entries)

        try:
            wait_until(
                fetch,
                done,
                timeout,
                f"{len(ids)} instance(s) to be healthy",
                # A target turns healthy at a health check (every 5 s at the shortest): asking once a second ends the
                # wait within a second of it, for one DescribeTargetHealth per group and second.
                first_delay=1.0,
                max_delay=1.0,
            )
        except WaitTimeout:
            raise HealthTimeout(timeout, [entry for entry in last if entry["state"] != "healthy"]) from None

    def balancer_zones(self, group: dict[str, Any]) -> list[str]:
        """The availability zones the load balancers of ``group`` (a DescribeTargetGroups entry) enable, sorted."""
        arns = group.get("LoadBalancerArns") or []
        if not arns:
            return []
        found = self.client.call("describe_load_balancers", LoadBalancerArns=arns)["LoadBalancers"]
        return sorted({zone["ZoneName"] for lb in found for zone in lb.get("AvailabilityZones") or ()})

    def enabled_zones(self) -> set[str] | None:
        """The zones every group's load balancers enable (None when no group has a load balancer yet)."""
        zones: set[str] | None = None
        for group in self.groups:
            if group.get("LoadBalancerArns"):
                mine = set(self.balancer_zones(group))
                zones = mine if zones is None else zones & mine
        return zones

    def hopeless_message(self, entry: dict[str, Any], zones: dict[str, str | None]) -> str:
        """One line: the instance, its zone, why ELB will not route to it, the zones its load balancers enable."""
        group = next(g for g in self.groups if g["TargetGroupArn"] == entry["target_group_arn"])
        where = f" in {zones[entry['instance_id']]}" if zones.get(entry["instance_id"]) else ""
        enabled = ", ".join(self.balancer_zones(group)) or "none (no load balancer uses it)"
        why = f": {entry['description']}" if entry.get("description") else ""
        return (
            f"{entry['instance_id']}{where} is {entry['state']} ({entry['reason']}{why}) in target group "
            f"{entry['target_group_name']}, whose load balancers enable {enabled}; it will not turn healthy"
        )

    def wait_drained(self, ids: Iterable[str], timeout: float) -> None:
        """Wait until none of ``ids`` is registered or draining in any group (deregistration done)."""
        if not ids or not self.groups or self.changes.check_mode:
            return
        wanted = set(ids)

        def still_there(registered: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
            return sorted(
                f"{iid} {health.get('State', '?')} in {arn.split(':')[-1]}"
                for arn, targets in registered.items()
                for iid, health in targets.items()
                if iid in wanted
            )

        wait_until(
            self.registered,
            lambda registered: not still_there(registered),
            timeout,
            f"{len(wanted)} instance(s) to finish draining",
            describe=lambda registered: ", ".join(still_there(registered)),
            first_delay=1.0,
            max_delay=5.0,
        )
