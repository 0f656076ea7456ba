#!/usr/bin/python
# Copyright: (c) 2026, bakery.ec2 contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: ami_from_instance
short_description: Bake an AMI from an instance, idempotently by name, and copy it to other regions
version_added: 0.1.0
description:
  - Creates a machine image (AMI) from an EC2 instance, so that instances launched from it are clones of it.
  - The image name identifies the image in the account and region. Before creating anything the module looks
    for an image of the account with that name, and O(on_exists) decides what happens when there is one.
    If CreateImage still answers C(InvalidAMIName.Duplicate) (another run won the race, or a retried request
    had already succeeded), the image of that name is returned.
  - Tags go on the image and on its snapshots, both tagged by CreateImage itself where the endpoint accepts it.
    They are checked and corrected on every run, so a rerun also fixes snapshots that are missing tags.
  - Right after the module creates or copies an image, EC2 may not list it yet; C(InvalidAMIID.NotFound) (and
    C(InvalidSnapshot.NotFound) for its snapshots) is then retried with backoff for up to 120 seconds, for that
    image only.
  - The image can be shared with other accounts (O(launch_permissions)) and copied to other regions
    (O(copy_to_regions)), where the copies are made in parallel.
  - When the image ends in state C(failed), the task fails with EC2's reason and the failed image and its
    snapshots are removed, so a rerun starts clean. A wait that times out fails the task but removes nothing;
    a rerun finds the image by name and waits again.
  - With O(state=absent) the image named O(name) is deregistered and its snapshots deleted, in the region of the
    task and in each region of O(copy_to_regions); see O(state).
author:
  - bakery.ec2 maintainers (@bakery-ec2)
