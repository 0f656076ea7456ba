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
  - A name pattern alone is refused, because any AWS account can publish a public image under any name; a search
    by name needs O(owners) (or O(image_ids), or O(ssm_parameter)).
  - O(ssm_parameter) reads the image ID from an SSM parameter, such as the public parameters Debian and Amazon
    publish for their newest images, then returns that image with its full details.
  - O(regions) runs the same search in several regions at once and returns each region's pick in RV(by_region);
    AMI IDs differ from region to region, and with O(ssm_parameter) each region reads its own parameter.
  - Never changes anything, so it always reports RV(ignore:changed=false).
author:
  - bakery.ec2 maintainers (@bakery-ec2)
options:
  owners:
    description:
      - Owners of the images. Each is a 12-digit AWS account ID or one of the aliases C(self), C(amazon)
        and C(aws-marketplace).
      - Debian's official images are owned by C(136693071363).
      - When public images of an account ID listed here are found, the task warns that the account is not a
        verified provider, unless it is also in O(trusted_owners).
    type: list
    elements: str
    aliases: [owner]
  trusted_owners:
    description:
      - Account IDs whose public images you trust (you checked who publishes them), so finding them does not warn.
      - C(self), C(amazon) and C(aws-marketplace) never warn.
    type: list
    elements: str
    default: []
  ssm_parameter:
    description:
      - Name of an SSM parameter that holds an AMI ID, for example Debian's
        C(/aws/service/debian/release/12/latest/amd64) or Amazon Linux's
        C(/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64); a version can follow as C(NAME:N).
      - The image it names is returned like any other pick; the other criteria (O(owners), O(architecture), ...)
        still apply to it.
      - A parameter that does not exist fails the task with one line naming it and the region.
      - The SSM endpoint is E(AWS_ENDPOINT_URL_SSM) when set, else O(endpoint_url) (unless it came from
        E(AWS_ENDPOINT_URL_EC2)), else E(AWS_ENDPOINT_URL), else the region's AWS endpoint. Needs C(ssm:GetParameter).
    type: str
  regions:
    description:
      - Search each of these regions, in parallel (at most 10 at a time), and return RV(by_region).
      - When not set, only the task's O(region) is searched and the results are RV(image_id), RV(image) and
        RV(images).
      - An opt-in region the account has not enabled fails the task in one line naming it (EC2 itself answers
        C(AuthFailure) there); the module asks C(ec2:DescribeRegions) in the task's O(region) to tell.
    type: list
    elements: str
  product_code:
    description:
      - Only images with this product code, the code of an AWS Marketplace product (DescribeImages filter
        C(product-code)). Combine it with O(owners=[aws-marketplace]) or the seller's account.
    type: str
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
      - Restrict the search to these image IDs. Cannot be combined with O(ssm_parameter).
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
  - name: Debian's images on AWS and their SSM parameters
    description: Debian's account, image names and the public parameters it publishes.
    link: https://wiki.debian.org/Cloud/AmazonEC2Image
  - name: Public parameters for AMIs
    description: SSM public parameters that name the newest images.
    link: https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-public-parameters-ami.html
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

- name: The image Debian's public SSM parameter names as the newest Debian 12 (amd64)
  bakery.ec2.ami_find:
    ssm_parameter: /aws/service/debian/release/12/latest/amd64
  register: debian

- name: Launch from the same parameter; ec2_launch resolves it itself
  bakery.ec2.ec2_launch:
    name: web
    image_id: resolve:ssm:/aws/service/debian/release/12/latest/amd64

- name: Newest Debian 12 in three regions at once (each region has its own AMI ID)
  bakery.ec2.ami_find:
    owners: ["136693071363"]
    name: debian-12-amd64-*
    architecture: x86_64
    regions: [us-east-1, eu-west-1, ap-southeast-2]
  register: per_region

- name: Launch in each region from that region's image
  bakery.ec2.ec2_launch:
    name: web
    region: "{{ item.key }}"
    image_id: "{{ item.value.image_id }}"
  loop: "{{ per_region.by_region | dict2items }}"

- name: A Marketplace product's newest image, by its product code
  bakery.ec2.ami_find:
    owners: [aws-marketplace]
    product_code: abcdefghij0123456789klmno

- name: A community image from an account you checked (no warning)
  bakery.ec2.ami_find:
    owners: ["111122223333"]
    name: my-vendor-app-*
    trusted_owners: ["111122223333"]

