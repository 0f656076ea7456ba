#!/usr/bin/python
# Copyright: (c) 2026, bakery.ec2 contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: ami_retire
short_description: Keep the newest images of a family in each region and retire the rest, never one still in use
version_added: 0.2.0
description:
  - Finds the images of a family (O(name) and/or O(tags), of O(owners)) in each region of O(regions), keeps the
    newest O(keep) of each region (and, with O(keep_days), every image younger than that), and retires the rest
    (C(DeregisterImage), then the image's snapshots are deleted unless another image of the account still uses them).
  - Never retires, whatever its age, an image that something still names, and says what in
    RV(images[].in_use_by). What counts is an instance in any state but C(terminated) (pending, running, stopping,
    stopped, shutting-down), any version of any launch template, an Auto Scaling launch configuration, or the value
    of an SSM parameter of data type C(aws:ec2:image). Nor one with deregistration protection set by someone else
    (reported as V(protected)), nor a public image or one shared with other accounts unless O(include_shared=true).
  - Finding users costs a few calls per page, never one per image. DescribeInstances is asked with an
    C(image-id) filter of at most 200 images a request, launch templates are read 200 versions a page, SSM
    parameters 50 names a page and 10 values a call. Only the images that would be retired are asked whether
    they are shared (C(DescribeImageAttribute), one call each).
  - Each region's family is judged on its own. All regions are handled in one task, in parallel (at most 10 at
    a time).
  - What is kept gets lifecycle flags (O(deprecate_superseded), O(protect_newest)). The protection the module
    sets on the newest image carries the tag C(bakery:retire-protected); once a newer image of the family
    exists, the module takes that protection off again (and the tag), so the image can be retired in its turn.
    Protection set by anyone else is left alone.
  - Check mode returns the same RV(images) with the same actions and reasons, and changes nothing; diff mode
    shows the images before and after.
  - A second run with the same arguments reports C(changed=false).
  - Races are safe at worst reported. An image another run retired meanwhile (C(InvalidAMIID.NotFound),
    C(InvalidAMIID.Unavailable)) counts as retired; a snapshot EC2 still says is in use stays. What uses the
    images about to be retired is asked again right before they are deregistered; an image something started to
    use since is kept and reported C(in use). Deregistering is not conditional on EC2, so a use that begins in the
    last instant is not seen; its instances keep running (an instance does not need its image).
  - O(regions) are checked against the account's enabled regions (C(DescribeRegions)) before any region is
    changed.
author:
  - bakery.ec2 maintainers (@bakery-ec2)
options:
  name:
    description:
      - The family's image name pattern (C(*) and C(?) as wildcards), as the C(name) filter of C(DescribeImages).
      - At least one of O(name) and O(tags) is required; a module that could select every image of an account is
        refused.
    type: str
  tags:
    description:
      - Tags every image of the family carries (all must match).
      - At least one of O(name) and O(tags) is required.
    type: dict
  owners:
    description:
      - Whose images form the family; account IDs or V(self).
      - Only the account's own images are retired, deprecated or protected; another account's image that the keep
        rules would let go is kept with reason V(not owned).
    type: list
    elements: str
    default: [self]
  regions:
    description:
      - The regions to work in, each judged on its own, all at once. Default the region of the task.
    type: list
    elements: str
  keep:
    description:
      - How many of the newest images (by C(CreationDate)) to keep in each region; at least 1.
    type: int
    default: 3
  keep_days:
    description:
      - Also keep every image younger than this many days (a whole number, at least 1).
    type: int
  include_shared:
    description:
      - Retire public images and images shared with other accounts too. Without it they are kept (reason
        V(public) or V(shared)), as other accounts may launch them.
    type: bool
    default: false
  delete_snapshots:
    description:
      - Delete a retired image's EBS snapshots, unless another image of the account in that region still uses one.
    type: bool
    default: true
  deprecate_superseded:
    description:
      - Every kept image that is not the newest gets a deprecation time (C(EnableImageDeprecation)) unless it has
        an earlier one, namely the start of the minute after next (EC2 refuses a time in the past and rounds to the
        minute), so it is deprecated within two minutes. A deprecated image still launches; other accounts no longer
        see it unless they name it.
    type: bool
    default: true
  protect_newest:
    description:
      - The newest image of each region gets deregistration protection (C(EnableImageDeregistrationProtection),
        without cooldown).
    type: bool
    default: true
