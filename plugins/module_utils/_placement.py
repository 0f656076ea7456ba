# Copyright: (c) 2026, bakery.ec2 contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private: where ec2_launch puts new instances (subnet, availability zone, zones offering the type).
Not a public API.

``subnet_id`` or ``availability_zone`` pins the zone. ``subnet_ids`` spreads the group over the zones of its
subnets: new instances go to the zone with the fewest (:func:`spread`), scale-in takes from the zone with the most
(:func:`surplus_of`). Otherwise new instances go to the subnet of the group's newest instance, or to the default
VPC's default subnets, only in zones that offer the instance type, with the next zone as fallback when one has no
capacity.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ansible_collections.bakery.ec2.plugins.module_utils._errors import TaskError, not_found
from ansible_collections.bakery.ec2.plugins.module_utils._shapes import chunks

if TYPE_CHECKING:
    from ansible_collections.bakery.ec2.plugins.module_utils._client import AwsClient


def find_subnet(client: AwsClient, subnet_id: str, zone: str | None = None) -> dict[str, Any]:
    """The subnet ``subnet_id`` (``SubnetId``, ``VpcId``, ``AvailabilityZone``); TaskError if it is not there
    or not in ``zone`` (``availability_zone``, when given)."""
    subnets = not_found(
        lambda: client.call("describe_subnets", SubnetIds=[subnet_id])["Subnets"],
        ("InvalidSubnetID.NotFound",),
    )
    if not subnets:
        raise TaskError(f"subnet_id: {subnet_id!r} not found in {client.region}")
    subnet = subnets[0]
    if zone and subnet["AvailabilityZone"] != zone:
        raise TaskError(
            f"availability_zone: {zone!r} conflicts with subnet {subnet['SubnetId']} in {subnet['AvailabilityZone']}"
        )
    return subnet


