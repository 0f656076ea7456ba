#!/usr/bin/python
# Copyright: (c) 2026, bakery.ec2 contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: ami_find
short_description: Find AMIs and pick the newest (or first by name) of them
version_added: 0.1.0
description:
  - Finds machine images (AMIs) by owner, name pattern, architecture, tags, IDs and any DescribeImages filter,
    sorts them, and returns the pick, the way Packer's C(source_ami_filter) with C(most_recent) does.
  - Owners are sent so that EC2 filters on its side. Account IDs become the C(owner-id) filter, the aliases
    C(amazon) and C(aws-marketplace) the C(owner-alias) filter, and C(self) the C(Owners) parameter.
  - Images whose deprecation time has passed are left out unless O(include_deprecated=true).
  - Never changes anything, so it always reports RV(ignore:changed=false).
author:
  - bakery.ec2 maintainers (@bakery-ec2)
options:
  owners:
    description:
      - Owners of the images. Each is a 12-digit AWS account ID or one of the aliases C(self), C(amazon)
        and C(aws-marketplace).
      - Debian's official images are owned by C(136693071363).
    type: list
    elements: str
    aliases: [owner]
  name:
    description:
      - Pattern on the image name, with C(*) and C(?) wildcards, for example C(debian-12-amd64-*).
    type: str
  architecture:
    description:
      - Architecture of the image.
    type: str
    choices: [i386, x86_64, arm64, x86_64_mac, arm64_mac]
  image_ids:
    description:
      - Restrict the search to these image IDs.
    type: list
    elements: str
  tags:
    description:
      - The image must carry each of these tags with this value.
    type: dict
  filters:
    description:
      - Any other L(DescribeImages filter,https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeImages.html),
        as a dictionary of filter name and value (or list of values), combined with the options above.
      - A filter that an option above also sets must agree with it, otherwise the task fails.
    type: dict
    default: {}
  include_deprecated:
    description:
      - Whether images whose deprecation time has passed are included.
    type: bool
    default: false
  sort_by:
    description:
      - What the images are sorted by. Ties are broken by name, then image ID.
    type: str
    choices: [creation_date, name]
    default: creation_date
  sort_order:
    description:
      - V(descending) puts the newest (or last by name) first, so it is the pick.
    type: str
    choices: [descending, ascending]
    default: descending
  allow_empty:
    description:
      - When nothing matches, the task fails with a message naming the criteria, unless this is V(true);
        then it returns an empty O(ignore:images) list and no RV(image) or RV(image_id).
    type: bool
    default: false
extends_documentation_fragment:
  - bakery.ec2.connection
attributes:
  check_mode:
    support: full
    description: The module only reads, so check mode returns exactly what a normal run returns.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to show.
seealso:
  - name: Packer amazon-ebs source_ami_filter
    description: The Packer option this module mirrors.
    link: https://developer.hashicorp.com/packer/integrations/hashicorp/amazon/latest/components/builder/ebs
"""

EXAMPLES = r"""
- name: Newest Debian 12 image for x86_64 from Debian's account
  bakery.ec2.ami_find:
    owners: ["136693071363"]
    name: debian-12-amd64-*
    architecture: x86_64
    region: us-east-1
  register: base

- name: Launch from it
  bakery.ec2.ec2_launch:
    name: web
    image_id: "{{ base.image_id }}"

- name: Our own golden images of the web role, newest first, or none
  bakery.ec2.ami_find:
    owners: [self]
    tags:
      Role: web
      Stage: golden
    allow_empty: true
  register: golden

- name: Oldest image by name, with an extra DescribeImages filter
  bakery.ec2.ami_find:
    owners: [amazon]
    name: al2023-ami-*
    sort_by: name
    sort_order: ascending
    filters:
      root-device-type: ebs
      virtualization-type: hvm

- name: Include deprecated images too
  bakery.ec2.ami_find:
    owners: ["136693071363"]
    name: debian-11-*
    include_deprecated: true
"""

RETURN = r"""
image_id:
  description: ID of the pick (the first image after sorting). Absent when nothing matched and O(allow_empty=true).
  returned: when an image matched
  type: str
  sample: ami-0123456789abcdef0
image:
  description: The pick, with the same keys as an element of RV(images).
  returned: when an image matched
  type: dict
  sample: {"image_id": "ami-0123456789abcdef0", "name": "debian-12-amd64-20261120-1234"}
images:
  description:
    - Every matching image, sorted as asked, with keys in snake_case as amazon.aws returns them and tags as a dict.
  returned: always
  type: list
  elements: dict
  contains:
    image_id:
      description: The image ID.
      type: str
      sample: ami-0123456789abcdef0
    name:
      description: The image name.
      type: str
      sample: debian-12-amd64-20261120-1234
    owner_id:
      description: Account ID of the owner.
      type: str
      sample: "136693071363"
    architecture:
      description: The architecture.
      type: str
      sample: x86_64
    creation_date:
      description: When the image was created.
      type: str
      sample: "2026-11-20T10:00:00.000Z"
    deprecation_time:
      description: When the image is or was deprecated, if set.
      type: str
      sample: "2028-06-10T00:00:00.000Z"
    root_device_name:
      description: Device name of the root volume.
      type: str
      sample: /dev/xvda
    state:
      description: State of the image.
      type: str
      sample: available
    tags:
      description: Tags of the image.
      type: dict
      sample: {"Release": "12"}
    block_device_mappings:
      description: Block device mappings of the image.
      type: list
      elements: dict