- name: The newest AMI that EC2 Image Builder made from the recipe "web" (any version; tag values take wildcards)
  bakery.ec2.ami_find:
    owners: [self]
    tags:
      CreatedBy: EC2 Image Builder
      Ec2ImageBuilderArn: "arn:aws:imagebuilder:eu-west-1:111122223333:image/web/*"

- name: Include deprecated images too
  bakery.ec2.ami_find:
    owners: ["136693071363"]
    name: debian-11-*
    include_deprecated: true
"""

RETURN = r"""
image_id:
  description: ID of the pick (the first image after sorting). Absent when nothing matched and O(allow_empty=true).
  returned: when an image matched and O(regions) is not set
  type: str
  sample: ami-0123456789abcdef0
image:
  description: The pick, with the same keys as an element of RV(images).
  returned: when an image matched and O(regions) is not set
  type: dict
  sample: {"image_id": "ami-0123456789abcdef0", "name": "debian-12-amd64-20261120-1234"}
images:
  description:
    - Every matching image, sorted as asked, with keys in snake_case as amazon.aws returns them and tags as a dict.
  returned: when O(regions) is not set
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
    product_codes:
      description: Marketplace product codes of the image, when it has any.
      type: list
      elements: dict
      sample: [{"product_code_id": "abcdefghij0123456789klmno", "product_code_type": "marketplace"}]
    public:
      description: Whether the image is public.
      type: bool
      sample: true
ssm_parameter:
  description: The parameter read and the AMI ID it held (per region inside RV(by_region)).
  returned: when O(ssm_parameter) is given and O(regions) is not set
  type: dict
  sample: {"name": "/aws/service/debian/release/12/latest/amd64", "value": "ami-0123456789abcdef0"}
by_region:
  description:
    - For each region of O(regions), that region's result, with the keys RV(image_id), RV(image) and RV(images)
      (and RV(ssm_parameter)) as a search of that region alone returns them.
  returned: when O(regions) is given
  type: dict
  sample:
    us-east-1: {"image_id": "ami-0123456789abcdef0", "image": {"name": "debian-12-amd64-20261120-1234"}, "images": []}
    eu-west-1: {"image_id": "ami-0fedcba9876543210", "image": {"name": "debian-12-amd64-20261120-1234"}, "images": []}
