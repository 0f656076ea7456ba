# Copyright: (c) 2026, bakery.ec2 contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private: where ec2_launch puts new instances (subnet, availability zone, zones offering the type).
Not a public API.

``subnet_id`` or ``availability_zone`` pins the zone. Otherwise new instances go to the subnet of the group's
newest instance, or to the default VPC's default subnets, only in zones that offer the instance type, with the
next zone as fallback when one has no capacity.
"""

from __future__ import annotations

from ansible_collections.bakery.ec2.plugins.module_utils._aws import TaskError, not_found


def find_subnet(client, subnet_id, zone=None):
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


def candidate_subnets(client, pinned, existing, zones):
    """Subnets new instances may go to, best first: one per zone, all in one VPC.

    The subnets of the group's ``existing`` instances (newest first), then the default subnets of the default
    VPC; only in zone ``pinned`` when given, and only in ``zones`` (those offering the type) unless None.
    """

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


def launch_subnets(client, instance_type, subnet, zone, existing, missing):
    """Where new instances may go, best first; the next one is tried when a zone lacks capacity.

    ``subnet`` (``subnet_id``'s, or None) or ``zone`` (``availability_zone``) pins the zone. Zone offerings are
    checked only when ``missing`` instances are to be launched: existing ones keep their zones (drift otherwise).
    TaskError, before anything is created, when the pinned zone does not offer ``instance_type``.
    """
    zones = offering_zones(client, instance_type) if missing else None
    pinned = subnet["AvailabilityZone"] if subnet else zone
    if zones is not None and pinned and pinned not in zones:
        raise TaskError(
            f"instance_type: {instance_type!r} is not offered in {pinned} "
            f"(offered in {', '.join(sorted(zones))}); nothing was created"
        )
    return [subnet] if subnet else candidate_subnets(client, zone, existing, zones)