def find_subnets(client: AwsClient, subnet_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The subnets ``subnet_ids`` (``subnet_ids``), in its order; TaskError naming the value unless each is there,
    all are in one VPC and each in a zone of its own."""
    found = {
        subnet["SubnetId"]: subnet
        for part in chunks(list(subnet_ids))
        for subnet in client.paginate("describe_subnets", "Subnets", Filters=[{"Name": "subnet-id", "Values": part}])
    }
    for subnet_id in subnet_ids:
        if subnet_id not in found:
            raise TaskError(f"subnet_ids: {subnet_id!r} not found in {client.region}")
    subnets = [found[subnet_id] for subnet_id in subnet_ids]
    first, zones = subnets[0], {}
    for subnet in subnets:
        if subnet["VpcId"] != first["VpcId"]:
            raise TaskError(
                f"subnet_ids: {subnet['SubnetId']} is in {subnet['VpcId']} but {first['SubnetId']} is in "
                f"{first['VpcId']}; give subnets of one VPC"
            )
        other = zones.setdefault(subnet["AvailabilityZone"], subnet)
        if other is not subnet:
            raise TaskError(
                f"subnet_ids: {other['SubnetId']} and {subnet['SubnetId']} are both in {subnet['AvailabilityZone']}; "
                "give one subnet per zone"
            )
    return subnets


def offering_zones(client: AwsClient, instance_type: str) -> set[str]:
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


def candidate_subnets(
    client: AwsClient, pinned: str | None, existing: Sequence[dict[str, Any]], zones: Collection[str] | None
) -> list[dict[str, Any]]:
    """Subnets new instances may go to, best first: one per zone, all in one VPC.

    The subnets of the group's ``existing`` instances (newest first), then the default subnets of the default
    VPC; only in zone ``pinned`` when given, and only in ``zones`` (those offering the type) unless None.
    """

    def usable(zone: str) -> bool:
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
    subnets: list[dict[str, Any]] = []
    seen: set[str] = set()
    for subnet in found:
        if subnet["VpcId"] == found[0]["VpcId"] and subnet["AvailabilityZone"] not in seen:
            seen.add(subnet["AvailabilityZone"])
            subnets.append(subnet)
    return subnets


def launch_subnets(
    client: AwsClient,
    instance_type: str,
    subnet: dict[str, Any] | None,
    zone: str | None,
    existing: Sequence[dict[str, Any]],
    missing: int,
    listed: Sequence[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Where new instances may go, best first; the next one is tried when a zone lacks capacity.

    ``subnet`` (``subnet_id``'s, or None) or ``zone`` (``availability_zone``) pins the zone; ``listed`` (the
    subnets of ``subnet_ids``, or None) are the places, in their order. Zone offerings are checked only when
    ``missing`` instances are to be launched: existing ones keep their zones (drift otherwise). TaskError, before
    anything is created, when the pinned zone, or the zone of a listed subnet, does not offer ``instance_type``.
    """
    zones = offering_zones(client, instance_type) if missing else None
    if listed:
        for place in listed:
            if zones is not None and place["AvailabilityZone"] not in zones:
                raise TaskError(
                    f"subnet_ids: {place['SubnetId']} is in {place['AvailabilityZone']}, which does not offer "
                    f"instance_type {instance_type!r} (offered in {', '.join(sorted(zones))}); nothing was created"
                )
        return list(listed)
    pinned = subnet["AvailabilityZone"] if subnet else zone
    if zones is not None and pinned and pinned not in zones:
        raise TaskError(
            f"instance_type: {instance_type!r} is not offered in {pinned} "
            f"(offered in {', '.join(sorted(zones))}); nothing was created"
        )
    return [subnet] if subnet else candidate_subnets(client, zone, existing, zones)


# --- spreading a group over the zones of subnet_ids (pure) ------------------------------------------------


def zone_counts(subnets: Iterable[dict[str, Any]], zones: Iterable[str]) -> dict[str, int]:
    """``{zone: instances}`` of ``zones`` (one entry per instance): the zones of ``subnets`` first, in their order
    (0 when empty), then any other zone an instance is in."""
    counts = dict.fromkeys((subnet["AvailabilityZone"] for subnet in subnets), 0)
    for zone in zones:
        counts[zone] = counts.get(zone, 0) + 1
    return counts


def spread(
    subnets: Sequence[dict[str, Any]], zones: Iterable[str], missing: int
) -> list[tuple[list[dict[str, Any]], int]]:
    """Where ``missing`` new instances go among ``subnets`` (one per zone), next to instances in ``zones``.

    One at a time to the zone with the fewest instances, ties to the subnet listed first. Returns ``[(tried, n)]``,
    in the order of ``subnets``: ``n`` instances for ``tried[0]``, and the other subnets in the order to try when its
    zone has no capacity (fewest instances once all are placed first, then list order).
    """
    counts = zone_counts(subnets, zones)
    placed = [0] * len(subnets)
    for _new in range(missing):
        index = min(range(len(subnets)), key=lambda i: (counts[subnets[i]["AvailabilityZone"]], i))
        counts[subnets[index]["AvailabilityZone"]] += 1
        placed[index] += 1
    plan: list[tuple[list[dict[str, Any]], int]] = []
    for index, count in enumerate(placed):
        if count:
            others = sorted(
                (i for i in range(len(subnets)) if i != index),
                key=lambda i: (counts[subnets[i]["AvailabilityZone"]], i),
            )
            plan.append(([subnets[index]] + [subnets[i] for i in others], count))
    return plan


def surplus_of(
    subnets: Iterable[dict[str, Any]], instances: Sequence[dict[str, Any]], surplus: int
) -> list[dict[str, Any]]:
    """The ``surplus`` of ``instances`` (oldest first) to remove when the group spreads over ``subnets``.

    Instances outside the zones of ``subnets`` go first, oldest first; then one at a time from the zone with the most
    instances (ties: the zone listed last, so that scaling in undoes scaling out), the oldest there. Returned in the
    order of ``instances``.
    """
    listed = [subnet["AvailabilityZone"] for subnet in subnets]

    def zone_of(inst: dict[str, Any]) -> str | None:
        return (inst.get("Placement") or {}).get("AvailabilityZone")

    going = [inst for inst in instances if zone_of(inst) not in listed][:surplus]
    left = {zone: [inst for inst in instances if zone_of(inst) == zone] for zone in listed}
    while len(going) < surplus:
        zone = max(reversed(listed), key=lambda z: len(left[z]))
        going.append(left[zone].pop(0))
    ids = {inst["InstanceId"] for inst in going}
    return [inst for inst in instances if inst["InstanceId"] in ids]