"""

import datetime

from ansible_collections.bakery.ec2.plugins.module_utils._aws import ACCOUNT_RE, check_id, one_line, to_snake
from ansible_collections.bakery.ec2.plugins.module_utils._module import AwsModule

OWNER_ALIASES = ("amazon", "aws-marketplace")

# Filters that options of this module set themselves; given again in ``filters`` they must agree.
OPTION_FILTERS = {"name": "name", "architecture": "architecture"}


def validate(params):
    """Return an error message for the first bad option value, or None."""
    for owner in params["owners"] or ():
        if not (ACCOUNT_RE.match(owner) or owner in OWNER_ALIASES or owner == "self"):
            return f"owners: {owner!r} is neither a 12-digit account ID nor one of self, amazon, aws-marketplace"
    for image_id in params["image_ids"] or ():
        error = check_id("image", image_id, "image_ids")
        if error:
            return error
    return None


def filter_values(value):
    if isinstance(value, (list, tuple)):
        return [filter_value(v) for v in value]
    return [filter_value(value)]


def filter_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def build_filters(params):
    """Merge the options and ``filters`` into one filter dict; raise ValueError on a conflict."""
    merged = {}
    for key, value in (params["filters"] or {}).items():
        merged[key] = filter_values(value)
    wanted = {}
    for option, key in OPTION_FILTERS.items():
        if params[option] is not None:
            wanted[key] = [params[option]]
    for key, value in (params["tags"] or {}).items():
        wanted[f"tag:{key}"] = [filter_value(value)]
    for key, values in wanted.items():
        if key in merged and sorted(merged[key]) != sorted(values):
            raise ValueError(f"filters: {key!r} is {merged[key]} but the options ask for {values}")
        merged[key] = values
    if params["owners"] and ("owner-id" in merged or "owner-alias" in merged):
        raise ValueError("filters: owner-id/owner-alias cannot be combined with owners; use owners only")
    return merged


def build_requests(params):
    """DescribeImages requests whose union is the answer: one per kind of owner.

    EC2 ANDs different filter names, so account IDs, aliases and ``self`` cannot share one request.
    """
    filters = build_filters(params)
    base = {"IncludeDeprecated": params["include_deprecated"]}
    if params["image_ids"]:
        base["ImageIds"] = list(params["image_ids"])
    else:
        base["MaxResults"] = 1000

    def request(extra_filters=None, **extra):
        all_filters = dict(filters, **(extra_filters or {}))
        req = dict(base, **extra)
        if all_filters:
            req["Filters"] = [{"Name": k, "Values": v} for k, v in sorted(all_filters.items())]
        return req

    owners = params["owners"] or []
    ids = [o for o in owners if ACCOUNT_RE.match(o)]
    aliases = [o for o in owners if o in OWNER_ALIASES]
    requests = []
    if ids:
        requests.append(request({"owner-id": ids}))
    if aliases:
        requests.append(request({"owner-alias": aliases}))
    if "self" in owners:
        requests.append(request(Owners=["self"]))
    if not owners:
        requests.append(request())
    return requests


def is_deprecated(image, now):
    when = image.get("DeprecationTime")
    if not when:
        return False
    try:
        moment = datetime.datetime.fromisoformat(when.replace("Z", "+00:00"))
    except ValueError:
        return False
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment <= now


def select(images, sort_by, sort_order, include_deprecated, now):
    """Deduplicate, drop deprecated images unless asked, and sort as asked."""
    unique = {}
    for image in images:
        unique.setdefault(image["ImageId"], image)
    kept = [img for img in unique.values() if include_deprecated or not is_deprecated(img, now)]
    primary = "CreationDate" if sort_by == "creation_date" else "Name"
    kept.sort(
        key=lambda img: (img.get(primary) or "", img.get("Name") or "", img["ImageId"]),
        reverse=sort_order == "descending",
    )
    return kept


def describe_criteria(params, region):
    parts = [f"{key}={params[key]!r}" for key in ("owners", "name", "architecture", "image_ids", "tags") if params[key]]
    if params["filters"]:
        parts.append(f"filters={params['filters']!r}")
    if not params["include_deprecated"]:
        parts.append("excluding deprecated images")
    return one_line(f"no image matches {', '.join(parts) or 'the criteria'} in {region}")


def fetch_images(client, requests):
    images = []
    for req in requests:
        images.extend(client.paginate("describe_images", "Images", **req))
    return images


def main():
    module = AwsModule(
        argument_spec={
            "owners": {"type": "list", "elements": "str", "aliases": ["owner"]},
            "name": {"type": "str"},
            "architecture": {"type": "str", "choices": ["i386", "x86_64", "arm64", "x86_64_mac", "arm64_mac"]},
            "image_ids": {"type": "list", "elements": "str"},
            "tags": {"type": "dict"},
            "filters": {"type": "dict", "default": {}},
            "include_deprecated": {"type": "bool", "default": False},
            "sort_by": {"type": "str", "choices": ["creation_date", "name"], "default": "creation_date"},
            "sort_order": {"type": "str", "choices": ["descending", "ascending"], "default": "descending"},
            "allow_empty": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    module.run(run)


def run(module):
    params = module.params
    error = validate(params)
    if error:
        module.fail(error)
    try:
        requests = build_requests(params)
    except ValueError as err:
        module.fail(str(err))
    client = module.client()
    now = datetime.datetime.now(datetime.timezone.utc)
    images = select(
        fetch_images(client, requests), params["sort_by"], params["sort_order"], params["include_deprecated"], now
    )
    if not images and not params["allow_empty"]:
        module.fail(describe_criteria(params, client.region))
    result = {"changed": False, "images": [to_snake(img) for img in images]}
    if images:
        result["image"] = result["images"][0]
        result["image_id"] = images[0]["ImageId"]
    module.exit(**result)


if __name__ == "__main__":
    main()