options:
  state:
    description:
      - V(present) makes sure the image exists (see O(on_exists)).
      - V(absent) deregisters every image of the account named O(name) and deletes its snapshots, in the region
        of the task and in each region of O(copy_to_regions). A snapshot that EC2 still counts as in use right
        after DeregisterImage is retried for a bounded time. When there is no such image nothing changes.
      - The deregistration protection M(bakery.ec2.ami_retire) puts on the newest image of a family (tagged
        C(bakery:retire-protected)) is taken off first; protection set otherwise makes C(DeregisterImage) fail.
      - With V(absent) the image is found by its name alone, so O(instance_id), O(instance_name),
        O(description), O(tags) and O(launch_permissions) are refused (they cannot narrow what is removed);
        the other options that only shape a new image are ignored.
    type: str
    choices: [present, absent]
    default: present
  instance_id:
    description:
      - ID of the instance to image.
      - With O(state=present), exactly one of O(instance_id) and O(instance_name) is required.
    type: str
  instance_name:
    description:
      - Value of the C(Name) tag of the instance to image.
      - Exactly one instance that is not terminated (or shutting down) must carry it, otherwise the task fails
        listing the instances that matched.
    type: str
  name:
    description:
      - Name of the image, which identifies it in the account and region.
      - As EC2 requires, 3 to 128 characters of letters, digits, spaces, parentheses, square brackets, periods,
        slashes, dashes, single quotes, at signs and underscores; checked before any call.
    type: str
    required: true
  description:
    description:
      - Description of the image (at most 255 characters). Only used when the image is created.
    type: str
  no_reboot:
    description:
      - When V(false) (as on AWS), EC2 shuts the instance down while it takes the snapshots, so the file systems
        are consistent, and starts it again. RV(actions), check mode and diff mode say so whenever an image is
        to be created, and the task warns when the instance is running.
      - When V(true) the instance keeps running; file system consistency is then up to you.
    type: bool
    default: false
  lineage_tags:
    description:
      - When V(true), an image created by this module also carries tags that say where it came from,
        C(bakery:source-instance-id) (the instance it was made from) and C(bakery:source-image-id)
        (the AMI that instance was launched from), and each copy made by O(copy_to_regions) also carries
        C(bakery:copied-from) (C(<region>/<image ID>) of the image it was copied from).
      - These tags are written only when an image is created; on later runs they are never changed or purged.
    type: bool
    default: true
  on_exists:
    description:
      - What to do when an image of the account already has this name (or, in a region of O(copy_to_regions),
        a copy has it).
      - V(keep) returns the existing image (waiting for it when it is still pending), and only reconciles
        its tags and launch permissions.
      - V(replace) deregisters the existing image, deletes its snapshots, and creates a new image; copies in
        O(copy_to_regions) are replaced too. Every run with V(replace) creates a new image.
      - V(fail) fails the task, before anything is changed.
    type: str
    choices: [keep, replace, fail]
    default: keep
  launch_permissions:
    description:
      - 12-digit IDs of the AWS accounts the image (and each copy) is shared with.
      - The image's account launch permissions are made exactly this list; V([]) stops sharing with every
        account. Public sharing and sharing with organizations are left alone.
      - When not set, launch permissions are left alone.
    type: list
    elements: str
  copy_to_regions:
    description:
      - Regions to copy the image to, with the same name, description and tags. The copies are made in
        parallel, each looked up by name first in its region as O(on_exists) says.
      - Each item is a region name, or a dict with C(region) and C(kms_key_id), the KMS key that copy is encrypted
        with (KMS keys are regional, so each region has its own; see O(kms_key_id)).
      - With O(state=absent), the regions where the images of that name are removed too.
      - Each must be a region enabled for the account and not the region of the task.
      - The source image must be C(available) before it can be copied, so the module waits for it
        whenever a copy is to be made, even with O(wait=false).
    type: list
    elements: raw
    default: []
  kms_key_id:
    description:
      - The KMS key the copies of O(copy_to_regions) are encrypted with (C(CopyImage) with C(Encrypted)), for each
        item that does not name its own C(kms_key_id). An alias name (V(alias/NAME)) names the key of that name in
        each region; a key ARN names a key of its own region only, and is refused for a copy to another region.
      - Only used when a copy is made; an existing copy is kept as it is.
      - The image made from the instance keeps the encryption of the instance's volumes (choose their key with
        O(bakery.ec2.ec2_launch#module:volumes[].kms_key_id)).
      - A customer-managed key needs the caller's C(kms:CreateGrant) (with C(kms:GrantIsForAWSResource)),
        C(kms:Decrypt), C(kms:DescribeKey), C(kms:GenerateDataKeyWithoutPlainText) and C(kms:ReEncrypt*) on it, and
        on the source image's key. An image that EC2 fails for KMS (state reason C(Client.InternalError) or
        C(Client.InvalidKMSKey.InvalidState)) fails the task in one line naming KMS and the key (for a copy, its
        key; for the image made from the instance, the keys of the instance's volumes, read then with
        C(ec2:DescribeVolumes), or the account's default EBS key when they cannot be read).
    type: str
  wait:
    description:
      - Whether to wait until the image (and each copy) is C(available).
      - The image is read at once, then at growing intervals of at most 1.5 s, so that the task ends within 2 s of
        the image becoming available (the last read and the module's exit included). An image takes minutes on
        AWS, so that is about 40 DescribeImages calls a minute.
      - Without waiting, snapshots that EC2 has not made yet cannot be tagged; a later run tags them.
    type: bool
    default: true
  wait_timeout:
    description:
      - How many seconds to wait for the image, and for each copy in O(copy_to_regions); each region has its own
        deadline, counted from the start of its copy. When a time is up the task fails, and nothing is
        removed; a rerun finds the image by name and waits again.
    type: int
    default: 1800
extends_documentation_fragment:
  - bakery.ec2.connection
  - bakery.ec2.tags
attributes:
  check_mode:
    support: full
    description:
      - Looks everything up, makes no change, and reports in RV(actions) what would be done (and, with
        O(state=absent), in RV(removed) what would be removed).
  diff_mode:
    support: full
    description:
      - Shows the image and its copies (ID, name, description, state, tags, launch permissions) before and after,
        and the instance when it is rebooted for the image (O(no_reboot=false)).
      - With O(state=absent), the images before and nothing after.
notes:
  - Tags of the image and of its snapshots (and of each copy and its snapshots) are applied at creation. An
    endpoint that refuses snapshot tags in CreateImage or CopyImage gets the request without them, and the
    snapshots are tagged with CreateTags once the image is available (EC2 only then names them).
  - CopyImage is sent with a client token derived from the source image, the region and the name, so a
    request that is retried after a lost answer does not make a second copy. When that token leads to a copy
    that was removed (a failed copy, cleaned up), the next token is used, so a rerun makes a new copy.
seealso:
  - module: bakery.ec2.ami_find
  - name: Packer amazon-ebs builder
    description: Packer's builder, whose force_deregister, ami_regions and ami_users this module resembles.
    link: https://developer.hashicorp.com/packer/integrations/hashicorp/amazon/latest/components/builder/ebs
"""

EXAMPLES = r"""
- name: Bake the configured web server into an image
  bakery.ec2.ami_from_instance:
    instance_name: web-build
    name: "web-{{ app_version }}"
    description: Web server with the employee directory {{ app_version }}
    tags:
      Role: web
      Version: "{{ app_version }}"
  register: baked

- name: Launch a clone from it
  bakery.ec2.ec2_launch:
    name: web-1
    image_id: "{{ baked.image_id }}"

- name: Rebuild the image under the same name, share it, and copy it to two more regions
  bakery.ec2.ami_from_instance:
    instance_id: i-0123456789abcdef0
    name: web-golden
    on_exists: replace
    launch_permissions:
      - "111122223333"
    copy_to_regions:
      - eu-west-1
      - region: ap-southeast-2
        kms_key_id: arn:aws:kms:ap-southeast-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab
    kms_key_id: alias/images  # the copy to eu-west-1: the key of that alias there
    wait_timeout: 3600
  register: golden

- name: Show the copy in Ireland
  ansible.builtin.debug:
    msg: "{{ golden.copies['eu-west-1'] }}"

- name: Fail instead of reusing an image of that name
  bakery.ec2.ami_from_instance:
    instance_name: web-build
    name: web-2026-11-20
    on_exists: fail

- name: Start the image without waiting, and without lineage tags
  bakery.ec2.ami_from_instance:
    instance_name: batch-build
    name: batch-nightly
    no_reboot: true
    lineage_tags: false
    wait: false

- name: Remove the golden image and its copies, with their snapshots
  bakery.ec2.ami_from_instance:
    name: web-golden
    state: absent
    copy_to_regions:
      - eu-west-1
      - ap-southeast-2
  register: gone

- name: Show what was removed
  ansible.builtin.debug:
    msg: "{{ gone.removed | map(attribute='image_id') | list }}"
"""

RETURN = r"""
image_id:
  description: ID of the image. Absent in check mode when the image would be created.
  returned: when O(state=present) and the image exists
  type: str
  sample: ami-0123456789abcdef0
image:
  description:
    - The image, with keys in snake_case as amazon.aws returns them and tags as a dict.
  returned: when O(state=present) and the image exists
  type: dict
  contains:
    image_id:
      description: The image ID.
      type: str
      sample: ami-0123456789abcdef0
    name:
      description: The image name.
      type: str
      sample: web-golden
    state:
      description: State of the image.
      type: str
      sample: available
    description:
      description: Description of the image.
      type: str
      sample: Web server with the employee directory
    owner_id:
      description: Account ID of the owner.
      type: str
      sample: "123456789012"
    creation_date:
      description: When the image was created.
      type: str
      sample: "2026-11-20T10:00:00.000Z"
    root_device_name:
      description: Device name of the root volume.
      type: str
      sample: /dev/xvda
    tags:
      description: Tags of the image after this run.
      type: dict
      sample: {"Role": "web", "bakery:source-instance-id": "i-0123456789abcdef0"}
    block_device_mappings:
      description: Block device mappings of the image, with the snapshot of each EBS volume.
      type: list
      elements: dict
      sample: [{"device_name": "/dev/xvda", "ebs": {"snapshot_id": "snap-0123456789abcdef0", "volume_size": 8}}]
snapshot_ids:
  description: IDs of the EBS snapshots of the image (empty while EC2 has not made them yet).
  returned: when O(state=present)
  type: list
  elements: str
  sample: [snap-0123456789abcdef0]
copies:
  description: Image ID of the copy in each region of O(copy_to_regions). A copy that check mode would make is absent.
  returned: when O(state=present)
  type: dict
  sample: {"eu-west-1": "ami-0fedcba9876543210"}
actions:
  description: What the run changed, or in check mode would change, in order; empty when nothing changed.
  returned: always
  type: list
  elements: str
  sample:
    - "create image 'web' from i-0123456789abcdef0 (us-east-1), rebooting i-0123456789abcdef0 (no_reboot is false)"
    - "copy ami-0123456789abcdef0 to eu-west-1 as 'web-golden'"
removed:
  description:
    - The images that were removed (in check mode, that would be removed), with their snapshots; empty when
      there was no image of that name.
  returned: when O(state=absent)
  type: list
  elements: dict
  contains:
    region:
      description: Region of the image.
      type: str
      sample: us-east-1
    image_id:
      description: ID of the image that was deregistered.
      type: str
      sample: ami-0123456789abcdef0
    snapshot_ids:
      description: IDs of its snapshots, which were deleted.
      type: list
      elements: str
      sample: [snap-0123456789abcdef0]
  sample: [{"region": "us-east-1", "image_id": "ami-0123456789abcdef0", "snapshot_ids": ["snap-0123456789abcdef0"]}]
"""

import re
import time
from typing import TYPE_CHECKING, Any

from ansible_collections.bakery.ec2.plugins.module_utils._changes import Changes
from ansible_collections.bakery.ec2.plugins.module_utils._errors import AwsError
from ansible_collections.bakery.ec2.plugins.module_utils._images import (
    bake_copies,
    bake_image,
    find_images,
    launch_users,
    purge_of,
    reconcile,
    remove_image,
    settable,
    settle,
    snapshot_ids,
)
from ansible_collections.bakery.ec2.plugins.module_utils._module import AwsModule
from ansible_collections.bakery.ec2.plugins.module_utils._shapes import ACCOUNT_RE, REGION_RE, check_id, to_snake
from ansible_collections.bakery.ec2.plugins.module_utils._tags import dict_to_tags, tags_to_dict, validate_tags

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ansible_collections.bakery.ec2.plugins.module_utils._client import AwsClient

NAME_CHARS = re.compile(r"[A-Za-z0-9()\[\] ./\-'@_]")
GONE_INSTANCE_STATES = ("shutting-down", "terminated")
# With state=absent the image is found by name alone; these would look as if they narrowed what is removed.
PRESENT_ONLY = ("instance_id", "instance_name", "description", "tags", "launch_permissions")
KMS_ARN_RE = re.compile(r"^arn:aws[a-z-]*:kms:([a-z0-9-]+):")


# --- pure functions ---------------------------------------------------------------------------------


def validate(params: dict[str, Any], region: str) -> str | None:
    """Return an error message for the first bad option value, or None."""
    if params["state"] == "absent":
        for option in PRESENT_ONLY:
            if params[option] is not None:
                return f"{option}: not used with state=absent, which removes the images named {params['name']!r}"
    name = params["name"]
    if not 3 <= len(name) <= 128:
        return f"name: {name!r} has {len(name)} characters; an AMI name has 3 to 128"
    bad = sorted({char for char in name if not NAME_CHARS.fullmatch(char)})
    if bad:
        return (
            f"name: {name!r} contains {''.join(bad)!r}; an AMI name may only contain letters, digits, "
            "spaces and ( ) [ ] . / - ' @ _"
        )
    if params["description"] is not None and len(params["description"]) > 255:
        return f"description: {len(params['description'])} characters given, EC2 allows at most 255"
    if params["instance_id"] is not None:
        error = check_id("instance", params["instance_id"], "instance_id")
        if error:
            return error
    for account in params["launch_permissions"] or ():
        if not ACCOUNT_RE.match(account):
            return f"launch_permissions: {account!r} is not a 12-digit AWS account ID"
    seen = set()
    for target in params["copy_to_regions"]:
        if not REGION_RE.match(target):
            return f"copy_to_regions: {target!r} is not a valid AWS region name"
        if target == region:
            return f"copy_to_regions: {target!r} is the region of the image itself"
        if target in seen:
            return f"copy_to_regions: {target!r} is listed twice"
        seen.add(target)
    if params["wait_timeout"] < 0:
        return f"wait_timeout: {params['wait_timeout']} is negative"
    return validate_tags(params["tags"])


def copy_targets(items: Iterable[Any], default_key: str | None) -> tuple[list[str], dict[str, str | None]]:
    """``(regions, {region: KMS key or None})`` of ``copy_to_regions`` (region names or ``{region, kms_key_id}``),
    ``default_key`` (``kms_key_id``) for those naming none; ValueError naming a bad item."""
    regions, keys = [], {}
    for item in items:
        region, key = (item.get("region"), item.get("kms_key_id")) if isinstance(item, dict) else (item, None)
        extra = sorted(set(item) - {"region", "kms_key_id"}) if isinstance(item, dict) else []
        if extra or not isinstance(region, str) or not isinstance(key, (str, type(None))):
            raise ValueError(f"copy_to_regions: {item!r} is not a region name or a dict of region and kms_key_id")
        key = key or default_key
        arn = KMS_ARN_RE.match(key or "")
        if arn and arn.group(1) != region:
            raise ValueError(
                f"copy_to_regions: the copy to {region} cannot be encrypted with {key}, a key of {arn.group(1)} "
                f"(KMS keys are regional): give {region}'s key in an item {{region: {region}, kms_key_id: ...}}, "
                "or an alias"
            )
        regions.append(region)
        keys[region] = key
    return regions, keys


def pick_instance(
    instances: list[dict[str, Any]], params: dict[str, Any]
) -> tuple[dict[str, Any], None] | tuple[None, str]:
    """Return ``(instance, None)`` or ``(None, error)`` for the instances DescribeInstances found."""
    if params["instance_id"]:
        option, value = "instance_id", params["instance_id"]
    else:
        option, value = "instance_name", params["instance_name"]
    live = [i for i in instances if i["State"]["Name"] not in GONE_INSTANCE_STATES]
    if len(live) == 1:
        return live[0], None
    found = ", ".join(f"{i['InstanceId']} ({i['State']['Name']})" for i in instances)
    if not instances:
        return None, f"{option}: no instance {value!r} in this region"
    if not live:
        return None, f"{option}: instance {value!r} is terminated or terminating: {found}"
    return None, f"{option}: {len(live)} instances that are not terminated match {value!r}: {found}"


def summary(
    image: dict[str, Any] | None, tags: dict[str, str] | None = None, users: list[str] | None = None
) -> dict[str, Any]:
    """What diff mode shows of an image."""
    if image is None:
        return {}
    shown = {
        "image_id": image.get("ImageId"),
        "name": image.get("Name"),
        "description": image.get("Description", ""),
        "state": image.get("State"),
        "tags": tags_to_dict(image.get("Tags")) if tags is None else tags,
    }
    if users is not None:
        shown["launch_permissions"] = users
    return {k: v for k, v in shown.items() if v is not None}


# --- calls to AWS -----------------------------------------------------------------------------------


def find_instance(module: AwsModule, client: AwsClient) -> dict[str, Any]:
    params = module.params
    if params["instance_id"]:
        try:
            ids = [params["instance_id"]]
            reservations = list(client.paginate("describe_instances", "Reservations", InstanceIds=ids))
        except AwsError as err:
            if err.code != "InvalidInstanceID.NotFound":
                raise
            reservations = []
    else:
        reservations = client.paginate(
            "describe_instances", "Reservations", Filters=[{"Name": "tag:Name", "Values": [params["instance_name"]]}]
        )
    instances = [i for r in reservations for i in r.get("Instances", [])]
    instance, error = pick_instance(instances, params)
    if error:
        module.fail(f"{error} ({client.region})")
    return instance


def check_regions(module: AwsModule, client: AwsClient) -> None:
    wanted = module.params["copy_to_regions"]
    if not wanted:
        return
    enabled = {r["RegionName"] for r in client.call("describe_regions").get("Regions", [])}
    for region in wanted:
        if region not in enabled:
            module.fail(f"copy_to_regions: {region!r} is not a region enabled for this account")


# --- the module -------------------------------------------------------------------------------------


def main() -> None:
    module = AwsModule(
        argument_spec={
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "instance_id": {"type": "str"},
            "instance_name": {"type": "str"},
            "name": {"type": "str", "required": True},
            "description": {"type": "str"},
            "no_reboot": {"type": "bool", "default": False},
            "lineage_tags": {"type": "bool", "default": True},
            "on_exists": {"type": "str", "choices": ["keep", "replace", "fail"], "default": "keep"},
            "launch_permissions": {"type": "list", "elements": "str"},
            "copy_to_regions": {"type": "list", "elements": "raw", "default": []},
            "kms_key_id": {"type": "str", "no_log": False},
            "wait": {"type": "bool", "default": True},
            "wait_timeout": {"type": "int", "default": 1800},
            "tags": {"type": "dict", "aliases": ["resource_tags"]},
            "purge_tags": {"type": "bool", "default": True},
        },
        mutually_exclusive=[("instance_id", "instance_name")],
        required_if=[("state", "present", ("instance_id", "instance_name"), True)],
        supports_check_mode=True,
    )
    module.run(run)


def run(module: AwsModule) -> None:
    params = module.params
    client = module.client()
    try:
        regions, copy_keys = copy_targets(params["copy_to_regions"], params["kms_key_id"])
    except ValueError as err:
        module.fail(str(err))
    params["copy_to_regions"] = regions  # region names from here on
    error = validate(params, client.region)
    if error:
        module.fail(error)
    if params["state"] == "absent":
        remove_all(module, client)
        return
    deadline = time.monotonic() + params["wait_timeout"]
    # Everything is looked up before anything changes, so bad input and on_exists=fail change nothing.
    instance = find_instance(module, client)
    check_regions(module, client)
    copy_clients = {region: module.client(region=region) for region in params["copy_to_regions"]}
    found = find_images(client, params["name"])
    found_copies = {region: find_images(c, params["name"]) for region, c in copy_clients.items()}
    if params["on_exists"] == "fail":
        refuse_existing(module, client.region, found, found_copies)
    before = diff_before(client, params, found, found_copies) if module.module._diff else None
    reboots = not params["no_reboot"] and (not found or params["on_exists"] == "replace")
    if reboots and instance["State"]["Name"] == "running":
        module.warn(
            f"instance {instance['InstanceId']} is running and {'would be' if module.check_mode else 'is'} "
            "rebooted: EC2 shuts it down while it takes the snapshots and starts it again; "
            "set no_reboot: true to keep it running"
        )

    changes = Changes(module.check_mode)
    image, tags, created = bake_image(client, changes, params, instance, found)
    copies_needed = any(not imgs or params["on_exists"] == "replace" for imgs in found_copies.values())
    if image is not None and not module.check_mode:
        # A new image is made of the instance's volumes: their keys are named when EC2 fails it for KMS.
        source = instance if created else None
        image = settle(client, image, params["wait"] or copies_needed, deadline, "CreateImage", created, source=source)
    users = params["launch_permissions"]
    if image is not None:
        tags, users = reconcile(client, changes, image, tags, purge_of(params), users, created)
    result = {"copies": {}, "snapshot_ids": []}
    if image is not None:
        result.update(
            image_id=image["ImageId"],
            image=to_snake(dict(image, Tags=dict_to_tags(tags))),
            snapshot_ids=snapshot_ids(image),
        )
    after = {"image": summary(image or {"Name": params["name"], "Description": params["description"]}, tags, users)}
    if before is not None and reboots:
        before["instance"] = {"instance_id": instance["InstanceId"], "state": instance["State"]["Name"]}
        after["instance"] = {
            "instance_id": instance["InstanceId"],
            "state": "rebooted for the image (no_reboot is false)",
        }

    if copy_clients:
        # In check mode an image still to be created stands in as the source of the copies.
        source = image or {"ImageId": "(new image)", "Description": params["description"]}
        results = bake_copies(
            copy_clients, found_copies, source, client.region, settable(tags), params, module.check_mode, copy_keys
        )
        after["copies"] = {}
        for region, (copy, copy_tags, copy_users, copy_changes) in results.items():
            changes.actions.extend(copy_changes.actions)
            if copy is not None:
                result["copies"][region] = copy["ImageId"]
            shown = copy or {"Name": params["name"], "Description": source.get("Description")}
            after["copies"][region] = summary(shown, copy_tags, copy_users)

    result.update(changed=bool(changes.actions), actions=changes.actions)
    if module.module._diff:
        result["diff"] = {"before": before, "after": after}
    module.exit(**result)


def remove_all(module: AwsModule, client: AwsClient) -> None:
    """state=absent: remove the images named ``name`` here and in ``copy_to_regions``, with their snapshots."""
    params = module.params
    check_regions(module, client)
    copy_clients = {region: module.client(region=region) for region in params["copy_to_regions"]}
    found = find_images(client, params["name"])
    found_copies = {region: find_images(c, params["name"]) for region, c in copy_clients.items()}
    before = diff_before(client, params, found, found_copies) if module.module._diff else None
    changes = Changes(module.check_mode)
    removed = []
    for where, images in [(client, found)] + [(copy_clients[r], imgs) for r, imgs in found_copies.items()]:
        for image in images:
            snapshots = remove_image(where, changes, image)
            removed.append({"region": where.region, "image_id": image["ImageId"], "snapshot_ids": snapshots})
    result = {"changed": bool(changes.actions), "actions": changes.actions, "removed": removed}
    if module.module._diff:
        after = {"image": {}}
        if found_copies:
            after["copies"] = {region: {} for region in found_copies}
        result["diff"] = {"before": before, "after": after}
    module.exit(**result)


def refuse_existing(
    module: AwsModule,
    region: str,
    found: list[dict[str, Any]],
    found_copies: dict[str, list[dict[str, Any]]],
) -> None:
    taken = [f"{img['ImageId']} ({region})" for img in found]
    taken += [f"{img['ImageId']} ({r})" for r, imgs in found_copies.items() for img in imgs]
    if taken:
        module.fail(f"name: an image named {module.params['name']!r} already exists: {', '.join(taken)}")


def diff_before(
    client: AwsClient,
    params: dict[str, Any],
    found: list[dict[str, Any]],
    found_copies: dict[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    before = {"image": summary(found[0] if found else None)}
    if found and params["launch_permissions"] is not None:
        before["image"]["launch_permissions"] = launch_users(client, found[0]["ImageId"])
    if found_copies:
        before["copies"] = {region: summary(imgs[0] if imgs else None) for region, imgs in found_copies.items()}
    return before


if __name__ == "__main__":
    main()