extends_documentation_fragment:
  - bakery.ec2.connection
notes:
  - "IAM actions: ec2:DescribeImages, ec2:DescribeInstances, ec2:DescribeLaunchTemplates,
    ec2:DescribeLaunchTemplateVersions, ec2:DescribeImageAttribute, ec2:DeregisterImage, ec2:DeleteSnapshot,
    ec2:EnableImageDeprecation, ec2:EnableImageDeregistrationProtection, ec2:DisableImageDeregistrationProtection,
    ec2:CreateTags, ec2:DeleteTags, autoscaling:DescribeLaunchConfigurations, ssm:DescribeParameters,
    ssm:GetParameters."
  - An image that a launch template version names through C(resolve:ssm:) is protected through that parameter
    (its data type must be C(aws:ec2:image)).
seealso:
  - module: bakery.ec2.ami_find
  - module: bakery.ec2.ami_from_instance
attributes:
  check_mode:
    support: full
    description: Judges every image as a real run does and returns the same RV(images) and lists; changes nothing.
  diff_mode:
    support: full
    description: The images of the family before (every one) and after (those kept), one line each.
"""

EXAMPLES = r"""
- name: Keep the 3 newest images of the web family in every region it was copied to
  bakery.ec2.ami_retire:
    tags:
      BakeryFlow: web
    keep: 3
    regions: [us-east-1, eu-west-1, ap-southeast-2]

- name: Dry run, keeping a month of images too, and print why each image stays or goes
  bakery.ec2.ami_retire:
    name: web-*
    keep: 3
    keep_days: 30
  check_mode: true
  register: retire_plan

- name: Show the reasons
  ansible.builtin.debug:
    msg: "{{ item.region }} {{ item.image_id }} {{ item.action }}: {{ item.reason }} {{ item.in_use_by | join(', ') }}"
  loop: "{{ retire_plan.images }}"
  loop_control:
    label: "{{ item.image_id }}"

- name: Retire without touching snapshots or lifecycle flags
  bakery.ec2.ami_retire:
    name: build-scratch-*
    keep: 1
    delete_snapshots: false
    deprecate_superseded: false
    protect_newest: false
"""

RETURN = r"""
images:
  description:
    - One entry per image of the family, region by region in the order of O(regions), newest first in each.
  returned: always
  type: list
  elements: dict
  contains:
    image_id:
      description: The image's ID.
      type: str
      sample: ami-0abc1234def567890
    region:
      description: The image's region.
      type: str
      sample: us-east-1
    name:
      description: The image's name.
      type: str
      sample: web-20260101-1200
    creation_date:
      description: When the image was created, as EC2 says.
      type: str
      sample: "2026-01-01T12:00:00.000Z"
    action:
      description: V(keep) or V(retire) (in check mode, what would be done).
      type: str
      sample: keep
    reason:
      description:
        - Why. V(newest N of K), V(younger than D days), V(in use), V(protected), V(not owned), V(public),
          V(shared), V(beyond keep K).
      type: str
      sample: newest 1 of 3
    in_use_by:
      description:
        - What still names the image, when it was asked (images the keep rules would let go).
      type: list
      elements: str
      sample: ["instance i-0abc1234def567890 (stopped)", "launch template lt-0abc1234def567890 version 4",
               "launch configuration web-2024", "ssm parameter /bakery/web/image-id"]