"""

import datetime
from typing import TYPE_CHECKING, Any

from ansible_collections.bakery.ec2.plugins.module_utils._errors import AwsError, one_line
from ansible_collections.bakery.ec2.plugins.module_utils._module import AwsModule
from ansible_collections.bakery.ec2.plugins.module_utils._shapes import (
    ACCOUNT_RE,
    check_id,
    check_regions,
    chunks,
    split_filters,
    to_snake,
)
from ansible_collections.bakery.ec2.plugins.module_utils._ssm import ParameterError, check_name, resolve_image

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ansible_collections.bakery.ec2.plugins.module_utils._client import AwsClient

OWNER_ALIASES = ("amazon", "aws-marketplace")

# Filters that options of this module set themselves; given again in ``filters`` they must agree.
OPTION_FILTERS = {"name": "name", "architecture": "architecture", "product_code": "product-code"}


class NoMatch(Exception):
    """Nothing matched in a region (reported together with the other regions' misses)."""


def validate(params: dict[str, Any]) -> str | None:
    """Return an error message for the first bad option value, or None."""
    for owner in params["owners"] or ():
        if not (ACCOUNT_RE.match(owner) or owner in OWNER_ALIASES or owner == "self"):
            return f"owners: {owner!r} is neither a 12-digit account ID nor one of self, amazon, aws-marketplace"
    for owner in params["trusted_owners"] or ():
        if not ACCOUNT_RE.match(owner):
            return f"trusted_owners: {owner!r} is not a 12-digit account ID"
    for image_id in params["image_ids"] or ():
        error = check_id("image", image_id, "image_ids")
        if error:
            return error
    if params["ssm_parameter"] is not None:
        error = check_name(params["ssm_parameter"], "ssm_parameter")
        if error:
            return error
    error = check_regions(params["regions"])
    if error:
        return error
    name = params["name"] or (params["filters"] or {}).get("name")
    owned = params["owners"] or params["image_ids"] or params["ssm_parameter"]
    if name and not owned and not {"owner-id", "owner-alias"} & set(params["filters"] or {}):
        return (
            f"name: {name!r} without owners or image_ids is refused: any AWS account can publish a public image "
            "with that name (AMI name squatting); give owners (an account ID, self, amazon or aws-marketplace)"
        )
    return None


def filter_values(value: Any) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [filter_value(v) for v in value]
    return [filter_value(value)]


def filter_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def build_filters(params: dict[str, Any]) -> dict[str, list[str]]:
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


def build_requests(params: dict[str, Any]) -> list[dict[str, Any]]:
    """DescribeImages requests whose union is the answer: one per kind of owner.

    EC2 ANDs different filter names, so account IDs, aliases and ``self`` cannot share one request.
    Lists longer than EC2's 200 values (image IDs, account IDs, a filter's values) are asked for in parts.
    """
    filters = build_filters(params)
    base = {"IncludeDeprecated": params["include_deprecated"]}
    if not params["image_ids"]:
        base["MaxResults"] = 1000
    id_parts = list(chunks(params["image_ids"])) if params["image_ids"] else [None]

    def request(extra_filters: dict[str, list[str]] | None = None, **extra: Any) -> list[dict[str, Any]]:
        all_filters = dict(filters, **(extra_filters or {}))
        requests = []
        for ids in id_parts:
            for part in split_filters([{"Name": k, "Values": v} for k, v in sorted(all_filters.items())]):
                req = dict(base, **extra)
                if ids:
                    req["ImageIds"] = ids
                if part:
                    req["Filters"] = part
                requests.append(req)
        return requests

    owners = params["owners"] or []
    ids = [o for o in owners if ACCOUNT_RE.match(o)]
    aliases = [o for o in owners if o in OWNER_ALIASES]
    requests = []
    if ids:
        requests += request({"owner-id": ids})
    if aliases:
        requests += request({"owner-alias": aliases})
    if "self" in owners:
        requests += request(Owners=["self"])
    if not owners:
        requests += request()
    return requests


def is_deprecated(image: dict[str, Any], now: datetime.datetime) -> bool:
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


def select(
    images: Iterable[dict[str, Any]],
    sort_by: str,
    sort_order: str,
    include_deprecated: bool,
    now: datetime.datetime,
) -> list[dict[str, Any]]:
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


def describe_criteria(params: dict[str, Any], region: str) -> str:
    keys = ("ssm_parameter", "owners", "name", "architecture", "product_code", "image_ids", "tags")
    parts = [f"{key}={params[key]!r}" for key in keys if params[key]]
    if params["filters"]:
        parts.append(f"filters={params['filters']!r}")
    if not params["include_deprecated"]:
        parts.append("excluding deprecated images")
    return one_line(f"no image matches {', '.join(parts) or 'the criteria'} in {region}")


def fetch_images(client: AwsClient, requests: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    images = []
    for req in requests:
        images.extend(client.paginate("describe_images", "Images", **req))
    return images


def untrusted_owners(images: Iterable[dict[str, Any]], params: dict[str, Any]) -> list[str]:
    """Account IDs listed in ``owners`` whose public images were found, unless listed in ``trusted_owners``."""
    asked = {o for o in params["owners"] or () if ACCOUNT_RE.match(o)} - set(params["trusted_owners"] or ())
    return sorted({img.get("OwnerId") for img in images if img.get("Public") and img.get("OwnerId") in asked})


def search(
    module: AwsModule, region: str | None, params: dict[str, Any], now: datetime.datetime
) -> tuple[dict[str, Any], list[str]]:
    """The result of the search in ``region`` (None: the task's) and the untrusted owners found there.

    Raise :class:`NoMatch` when nothing matched and ``allow_empty`` is false, :class:`ParameterError` for a
    parameter that does not name an image of the region.
    """
    client = module.client(region)
    result = {}
    if params["ssm_parameter"]:
        image_id = resolve_image(module.client(region, "ssm"), params["ssm_parameter"], "ssm_parameter")
        result["ssm_parameter"] = {"name": params["ssm_parameter"], "value": image_id}
        params = dict(params, image_ids=[image_id])
    requests = build_requests(params)
    try:
        found = fetch_images(client, requests)
    except AwsError as err:
        if not result or err.code not in ("InvalidAMIID.NotFound", "InvalidAMIID.Unavailable"):
            raise
        found = []
    images = select(found, params["sort_by"], params["sort_order"], params["include_deprecated"], now)
    if not images and result and not params["allow_empty"]:
        named = f"ssm_parameter: {params['ssm_parameter']!r} names {result['ssm_parameter']['value']}"
        deprecated = [img for img in found if is_deprecated(img, now)]
        if deprecated and not params["include_deprecated"]:
            raise ParameterError(
                f"{named}, deprecated since {deprecated[0]['DeprecationTime']} in {client.region}: not used "
                "(include_deprecated: true to use it anyway)"
            )
        if not found and not any(r.get("Filters") or r.get("Owners") for r in requests):
            gone = "deregistered, or of another region"
            raise ParameterError(f"{named}, which is not an image of {client.region} ({gone})")
        raise ParameterError(f"{named}, which is not an image of {client.region} that matches the criteria")
    if not images and not params["allow_empty"]:
        raise NoMatch(client.region)
    result["images"] = [to_snake(img) for img in images]
    if images:
        result["image"] = result["images"][0]
        result["image_id"] = images[0]["ImageId"]
    return result, untrusted_owners(images, params)


class _AuthFailure(Exception):
    """EC2's AuthFailure in one region of ``regions``: bad credentials, or an opt-in region not enabled."""

    def __init__(self, error: AwsError) -> None:
        super().__init__(str(error))
        self.error = error


def not_enabled(module: AwsModule, region: str) -> bool | None:
    """Whether ``region`` is an opt-in region this account has not enabled (asked in the task's region).

    EC2 answers a call in such a region with ``AuthFailure``, which reads like bad credentials. None when the
    task's region cannot say (then the original error stands).
    """
    try:
        found = module.client(None).call("describe_regions", AllRegions=True, RegionNames=[region])["Regions"]
    except AwsError:
        return None
    return bool(found) and found[0].get("OptInStatus") == "not-opted-in"


def search_regions(
    module: AwsModule, params: dict[str, Any], now: datetime.datetime
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """``{region: result}`` of the search in every region of ``regions``, all at once."""
    services = ("ec2", "ssm") if params["ssm_parameter"] else ("ec2",)

    def work(region: str) -> tuple[dict[str, Any], list[str]] | _AuthFailure:
        try:
            return search(module, region, params, now)
        except AwsError as err:
            if err.code != "AuthFailure":
                raise
            return _AuthFailure(err)  # told apart from bad credentials below, in this thread

    outcomes = module.in_regions(params["regions"], work, services)
    by_region, untrusted, missed = {}, set(), []
    for region, outcome in outcomes.items():
        if isinstance(outcome, NoMatch):
            missed.append(region)
            continue
        if isinstance(outcome, _AuthFailure):
            err = outcome.error
            if not_enabled(module, region):
                raise ParameterError(
                    f"regions: {region} is an opt-in region that this account has not enabled; enable it "
                    "(Account settings, AWS Regions) or leave it out"
                )
            raise AwsError(err.operation, err.code, f"{region}: {err.message}", err.status)
        if isinstance(outcome, Exception):
            raise outcome
        by_region[region], owners = outcome
        untrusted.update(owners)
    if missed:
        raise NoMatch(", ".join(missed))
    return by_region, sorted(untrusted)


def main() -> None:
    module = AwsModule(
        argument_spec={
            "owners": {"type": "list", "elements": "str", "aliases": ["owner"]},
            "trusted_owners": {"type": "list", "elements": "str", "default": []},
            "ssm_parameter": {"type": "str"},
            "regions": {"type": "list", "elements": "str"},
            "name": {"type": "str"},
            "architecture": {"type": "str", "choices": ["i386", "x86_64", "arm64", "x86_64_mac", "arm64_mac"]},
            "product_code": {"type": "str"},
            "image_ids": {"type": "list", "elements": "str"},
            "tags": {"type": "dict"},
            "filters": {"type": "dict", "default": {}},
            "include_deprecated": {"type": "bool", "default": False},
            "sort_by": {"type": "str", "choices": ["creation_date", "name"], "default": "creation_date"},
            "sort_order": {"type": "str", "choices": ["descending", "ascending"], "default": "descending"},
            "allow_empty": {"type": "bool", "default": False},
        },
        mutually_exclusive=[("ssm_parameter", "image_ids")],
        supports_check_mode=True,
    )
    module.run(run, validate)


def run(module: AwsModule) -> None:
    params = module.params
    try:
        build_requests(params)
    except ValueError as err:
        module.fail(str(err))
    now = datetime.datetime.now(datetime.timezone.utc)
    try:
        if params["regions"]:
            by_region, untrusted = search_regions(module, params, now)
            result = {"by_region": by_region}
        else:
            result, untrusted = search(module, None, params, now)
    except NoMatch as miss:
        module.fail(describe_criteria(params, str(miss)))
    except ParameterError as err:
        module.fail(str(err))
    for owner in untrusted:
        module.warn(
            f"owners: {owner} is not a verified provider (not self, amazon or aws-marketplace): check who publishes "
            "its public images, and list it in trusted_owners once you trust it"
        )
    module.exit(changed=False, **result)


if __name__ == "__main__":
    main()
