# Copyright: (c) 2026, bakery.ec2 contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to bakery.ec2: the images of a family in one region, what still names them, and retiring the rest.

Used by ami_retire. ``retire_region()`` tells the story of one region: read the family, find who uses its
images (a few calls per page of instances, launch templates, launch configurations and SSM parameters, never
one per image), judge every image (``judge()``, a pure function), then change through a ``Changes``, so check
mode reads the same and changes nothing. Nothing here knows about AnsibleModule. Not a public API.
"""

from __future__ import annotations

import dataclasses
import datetime

from ansible_collections.bakery.ec2.plugins.module_utils._errors import AwsError
from ansible_collections.bakery.ec2.plugins.module_utils._shapes import chunks
from ansible_collections.bakery.ec2.plugins.module_utils._tags import dict_to_tags

# Every state but terminated: such an instance can start again from its image (or is about to run it).
USED_STATES = ("pending", "running", "shutting-down", "stopping", "stopped")
# GetParameters takes at most 10 names.
SSM_BATCH = 10
# What DescribeImages says of an image without deregistration protection.
UNPROTECTED = "disabled"
# The tag ami_retire puts on the image it protects as the newest, so that it can release it once superseded.
PROTECTED_TAG = "bakery:retire-protected"
# An image another run retired meanwhile: it counts as retired.
GONE_CODES = ("InvalidAMIID.NotFound", "InvalidAMIID.Unavailable")
# DeregisterImage refused because protection was turned on after the image was judged.
PROTECTION_CODES = ("OperationNotPermitted",)


@dataclasses.dataclass(frozen=True)
class Policy:
    """What ami_retire keeps, and the lifecycle flags it sets on what it keeps."""

    keep: int = 3
    keep_days: int | None = None
    include_shared: bool = False
    delete_snapshots: bool = True
    deprecate_superseded: bool = True
    protect_newest: bool = True


def snapshot_ids(image):
    """The EBS snapshots an image is made of."""
    return [m["Ebs"]["SnapshotId"] for m in image.get("BlockDeviceMappings", []) if m.get("Ebs", {}).get("SnapshotId")]


def parse_time(value):
    """An EC2 timestamp (``2026-01-02T03:04:05.000Z``) as an aware datetime; None when missing or malformed."""
    if not value:
        return None
    try:
        moment = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def family_request(owners, name, tags):
    """The DescribeImages request for a family: ``name`` (``*`` and ``?``) and every tag of ``tags``."""
    filters = [{"Name": "name", "Values": [name]}] if name else []
    filters += [{"Name": f"tag:{t['Key']}", "Values": [t["Value"]]} for t in dict_to_tags(tags)]
    return {"Owners": list(owners), "Filters": filters, "IncludeDeprecated": True, "MaxResults": 1000}


def newest_first(images):
    return sorted(images, key=lambda img: (img.get("CreationDate") or "", img["ImageId"]), reverse=True)


def fetch_family(ec2, owners, name, tags):
    """The family's images in ``ec2``'s region, newest first (deprecated ones too: they are the family's)."""
    request = family_request(owners, name, tags)
    found = {img["ImageId"]: img for img in ec2.paginate("describe_images", "Images", **request)}
    return newest_first(found.values())


# --- who uses an image -------------------------------------------------------------------------------


def instance_users(ec2, image_ids):
    """``{image_id: ['instance i-... (state)']}`` from DescribeInstances filtered by image, 200 IDs a request."""
    users = {}
    for part in chunks(sorted(image_ids)):
        filters = [{"Name": "image-id", "Values": part}, {"Name": "instance-state-name", "Values": list(USED_STATES)}]
        for reservation in ec2.paginate("describe_instances", "Reservations", Filters=filters, MaxResults=1000):
            for inst in reservation.get("Instances", []):
                if inst.get("ImageId") in image_ids and inst.get("State", {}).get("Name") in USED_STATES:
                    users.setdefault(inst["ImageId"], []).append(
                        f"instance {inst['InstanceId']} ({inst['State']['Name']})"
                    )
    return users


def template_users(ec2, image_ids):
    """Every version of every launch template of the region that names one of ``image_ids``.

    One DescribeLaunchTemplates page for up to 200 templates, then one DescribeLaunchTemplateVersions page
    for up to 200 versions of a template: calls grow with templates and versions, not with images.
    """
    users = {}
    for template in ec2.paginate("describe_launch_templates", "LaunchTemplates", MaxResults=200):
        versions = ec2.paginate(
            "describe_launch_template_versions",
            "LaunchTemplateVersions",
            LaunchTemplateId=template["LaunchTemplateId"],
            MaxResults=200,
        )
        for version in versions:
            image_id = version.get("LaunchTemplateData", {}).get("ImageId")
            if image_id in image_ids:
                users.setdefault(image_id, []).append(
                    f"launch template {template['LaunchTemplateId']} version {version['VersionNumber']}"
                )
    return users


def configuration_users(autoscaling, image_ids):
    """Every Auto Scaling launch configuration of the region that names one of ``image_ids``."""
    users = {}
    configurations = autoscaling.paginate("describe_launch_configurations", "LaunchConfigurations", MaxRecords=100)
    for configuration in configurations:
        if configuration.get("ImageId") in image_ids:
            users.setdefault(configuration["ImageId"], []).append(
                f"launch configuration {configuration['LaunchConfigurationName']}"
            )
    return users


def parameter_users(ssm, image_ids):
    """Every SSM parameter of data type ``aws:ec2:image`` whose value is one of ``image_ids``.

    DescribeParameters lists the names (50 a page, filtered on the data type); GetParameters reads the values,
    10 names a call.
    """
    names = [
        p["Name"]
        for p in ssm.paginate(
            "describe_parameters",
            "Parameters",
            ParameterFilters=[{"Key": "DataType", "Option": "Equals", "Values": ["aws:ec2:image"]}],
            MaxResults=50,
        )
    ]
    users = {}
    for part in chunks(names, SSM_BATCH):
        for param in ssm.call("get_parameters", Names=part).get("Parameters", []):
            if param.get("Value") in image_ids:
                users.setdefault(param["Value"], []).append(f"ssm parameter {param['Name']}")
    return users


def find_users(clients, image_ids):
    """``{image_id: [what uses it]}`` for ``image_ids`` of one region; ``clients``: ec2, ssm, autoscaling."""
    image_ids = set(image_ids)
    users = {}
    if not image_ids:
        return users
    for found in (
        instance_users(clients["ec2"], image_ids),
        template_users(clients["ec2"], image_ids),
        configuration_users(clients["autoscaling"], image_ids),
        parameter_users(clients["ssm"], image_ids),
    ):
        for image_id, names in found.items():
            users.setdefault(image_id, []).extend(names)
    return users


def shared_images(ec2, images):
    """IDs of ``images`` whose launch permissions name another account or group (one call per image asked)."""
    shared = set()
    for image in images:
        try:
            answer = ec2.call("describe_image_attribute", ImageId=image["ImageId"], Attribute="launchPermission")
        except AwsError as err:
            if err.code in GONE_CODES:
                continue
            raise
        if answer.get("LaunchPermissions"):
            shared.add(image["ImageId"])
    return shared


# --- judging ---------------------------------------------------------------------------------------


def is_protected(image):
    return (image.get("DeregistrationProtection") or UNPROTECTED) != UNPROTECTED


def protected_by_us(image):
    return any(t.get("Key") == PROTECTED_TAG for t in image.get("Tags", []))


def judge(images, region, users, shared, policy, now, owned=None):
    """One entry per image (newest first) saying whether it is kept or retired, and why. Pure.

    The keep rules come first (the newest ``keep``, then those younger than ``keep_days``), then what forbids
    retiring (in use, deregistration protection set by someone else, another account's image (not in ``owned``,
    when given), public or shared).
    """
    young_after = now - datetime.timedelta(days=policy.keep_days) if policy.keep_days else None
    entries = []
    for rank, image in enumerate(images, 1):
        image_id = image["ImageId"]
        created = parse_time(image.get("CreationDate"))
        in_use_by = sorted(users.get(image_id, ()))
        if rank <= policy.keep:
            reason = f"newest {rank} of {policy.keep}"
        elif young_after and created and created > young_after:
            reason = f"younger than {policy.keep_days} days"
        elif in_use_by:
            reason = "in use"
        elif is_protected(image) and not protected_by_us(image):
            reason = "protected"
        elif owned is not None and image_id not in owned:
            reason = "not owned"
        elif image.get("Public") and not policy.include_shared:
            reason = "public"
        elif image_id in shared and not policy.include_shared:
            reason = "shared"
        else:
            reason = f"beyond keep {policy.keep}"
        entries.append(
            {
                "image_id": image_id,
                "region": region,
                "name": image.get("Name"),
                "creation_date": image.get("CreationDate"),
                "action": "retire" if reason.startswith("beyond") else "keep",
                "reason": reason,
                "in_use_by": in_use_by,
            }
        )
    return entries


def deprecate_at(now):
    """Now, to the minute below: EC2 rounds DeprecateAt to a minute, and must not round it into the future."""
    return now.replace(second=0, microsecond=0)


def needs_deprecation(image, now):
    when = parse_time(image.get("DeprecationTime"))
    return when is None or when > now


# --- changing --------------------------------------------------------------------------------------


def owned_ids(ec2, family, images):
    """IDs of ``images`` that are the account's own (only its own can be retired, deprecated or protected)."""
    if list(family["owners"]) == ["self"]:
        return {img["ImageId"] for img in images}
    request = family_request(["self"], family["name"], family["tags"])
    return {img["ImageId"] for img in ec2.paginate("describe_images", "Images", **request)}


def other_snapshots(ec2, retired_ids):
    """Snapshots still used by an image of the account in the region that is not being retired."""
    used = set()
    for image in ec2.paginate("describe_images", "Images", Owners=["self"], IncludeDeprecated=True, MaxResults=1000):
        if image["ImageId"] not in retired_ids:
            used.update(snapshot_ids(image))
    return used


def retire(ec2, changes, image, keep_snapshots, result):
    """Deregister ``image`` and delete the snapshots no other image uses; record it in ``result``."""
    image_id, region = image["ImageId"], ec2.region
    snapshots = [s for s in snapshot_ids(image) if s not in keep_snapshots]
    also = f" and delete its snapshots {', '.join(snapshots)}" if snapshots else ""
    if not changes.will(f"deregister {image_id} ({image.get('Name')}) in {region}{also}"):
        result["retired"].append(image_id)
        result["snapshots_deleted"].extend(snapshots)
        return True
    try:
        ec2.call("deregister_image", ImageId=image_id)
    except AwsError as err:
        if err.code in PROTECTION_CODES:
            return False
        if err.code not in GONE_CODES:
            raise
    result["retired"].append(image_id)
    for snapshot in snapshots:
        try:
            # Right after DeregisterImage EC2 may still count the snapshot as in use, for a moment.
            ec2.call("delete_snapshot", retry_codes=("InvalidSnapshot.InUse",), SnapshotId=snapshot)
        except AwsError as err:
            if err.code == "InvalidSnapshot.NotFound":
                continue
            if err.code == "InvalidSnapshot.InUse":  # another image took it meanwhile: it stays
                continue
            raise
        result["snapshots_deleted"].append(snapshot)
    return True


def release(ec2, changes, image):
    """Take off the deregistration protection ami_retire put on an image (no longer the newest, or going)."""
    image_id = image["ImageId"]
    if changes.will(f"take off the deregistration protection ami_retire put on {image_id} in {ec2.region}"):
        ec2.call("disable_image_deregistration_protection", ImageId=image_id)
        ec2.call("delete_tags", Resources=[image_id], Tags=[{"Key": PROTECTED_TAG}])


def lifecycle(ec2, changes, images, entries, policy, now, result, owned):
    """Deprecate the account's kept images that are not the newest; protect the newest when it is the account's."""
    by_id = {img["ImageId"]: img for img in images}
    kept = [by_id[e["image_id"]] for e in entries if e["action"] == "keep"]
    when = deprecate_at(now)
    if policy.deprecate_superseded:
        for image in kept[1:]:  # the newest is always kept, and first
            if image["ImageId"] in owned and needs_deprecation(image, now):
                stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
                if changes.will(f"deprecate {image['ImageId']} in {ec2.region} at {stamp}"):
                    ec2.call("enable_image_deprecation", ImageId=image["ImageId"], DeprecateAt=when)
                result["deprecated"].append(image["ImageId"])
    newest = images[0]
    if policy.protect_newest and newest["ImageId"] in owned and not is_protected(newest):
        if changes.will(f"protect {newest['ImageId']} (the newest) in {ec2.region} from deregistration"):
            ec2.call("enable_image_deregistration_protection", ImageId=newest["ImageId"])
            ec2.call("create_tags", Resources=[newest["ImageId"]], Tags=[{"Key": PROTECTED_TAG, "Value": "newest"}])
        result["protected"].append(newest["ImageId"])


def retire_region(clients, changes, family, policy, now):
    """Judge and retire the family ``{owners, name, tags}`` in the region of ``clients`` (ec2, ssm, autoscaling).

    Returns ``{images, retired, snapshots_deleted, deprecated, protected}`` for the region.
    """
    ec2 = clients["ec2"]
    images = fetch_family(ec2, family["owners"], family["name"], family["tags"])
    result = {"images": [], "retired": [], "snapshots_deleted": [], "deprecated": [], "protected": []}
    if not images:
        return result
    # Who uses the images the keep rules would let go: the newest are kept whatever uses them.
    candidates = [e["image_id"] for e in judge(images, ec2.region, {}, set(), policy, now) if e["action"] == "retire"]
    users = find_users(clients, candidates)
    owned = owned_ids(ec2, family, images)
    entries = judge(images, ec2.region, users, set(), policy, now, owned)
    by_id = {img["ImageId"]: img for img in images}
    if not policy.include_shared:
        asked = [by_id[e["image_id"]] for e in entries if e["action"] == "retire"]
        entries = judge(images, ec2.region, users, shared_images(ec2, asked), policy, now, owned)
    retiring = [e for e in entries if e["action"] == "retire"]
    keep_snapshots = set()
    if retiring and policy.delete_snapshots:
        keep_snapshots = other_snapshots(ec2, {e["image_id"] for e in retiring})
    for image in images[1:]:
        if image["ImageId"] in owned and is_protected(image) and protected_by_us(image):  # no longer the newest
            release(ec2, changes, image)
    for entry in retiring:
        image = by_id[entry["image_id"]]
        snapshots = keep_snapshots if policy.delete_snapshots else set(snapshot_ids(image))
        if not retire(ec2, changes, image, snapshots, result):
            entry.update(action="keep", reason="protected")
    lifecycle(ec2, changes, images, entries, policy, now, result, owned)
    result["images"] = entries
    return result
