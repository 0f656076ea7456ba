# Copyright: (c) 2026, bakery.ec2 contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private to bakery.ec2: images in one region: made from an instance, copied, waited for, tagged, shared and
removed (ami_from_instance); a family's images, what still names them, and retiring the rest (ami_retire).

``retire_region()`` tells the story of one region: read the family, find who uses its images (a few calls per
page of instances, launch templates, launch configurations and SSM parameters, never one per image), judge every
image (``judge()``, a pure function), then change through a ``Changes``, so check mode reads the same and changes
nothing. ``bake_image()`` and ``bake_copies()`` keep or (re)create an image and its copies; ``settle()`` waits for
one and removes it when EC2 fails it; ``reconcile()`` gives it its tags and launch permissions; ``remove_image()``
deregisters it with its snapshots. Nothing here knows about AnsibleModule. Not a public API.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import time
from collections.abc import Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ansible_collections.bakery.ec2.plugins.module_utils._changes import Changes, wait_until
from ansible_collections.bakery.ec2.plugins.module_utils._errors import AwsError
from ansible_collections.bakery.ec2.plugins.module_utils._instances import KMS_NEEDS, KMS_STATE_CODES, describe_kms_keys
from ansible_collections.bakery.ec2.plugins.module_utils._shapes import chunks
from ansible_collections.bakery.ec2.plugins.module_utils._tags import (
    compare_tags,
    dict_to_tags,
    tag_specifications,
    tags_to_dict,
)

if TYPE_CHECKING:
    from ansible_collections.bakery.ec2.plugins.module_utils._client import AwsClient

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


def snapshot_ids(image: dict[str, Any]) -> list[str]:
    """The EBS snapshots an image is made of."""
    return [m["Ebs"]["SnapshotId"] for m in image.get("BlockDeviceMappings", []) if m.get("Ebs", {}).get("SnapshotId")]


def parse_time(value: object) -> datetime.datetime | None:
    """An EC2 timestamp (``2026-01-02T03:04:05.000Z``) as an aware datetime; None when missing or malformed."""
    if not value:
        return None
    try:
        moment = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def family_request(owners: Iterable[str], name: str | None, tags: dict[str, Any] | None) -> dict[str, Any]:
    """The DescribeImages request for a family: ``name`` (``*`` and ``?``) and every tag of ``tags``."""
    filters = [{"Name": "name", "Values": [name]}] if name else []
    filters += [{"Name": f"tag:{t['Key']}", "Values": [t["Value"]]} for t in dict_to_tags(tags)]
    return {"Owners": list(owners), "Filters": filters, "IncludeDeprecated": True, "MaxResults": 1000}