retired:
  description: IDs of the images retired (or that would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: ["ami-0abc1234def567890"]
snapshots_deleted:
  description: IDs of the snapshots deleted (or that would be).
  returned: always
  type: list
  elements: str
  sample: ["snap-0abc1234def567890"]
deprecated:
  description: IDs of the kept images given a deprecation time by this run.
  returned: always
  type: list
  elements: str
protected:
  description: IDs of the newest images given deregistration protection by this run.
  returned: always
  type: list
  elements: str
changes:
  description: What the run changed (or would change, in check mode), one line each.
  returned: always
  type: list
  elements: str
"""

import datetime
from typing import TYPE_CHECKING, Any

from ansible_collections.bakery.ec2.plugins.module_utils import _images
from ansible_collections.bakery.ec2.plugins.module_utils._changes import Changes
from ansible_collections.bakery.ec2.plugins.module_utils._module import AwsModule
from ansible_collections.bakery.ec2.plugins.module_utils._shapes import ACCOUNT_RE, check_regions
from ansible_collections.bakery.ec2.plugins.module_utils._tags import validate_tags

if TYPE_CHECKING:
    from collections.abc import Iterable

ARGUMENT_SPEC = {
    "name": {"type": "str"},
    "tags": {"type": "dict"},
    "owners": {"type": "list", "elements": "str", "default": ["self"]},
    "regions": {"type": "list", "elements": "str"},
    "keep": {"type": "int", "default": 3},
    "keep_days": {"type": "int"},
    "include_shared": {"type": "bool", "default": False},
    "delete_snapshots": {"type": "bool", "default": True},
    "deprecate_superseded": {"type": "bool", "default": True},
    "protect_newest": {"type": "bool", "default": True},
}
RESULT_LISTS = ("retired", "snapshots_deleted", "deprecated", "protected")


def validate(params: dict[str, Any]) -> str | None:
    """Return an error message for the first bad option value, or None."""
    if not params["name"] and not params["tags"]:
        return "give name or tags (or both): without either the family would be every image of the owners"
    if params["keep"] < 1:
        return f"keep: {params['keep']} must be at least 1 (the newest image of a family is never retired)"
    if params["keep_days"] is not None and params["keep_days"] < 1:
        return f"keep_days: {params['keep_days']} must be a whole number of days, at least 1"
    for owner in params["owners"]:
        if owner != "self" and not ACCOUNT_RE.match(owner):
            return f"owners: {owner!r} is neither self nor a 12-digit account ID"
    error = check_regions(params["regions"])
    if error:
        return error
    return validate_tags(params["tags"])


def diff(result: dict[str, Any]) -> dict[str, str]:
    def lines(entries: Iterable[dict[str, Any]], kept_only: bool) -> str:
        return "".join(
            f"{e['region']} {e['image_id']} {e['name']}\n" for e in entries if not kept_only or e["action"] == "keep"
        )

    return {"before": lines(result["images"], False), "after": lines(result["images"], True)}


def main() -> None:
    module = AwsModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.run(run, validate)


def run(module: AwsModule) -> None:
    params = module.params
    regions = params["regions"] or [module.region]
    policy = _images.Policy(
        keep=params["keep"],
        keep_days=params["keep_days"],
        include_shared=params["include_shared"],
        delete_snapshots=params["delete_snapshots"],
        deprecate_superseded=params["deprecate_superseded"],
        protect_newest=params["protect_newest"],
    )
    family = {"owners": params["owners"], "name": params["name"], "tags": params["tags"]}
    if params["regions"]:  # every region known before any is changed (the regions are handled in parallel)
        enabled = {r["RegionName"] for r in module.client().call("describe_regions").get("Regions", [])}
        unknown = [region for region in regions if region not in enabled]
        if unknown:
            module.fail(f"regions: {unknown[0]!r} is not a region enabled for this account; nothing was changed")
    now = datetime.datetime.now(datetime.timezone.utc)
    changes = {}

    def work(region: str) -> dict[str, Any]:
        clients = {service: module.client(region, service) for service in ("ec2", "ssm", "autoscaling")}
        changes[region] = Changes(module.check_mode, clients["ec2"])
        return _images.retire_region(clients, changes[region], family, policy, now)

    outcomes = module.in_regions(regions, work, services=("ec2", "ssm", "autoscaling"))
    failed = {region: outcome for region, outcome in outcomes.items() if isinstance(outcome, Exception)}
    if failed:
        raise next(iter(failed.values()))
    result = {"images": [], "changes": []}
    result.update({key: [] for key in RESULT_LISTS})
    for region in outcomes:
        for key in ("images", *RESULT_LISTS):
            result[key].extend(outcomes[region][key])
        result["changes"].extend(changes[region].actions)
    if module.module._diff:
        result["diff"] = diff(result)
    module.exit(changed=bool(result["changes"]), **result)


if __name__ == "__main__":
    main()