def newest_first(images: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(images, key=lambda img: (img.get("CreationDate") or "", img["ImageId"]), reverse=True)


def fetch_family(
    ec2: AwsClient, owners: Iterable[str], name: str | None, tags: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The family's images in ``ec2``'s region, newest first (deprecated ones too: they are the family's)."""
    request = family_request(owners, name, tags)
    found = {img["ImageId"]: img for img in ec2.paginate("describe_images", "Images", **request)}
    return newest_first(found.values())


# --- who uses an image -------------------------------------------------------------------------------


def instance_users(ec2: AwsClient, image_ids: Collection[str]) -> dict[str, list[str]]:
    """``{image_id: ['instance i-... (state)']}`` from DescribeInstances filtered by image, 200 IDs a request."""
    users: dict[str, list[str]] = {}
    for part in chunks(sorted(image_ids)):
        filters = [{"Name": "image-id", "Values": part}, {"Name": "instance-state-name", "Values": list(USED_STATES)}]
        for reservation in ec2.paginate("describe_instances", "Reservations", Filters=filters, MaxResults=1000):
            for inst in reservation.get("Instances", []):
                if inst.get("ImageId") in image_ids and inst.get("State", {}).get("Name") in USED_STATES:
                    users.setdefault(inst["ImageId"], []).append(
                        f"instance {inst['InstanceId']} ({inst['State']['Name']})"
                    )
    return users


def template_users(ec2: AwsClient, image_ids: Collection[str]) -> dict[str, list[str]]:
    """Every version of every launch template of the region that names one of ``image_ids``.

    One DescribeLaunchTemplates page for up to 200 templates, then one DescribeLaunchTemplateVersions page
    for up to 200 versions of a template: calls grow with templates and versions, not with images.
    """
    users: dict[str, list[str]] = {}
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


def configuration_users(autoscaling: AwsClient, image_ids: Collection[str]) -> dict[str, list[str]]:
    """Every Auto Scaling launch configuration of the region that names one of ``image_ids``."""
    users: dict[str, list[str]] = {}
    configurations = autoscaling.paginate("describe_launch_configurations", "LaunchConfigurations", MaxRecords=100)
    for configuration in configurations:
        if configuration.get("ImageId") in image_ids:
            users.setdefault(configuration["ImageId"], []).append(
                f"launch configuration {configuration['LaunchConfigurationName']}"
            )
    return users


def parameter_users(ssm: AwsClient, image_ids: Collection[str]) -> dict[str, list[str]]:
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
    users: dict[str, list[str]] = {}
    for part in chunks(names, SSM_BATCH):
        for param in ssm.call("get_parameters", Names=part).get("Parameters", []):
            if param.get("Value") in image_ids:
                users.setdefault(param["Value"], []).append(f"ssm parameter {param['Name']}")
    return users


def find_users(clients: dict[str, AwsClient], image_ids: Iterable[str]) -> dict[str, list[str]]:
    """``{image_id: [what uses it]}`` for ``image_ids`` of one region; ``clients``: ec2, ssm, autoscaling."""
    image_ids = set(image_ids)
    users: dict[str, list[str]] = {}
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


def shared_images(ec2: AwsClient, images: Iterable[dict[str, Any]]) -> set[str]:
    """IDs of ``images`` whose launch permissions name another account or group (one call per image asked)."""
    shared: set[str] = set()
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


def is_protected(image: dict[str, Any]) -> bool:
    return (image.get("DeregistrationProtection") or UNPROTECTED) != UNPROTECTED


def protected_by_us(image: dict[str, Any]) -> bool:
    return any(t.get("Key") == PROTECTED_TAG for t in image.get("Tags", []))


def judge(
    images: Iterable[dict[str, Any]],
    region: str,
    users: dict[str, list[str]],
    shared: Collection[str],
    policy: Policy,
    now: datetime.datetime,
    owned: Collection[str] | None = None,
) -> list[dict[str, Any]]:
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


def deprecate_at(now: datetime.datetime) -> datetime.datetime:
    """The deprecation time to ask for: EC2 refuses a time in the past ("You can't specify a date in the past") and
    rounds to the nearest minute, so the start of the minute after next: 1 to 2 minutes from now, in the future
    still when the request arrives, and never rounded into the past."""
    return now.replace(second=0, microsecond=0) + datetime.timedelta(minutes=2)


def needs_deprecation(image: dict[str, Any], now: datetime.datetime) -> bool:
    """Whether ``image`` needs a deprecation time: it has none, or one later than what the module would set."""
    when = parse_time(image.get("DeprecationTime"))
    return when is None or when > deprecate_at(now)


# --- changing --------------------------------------------------------------------------------------


def owned_ids(ec2: AwsClient, family: dict[str, Any], images: Iterable[dict[str, Any]]) -> set[str]:
    """IDs of ``images`` that are the account's own (only its own can be retired, deprecated or protected)."""
    if list(family["owners"]) == ["self"]:
        return {img["ImageId"] for img in images}
    request = family_request(["self"], family["name"], family["tags"])
    return {img["ImageId"] for img in ec2.paginate("describe_images", "Images", **request)}


def other_snapshots(ec2: AwsClient, retired_ids: Collection[str]) -> set[str]:
    """Snapshots still used by an image of the account in the region that is not being retired."""
    used: set[str] = set()
    for image in ec2.paginate("describe_images", "Images", Owners=["self"], IncludeDeprecated=True, MaxResults=1000):
        if image["ImageId"] not in retired_ids:
            used.update(snapshot_ids(image))
    return used


def retire(
    ec2: AwsClient, changes: Changes, image: dict[str, Any], keep_snapshots: Collection[str], result: dict[str, Any]
) -> bool:
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
        # Still in use after the retries: another image took it meanwhile, and it stays.
        if delete_snapshot(ec2, snapshot, tolerated=("InvalidSnapshot.InUse",)):
            result["snapshots_deleted"].append(snapshot)
    return True


def delete_snapshot(ec2: AwsClient, snapshot_id: str, tolerated: Collection[str] = ()) -> bool:
    """Delete a snapshot of an image just deregistered; False when it is gone already (or refused with a
    ``tolerated`` code)."""
    try:
        # Right after DeregisterImage EC2 may still count the snapshot as in use, for a moment.
        ec2.call("delete_snapshot", retry_codes=("InvalidSnapshot.InUse",), SnapshotId=snapshot_id)
    except AwsError as err:
        if err.code == "InvalidSnapshot.NotFound" or err.code in tolerated:
            return False
        raise
    return True


def release(ec2: AwsClient, changes: Changes, image: dict[str, Any]) -> None:
    """Take off the deregistration protection ami_retire put on an image (no longer the newest, or going)."""
    image_id = image["ImageId"]
    if changes.will(f"take off the deregistration protection ami_retire put on {image_id} in {ec2.region}"):
        ec2.call("disable_image_deregistration_protection", ImageId=image_id)
        ec2.call("delete_tags", Resources=[image_id], Tags=[{"Key": PROTECTED_TAG}])


def lifecycle(
    ec2: AwsClient,
    changes: Changes,
    images: list[dict[str, Any]],
    entries: list[dict[str, Any]],
    policy: Policy,
    now: datetime.datetime,
    result: dict[str, Any],
    owned: Collection[str],
) -> None:
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


def retire_region(
    clients: dict[str, AwsClient], changes: Changes, family: dict[str, Any], policy: Policy, now: datetime.datetime
) -> dict[str, Any]:
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
    keep_snapshots: set[str] = set()
    if retiring and policy.delete_snapshots:
        keep_snapshots = other_snapshots(ec2, {e["image_id"] for e in retiring})
    for image in images[1:]:
        if image["ImageId"] in owned and is_protected(image) and protected_by_us(image):  # no longer the newest
            release(ec2, changes, image)
    if retiring and not changes.check_mode:
        # Asked again right before deregistering: what started to use an image since is reported, not broken.
        now_used = find_users(clients, [e["image_id"] for e in retiring])
        for entry in retiring:
            if now_used.get(entry["image_id"]):
                entry.update(action="keep", reason="in use", in_use_by=sorted(now_used[entry["image_id"]]))
        retiring = [e for e in retiring if e["action"] == "retire"]
    for entry in retiring:
        image = by_id[entry["image_id"]]
        snapshots = keep_snapshots if policy.delete_snapshots else set(snapshot_ids(image))
        if not retire(ec2, changes, image, snapshots, result):
            entry.update(action="keep", reason="protected")
    lifecycle(ec2, changes, images, entries, policy, now, result, owned)
    result["images"] = entries
    return result


# --- images from instances: create, copy, wait for, tag, share, remove -----------------------------

LINEAGE_INSTANCE = "bakery:source-instance-id"
LINEAGE_IMAGE = "bakery:source-image-id"
LINEAGE_COPY = "bakery:copied-from"
LINEAGE_KEYS = (LINEAGE_INSTANCE, LINEAGE_IMAGE, LINEAGE_COPY)
WAITING_IMAGE_STATES = ("pending", "transient")
# Right after a create, a describe or a tag call may not see the new resource yet (only then retried).
NEW_RESOURCE_CODES = ("InvalidAMIID.NotFound", "InvalidAMIID.Unavailable", "InvalidSnapshot.NotFound")
# How an endpoint refuses a snapshot TagSpecification in CreateImage (moto answers a web page, a 500).
SNAPSHOT_TAGS_REFUSED = ("InvalidResponse", "InvalidParameterValue", "InvalidParameterCombination", "UnknownParameter")
# A failed copy that was cleaned up keeps its client token: the next run moves on to the next token.
COPY_TOKEN_GENERATIONS = 5
IMAGE_POLL_MAX_S = 1.5


def lineage(instance: dict[str, Any]) -> dict[str, str]:
    return {LINEAGE_INSTANCE: instance["InstanceId"], LINEAGE_IMAGE: instance.get("ImageId", "")}


def without_lineage(tags: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in tags.items() if k not in LINEAGE_KEYS}


def settable(tags: dict[str, Any]) -> dict[str, Any]:
    """Tags that can be written (``aws:`` tags are EC2's own)."""
    return {k: v for k, v in tags.items() if not k.lower().startswith("aws:")}


def create_request(
    params: dict[str, Any], instance: dict[str, Any], tags: dict[str, Any], tag_snapshots: bool = True
) -> dict[str, Any]:
    """CreateImage's request; the image and (``tag_snapshots``) its snapshots are tagged at creation."""
    request = {"InstanceId": instance["InstanceId"], "Name": params["name"], "NoReboot": params["no_reboot"]}
    if params["description"] is not None:
        request["Description"] = params["description"]
    specs = tag_specifications(settable(tags), *(("image", "snapshot") if tag_snapshots else ("image",)))
    if specs:
        request["TagSpecifications"] = specs
    return request


def copy_token(source_image_id: str, region: str, name: str, generation: int = 0, kms_key: str | None = None) -> str:
    """The same copy request gets the same token, so EC2 makes one copy even when the call is sent twice.

    ``generation`` moves on past a token whose copy failed and was removed (EC2 would return that copy again);
    ``kms_key``: the key the copy is encrypted with (another key is another request).
    """
    key = f"{source_image_id}/{region}/{name}" + (f"/{generation}" if generation else "")
    key += f"/kms:{kms_key}" if kms_key else ""
    return hashlib.sha256(key.encode()).hexdigest()[:64]


def create_action(params: dict[str, Any], instance: dict[str, Any], region: str) -> str:
    action = f"create image {params['name']!r} from {instance['InstanceId']} ({region})"
    if not params["no_reboot"]:
        action += f", rebooting {instance['InstanceId']} (no_reboot is false)"
    return action


def tags_after(current: dict[str, str], desired: dict[str, Any] | None, purge: bool) -> dict[str, str]:
    to_set, to_unset = compare_tags(current, desired, purge, keep=LINEAGE_KEYS)
    tags = dict(current, **to_set)
    for key in to_unset:
        tags.pop(key, None)
    return tags


def group_tag_changes(
    current_by_id: dict[str, dict[str, str]], desired: dict[str, Any] | None, purge: bool
) -> tuple[list[tuple[list[str], dict[str, str]]], list[tuple[list[str], list[str]]]]:
    """CreateTags and DeleteTags calls that give each resource ``desired``, one call per identical change."""
    sets: dict[tuple[tuple[str, str], ...], list[str]] = {}
    unsets: dict[tuple[str, ...], list[str]] = {}
    for resource_id, current in current_by_id.items():
        to_set, to_unset = compare_tags(current, desired, purge, keep=LINEAGE_KEYS)
        if to_set:
            sets.setdefault(tuple(sorted(to_set.items())), []).append(resource_id)
        if to_unset:
            unsets.setdefault(tuple(to_unset), []).append(resource_id)
    return [(ids, dict(items)) for items, ids in sets.items()], [(ids, list(keys)) for keys, ids in unsets.items()]


def launch_permission_changes(current: Iterable[str], desired: Iterable[str]) -> tuple[list[str], list[str]]:
    """``(add, remove)`` lists of account IDs."""
    return sorted(set(desired) - set(current)), sorted(set(current) - set(desired))


def describe_image_state(image: dict[str, Any]) -> str | None:
    reason = image.get("StateReason") or {}
    return f"{image.get('State')} ({reason.get('Message')})" if reason.get("Message") else image.get("State")


def find_images(client: AwsClient, name: str) -> list[dict[str, Any]]:
    """Images of the account named ``name``, newest first (EC2 allows one; some endpoints allow more)."""
    images = client.paginate("describe_images", "Images", Owners=["self"], Filters=[{"Name": "name", "Values": [name]}])
    images = [img for img in images if img.get("State") != "deregistered"]
    return sorted(images, key=lambda img: (img.get("CreationDate") or "", img["ImageId"]), reverse=True)


def call_on(client: AwsClient, new: bool, operation: str, **params: Any) -> dict[str, Any]:
    """``client.call``; when ``new`` (this run created the image), its NotFound is retried for a bounded time."""
    if new:
        return client.call_created(operation, NEW_RESOURCE_CODES, **params)
    return client.call(operation, **params)


def fetch_image(client: AwsClient, image_id: str, new: bool = False) -> dict[str, Any]:
    images = call_on(client, new, "describe_images", ImageIds=[image_id]).get("Images", [])
    if not images:
        raise AwsError("DescribeImages", "InvalidAMIID.NotFound", f"image {image_id} is gone from {client.region}")
    return images[0]


def launch_users(client: AwsClient, image_id: str, new: bool = False) -> list[str]:
    resp = call_on(client, new, "describe_image_attribute", ImageId=image_id, Attribute="launchPermission")
    return sorted(p["UserId"] for p in resp.get("LaunchPermissions", []) if "UserId" in p)


def call_tagging_snapshots(client: AwsClient, operation: str, request: dict[str, Any]) -> dict[str, Any]:
    """CreateImage or CopyImage with the new snapshots tagged at creation.

    An endpoint that refuses snapshot tags there gets the request without them: :func:`reconcile` tags the
    snapshots once they exist.
    """
    try:
        return client.call(operation, **request)
    except AwsError as err:
        specs = request.get("TagSpecifications", [])
        if err.code not in SNAPSHOT_TAGS_REFUSED or not any(spec["ResourceType"] == "snapshot" for spec in specs):
            raise
    request = {key: value for key, value in request.items() if key != "TagSpecifications"}
    image_specs = [spec for spec in specs if spec["ResourceType"] != "snapshot"]
    if image_specs:
        request["TagSpecifications"] = image_specs
    return client.call(operation, **request)


def create_image(client: AwsClient, request: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Return ``(image, created)``; a name that EC2 finds taken returns the image of that name.

    A created image is returned as ``{"ImageId": ...}``; :func:`settle` fetches it.
    """
    try:
        return {"ImageId": call_tagging_snapshots(client, "create_image", request)["ImageId"]}, True
    except AwsError as err:
        if err.code != "InvalidAMIName.Duplicate":
            raise
    # Lost the race (or a retried request had already succeeded): the image is there, maybe not yet listed.
    found = wait_until(
        lambda: find_images(client, request["Name"]),
        bool,
        timeout=30,
        what=f"image {request['Name']!r} that CreateImage says exists",
        describe=lambda images: "not listed",
    )
    return found[0], False


def remove_image(client: AwsClient, changes: Changes, image: dict[str, Any]) -> list[str]:
    """Deregister ``image`` and delete its snapshots; return the snapshot IDs."""
    snapshots = snapshot_ids(image)
    gone = f" and delete its snapshots {', '.join(snapshots)}" if snapshots else ""
    if is_protected(image) and protected_by_us(image):  # ami_retire's protection of the newest image
        release(client, changes, image)
    if changes.will(f"deregister {image['ImageId']} ({client.region}){gone}"):
        client.call("deregister_image", ImageId=image["ImageId"])
        for snapshot in snapshots:
            delete_snapshot(client, snapshot)
    return snapshots


def wait_available(
    client: AwsClient,
    image_id: str,
    timeout: float,
    operation: str,
    new: bool,
    kms_key: str | None = None,
    source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Wait until the image is available; a failed image is removed and fails the task."""
    image = wait_until(
        lambda: fetch_image(client, image_id, new),
        lambda img: img.get("State") not in WAITING_IMAGE_STATES,
        timeout=timeout,
        what=f"image {image_id} in {client.region} to become available",
        describe=describe_image_state,
        # Polls at most 1.5 s apart: the task ends within 2 s of the image being available, with the last read
        # and the module's exit (2 s apart could end 2.04 s after, measured on the sandbox).
        max_delay=IMAGE_POLL_MAX_S,
    )
    return finish(client, image, operation, kms_key, source)


def volume_kms_keys(client: AwsClient, instance: dict[str, Any]) -> list[str]:
    """The KMS keys of the instance's encrypted EBS volumes, which encrypt the snapshots CreateImage makes of them
    (DescribeImages says a mapping is encrypted, never with which key), read now; [] when none or unreadable."""
    ids = [m["Ebs"]["VolumeId"] for m in instance.get("BlockDeviceMappings") or () if m.get("Ebs", {}).get("VolumeId")]
    if not ids:
        return []
    try:
        volumes = client.call("describe_volumes", VolumeIds=ids).get("Volumes", [])
    except AwsError:
        return []
    return list(dict.fromkeys(v["KmsKeyId"] for v in volumes if v.get("Encrypted") and v.get("KmsKeyId")))


def kms_failure(client: AwsClient, image: dict[str, Any], kms_key: str | None, also: Iterable[str] = ()) -> str:
    """What a message adds for an image EC2 failed because it could not use a KMS key: the key, what it needs
    (``also``: keys known otherwise, those of the volumes an image is made from)."""
    named = sorted({m["Ebs"]["KmsKeyId"] for m in image.get("BlockDeviceMappings", [])
                    if m.get("Ebs", {}).get("KmsKeyId")} | ({kms_key} if kms_key else set()) | set(also))  # fmt: skip
    keys = describe_kms_keys(client, named, default=not named)
    return f" (KMS: EC2 could not use the key that encrypts its snapshots, {keys}; the caller needs {KMS_NEEDS})"


def finish(
    client: AwsClient,
    image: dict[str, Any],
    operation: str,
    kms_key: str | None = None,
    source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An image that is done waiting: returned when available, else removed, failing the task (``kms_key``: the key
    the image was to be encrypted with, ``source``: the instance it is made from, whose volumes' keys encrypt it;
    named when EC2 failed it for KMS)."""
    image_id = image["ImageId"]
    if image["State"] == "available":
        return image
    reason = image.get("StateReason") or {}
    code = reason.get("Code")
    # Read only for an image that failed as KMS failures do (a failed image may describe no mapping at all).
    volume_keys = volume_kms_keys(client, source) if source and code in KMS_STATE_CODES else []
    # Client.InternalError is EC2's word for many failures: KMS is named for it only when the image is encrypted.
    mappings = image.get("BlockDeviceMappings", [])
    encrypted = kms_key or volume_keys or any(m.get("Ebs", {}).get("Encrypted") for m in mappings)
    kms_code = code == "Client.InvalidKMSKey.InvalidState" or (code in KMS_STATE_CODES and encrypted)
    kms = kms_failure(client, image, kms_key, volume_keys) if kms_code else ""
    removed = ""
    if image["State"] != "deregistered":
        snapshots = remove_image(client, Changes(False), image)
        removed = "; removed it" + (f" and its snapshots {', '.join(snapshots)}" if snapshots else "")
    raise AwsError(
        operation,
        reason.get("Code") or "ImageFailed",
        f"image {image_id} ({image.get('Name')!r}) in {client.region} ended {image['State']}: "
        f"{reason.get('Message') or 'EC2 gave no reason'}{kms}{removed}",
    )


def settle(
    client: AwsClient,
    image: dict[str, Any],
    wait: bool,
    deadline: float,
    operation: str,
    new: bool,
    kms_key: str | None = None,
    source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The image as EC2 describes it: waited for until available when ``wait``, else as it is now (``source``: the
    instance a new image is made from)."""
    if image.get("State") == "available" or (not wait and "State" in image):
        return image
    if "State" in image and image["State"] not in WAITING_IMAGE_STATES:
        return finish(client, image, operation, kms_key, source)
    if wait:
        timeout = max(0.0, deadline - time.monotonic())
        return wait_available(client, image["ImageId"], timeout, operation, new, kms_key, source)
    return fetch_image(client, image["ImageId"], new)


def reconcile(
    client: AwsClient,
    changes: Changes,
    image: dict[str, Any],
    desired: dict[str, Any],
    purge: bool,
    users: Collection[str] | None,
    new: bool = False,
) -> tuple[dict[str, str], list[str] | None]:
    """Give the image ``desired`` tags and its snapshots the image's tags; share it with ``users``.

    Returns ``(tags, launch_permissions)`` of the image after the run (permissions None when not managed).
    ``new`` says this run created the image: then its NotFound (and its snapshots') is retried for a while.
    """
    image_id = image["ImageId"]
    current = tags_to_dict(image.get("Tags"))
    apply_tags(client, changes, {image_id: current}, desired, purge, new)
    tags = tags_after(current, desired, purge)
    snapshots = snapshot_ids(image)
    if snapshots:
        found = call_on(client, new, "describe_snapshots", SnapshotIds=snapshots)
        current_by_id = {s["SnapshotId"]: tags_to_dict(s.get("Tags")) for s in found.get("Snapshots", [])}
        apply_tags(client, changes, current_by_id, settable(tags), purge, new)
    if users is None:
        return tags, None
    current_users = launch_users(client, image_id, new)
    add, remove = launch_permission_changes(current_users, users)
    permission: dict[str, list[dict[str, str]]] = {}
    words: list[str] = []
    if add:
        permission["Add"] = [{"UserId": account} for account in add]
        words.append(f"share {image_id} ({client.region}) with {', '.join(add)}")
    if remove:
        permission["Remove"] = [{"UserId": account} for account in remove]
        words.append(f"stop sharing {image_id} ({client.region}) with {', '.join(remove)}")
    if permission and changes.will("; ".join(words)):
        call_on(client, new, "modify_image_attribute", ImageId=image_id, LaunchPermission=permission)
    return tags, sorted(users)


def apply_tags(
    client: AwsClient,
    changes: Changes,
    current_by_id: dict[str, dict[str, str]],
    desired: dict[str, Any],
    purge: bool,
    new: bool = False,
) -> None:
    creates, deletes = group_tag_changes(current_by_id, desired, purge)
    for ids, tags in creates:
        shown = ", ".join(f"{key}={value}" for key, value in sorted(tags.items()))
        if changes.will(f"tag {', '.join(ids)} ({client.region}) with {shown}"):
            call_on(client, new, "create_tags", Resources=ids, Tags=dict_to_tags(tags))
    for ids, keys in deletes:
        if changes.will(f"remove tags {', '.join(keys)} from {', '.join(ids)} ({client.region})"):
            client.call("delete_tags", Resources=ids, Tags=[{"Key": key} for key in keys])


def bake_copy(
    client: AwsClient,
    found: list[dict[str, Any]],
    source: dict[str, Any],
    source_region: str,
    source_tags: dict[str, str],
    params: dict[str, Any],
    check_mode: bool,
    kms_key: str | None = None,
) -> tuple[dict[str, Any] | None, dict[str, Any], list[str] | None, Changes]:
    """Make (or keep) the copy of ``source`` in ``client``'s region (encrypted with ``kms_key`` when given); runs in
    its own thread.

    The region has its own deadline, ``wait_timeout`` from now. Returns
    ``(image or None, tags, launch permissions, changes)``.
    """
    deadline = time.monotonic() + params["wait_timeout"]
    changes = Changes(check_mode)
    new = False
    for old in found if params["on_exists"] == "replace" else ():
        remove_image(client, changes, old)
    if found and params["on_exists"] == "keep":
        image, desired = found[0], without_lineage(source_tags)
    else:
        desired = dict(source_tags)
        if params["lineage_tags"]:
            desired[LINEAGE_COPY] = f"{source_region}/{source['ImageId']}"
        if not changes.will(f"copy {source['ImageId']} to {client.region} as {params['name']!r}"):
            return None, desired, params["launch_permissions"], changes
        request = {"SourceImageId": source["ImageId"], "SourceRegion": source_region, "Name": params["name"]}
        if kms_key:
            request.update(Encrypted=True, KmsKeyId=kms_key)
        if source.get("Description"):
            request["Description"] = source["Description"]
        specs = tag_specifications(settable(desired), "image", "snapshot")
        if specs:
            request["TagSpecifications"] = specs
        image, new = start_copy(client, request), True
    if not check_mode:
        image = settle(client, image, params["wait"], deadline, "CopyImage", new, kms_key)
    tags, users = reconcile(client, changes, image, desired, purge_of(params), params["launch_permissions"], new)
    return image, tags, users, changes


def start_copy(client: AwsClient, request: dict[str, Any]) -> dict[str, Any]:
    """CopyImage, described; a client token that EC2 maps to a copy removed since (a failed copy that was
    cleaned up) is followed by the next token, so the copy is made anew instead of meeting the removed one."""
    for generation in range(COPY_TOKEN_GENERATIONS):
        token = copy_token(
            request["SourceImageId"], client.region, request["Name"], generation, request.get("KmsKeyId")
        )
        image_id = call_tagging_snapshots(client, "copy_image", dict(request, ClientToken=token))["ImageId"]
        try:
            image = fetch_image(client, image_id, new=True)
        except AwsError as err:
            if err.code not in NEW_RESOURCE_CODES:
                raise
            continue  # never listed in the bounded wait: a removed copy that the endpoint no longer lists
        if image.get("State") != "deregistered":
            return image
    raise AwsError(
        "CopyImage",
        "CopyTokensUsed",
        f"the last {COPY_TOKEN_GENERATIONS} copies of {request['SourceImageId']} to {client.region} as "
        f"{request['Name']!r} were removed; rename the image or replace the source",
    )


def bake_copies(
    clients: dict[str, AwsClient],
    found_by_region: dict[str, list[dict[str, Any]]],
    source: dict[str, Any],
    source_region: str,
    source_tags: dict[str, str],
    params: dict[str, Any],
    check_mode: bool,
    keys: dict[str, str | None] | None = None,
) -> dict[str, tuple[dict[str, Any] | None, dict[str, Any], list[str] | None, Changes]]:
    """Run :func:`bake_copy` for every region at once (``keys``: the KMS key of each region's copy); return the
    results by region or raise the failures."""
    with ThreadPoolExecutor(max_workers=len(clients)) as pool:
        futures = {
            region: pool.submit(
                bake_copy,
                client,
                found_by_region[region],
                source,
                source_region,
                source_tags,
                params,
                check_mode,
                (keys or {}).get(region),
            )
            for region, client in clients.items()
        }
    results = {}
    errors: list[tuple[str, Exception]] = []
    for region, future in futures.items():
        try:
            results[region] = future.result()
        except Exception as err:  # each region's failure is reported, none hides another
            errors.append((region, err))
    if len(errors) == 1:
        raise errors[0][1]
    if errors:
        raise AwsError("CopyImage", "CopiesFailed", "; ".join(f"{region}: {err}" for region, err in errors))
    return results


def purge_of(params: dict[str, Any]) -> bool:
    return params["purge_tags"] and params["tags"] is not None


def bake_image(
    client: AwsClient, changes: Changes, params: dict[str, Any], instance: dict[str, Any], found: list[dict[str, Any]]
) -> tuple[dict[str, Any] | None, dict[str, Any], bool]:
    """Keep, or (re)create, the image named ``name``.

    Returns ``(image or None in check mode, tags wanted, whether this run created it)``.
    """
    tags = params["tags"] or {}
    if found and params["on_exists"] == "keep":
        return found[0], without_lineage(tags), False
    for old in found:
        remove_image(client, changes, old)
    if params["lineage_tags"]:
        tags = dict(tags, **lineage(instance))
    request = create_request(params, instance, tags)
    if not changes.will(create_action(params, instance, client.region)):
        return None, tags, False
    image, created = create_image(client, request)
    if not created:  # the image of that name is kept, like one found by the lookup
        changes.actions.pop()
        tags = without_lineage(params["tags"] or {})
    return image, tags, created
