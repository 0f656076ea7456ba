#!/usr/bin/python
# Copyright: (c) 2026, bakery.ec2 contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: ami_parameter
short_description: Publish an image ID in an SSM parameter of data type aws:ec2:image, in each region of the image
version_added: 0.2.0
description:
  - Makes an SSM parameter hold an image ID in every region given, each region its own image (AMI IDs differ from
    region to region), with data type C(aws:ec2:image), so that launches find the current image by name
    (C(image_id=resolve:ssm:NAME) in M(bakery.ec2.ec2_launch), O(bakery.ec2.ami_find#module:ssm_parameter), or
    C(resolve:ssm:) in a launch template).
  - Every image is checked (it exists and is C(available) in its region) before any parameter changes, so bad input
    changes nothing.
  - AWS validates an C(aws:ec2:image) value asynchronously, after PutParameter has answered, and a value that fails
    the check never becomes the parameter's. The module therefore reads the parameter back until it holds the image,
    for at most O(wait_timeout) seconds.
  - A parameter that already holds the image is left alone, so a rerun changes nothing. A parameter of that name
    with another data type is refused (AWS cannot change a parameter to or from C(aws:ec2:image)).
author:
  - bakery.ec2 maintainers (@bakery-ec2)
options:
  name:
    description:
      - Name of the parameter, for example C(/bakery/web/image-id).
    type: str
    required: true
  images:
    description:
      - The image ID the parameter holds in each region, as a dictionary of region and image ID, for example the
        image in the task's region combined with the copies of M(bakery.ec2.ami_from_instance)
        (RV(bakery.ec2.ami_from_instance#module:copies)).
      - Required with O(state=present).
    type: dict
  regions:
    description:
      - With O(state=absent), the regions where the parameter is deleted; by default the task's region.
    type: list
    elements: str
  description:
    description:
      - Description of a parameter that is created (an existing one keeps its own).
    type: str
  state:
    description:
      - V(present) makes the parameter hold each region's image; V(absent) deletes it in O(regions).
    type: str
    choices: [present, absent]
    default: present
  wait_timeout:
    description:
      - Seconds to wait, in each region, for the parameter to hold a new value after PutParameter.
    type: int
    default: 60
extends_documentation_fragment:
  - bakery.ec2.connection
attributes:
  check_mode:
    support: full
    description: Reads the parameters and the images, changes nothing, and reports in RV(actions) what would change.
  diff_mode:
    support: full
    description: The value of the parameter in each region, before and after.
notes:
  - Needs C(ssm:GetParameter), C(ec2:DescribeImages), and C(ssm:PutParameter) (C(ssm:DeleteParameter) with
    O(state=absent)) on the parameter's ARN, C(arn:aws:ssm:REGION:ACCOUNT:parameter/NAME) (the name without its
    leading slash after C(parameter/)).
seealso:
  - module: bakery.ec2.ami_find
  - module: bakery.ec2.ami_from_instance
  - name: Native parameter support for Amazon Machine Image IDs
    description: The aws:ec2:image data type and its asynchronous validation.
    link: https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-ec2-aliases.html
"""

EXAMPLES = r"""
- name: Bake the web image and copy it to Ireland
  bakery.ec2.ami_from_instance:
    instance_name: web-build
    name: web-20261207-040000
    copy_to_regions: [eu-west-1]
  register: baked

- name: Publish it where launches look for it, in both regions
  bakery.ec2.ami_parameter:
    name: /bakery/web/image-id
    images: "{{ {'us-east-1': baked.image_id} | combine(baked.copies) }}"

- name: The same, written out
  bakery.ec2.ami_parameter:
    name: /bakery/web/image-id
    images:
      us-east-1: ami-0123456789abcdef0
      eu-west-1: ami-0fedcba9876543210

- name: Launch from whatever image is published
  bakery.ec2.ec2_launch:
    name: web
    image_id: resolve:ssm:/bakery/web/image-id

- name: Remove the parameter in both regions
  bakery.ec2.ami_parameter:
    name: /bakery/web/image-id
    regions: [us-east-1, eu-west-1]
    state: absent
"""

RETURN = r"""
parameters:
  description:
    - The parameter in each region after the run (in check mode, as it would be), with keys in snake_case;
      with O(state=absent), what each deleted parameter held.
  returned: always
  type: dict
  sample:
    us-east-1: {"name": "/bakery/web/image-id", "value": "ami-0123456789abcdef0", "data_type": "aws:ec2:image",
                "version": 3}
actions:
  description: What the run changed, or in check mode would change, in order; empty when nothing changed.
  returned: always
  type: list
  elements: str
  sample: ["update parameter /bakery/web/image-id = ami-0123456789abcdef0 (us-east-1)"]
"""

from typing import Any

from ansible_collections.bakery.ec2.plugins.module_utils._changes import Changes
from ansible_collections.bakery.ec2.plugins.module_utils._errors import AwsError
from ansible_collections.bakery.ec2.plugins.module_utils._module import AwsModule
from ansible_collections.bakery.ec2.plugins.module_utils._shapes import REGION_RE, check_id, to_snake
from ansible_collections.bakery.ec2.plugins.module_utils._ssm import (
    ParameterError,
    check_name,
    publish,
    read_parameter,
    unpublish,
)

SHOWN_KEYS = ("Name", "Value", "DataType", "Type", "Version", "LastModifiedDate")


def validate(params: dict[str, Any]) -> str | None:
    """The first bad option value as one line, or None."""
    error = check_name(params["name"], "name")
    if error:
        return error
    if params["wait_timeout"] < 1:
        return f"wait_timeout: {params['wait_timeout']} is not a number of seconds of at least 1"
    if params["state"] == "absent":
        for region in params["regions"] or ():
            if not REGION_RE.match(region):
                return f"regions: {region!r} is not a valid AWS region name"
        return None
    if not params["images"]:
        return "images: give the image ID of at least one region, as a dictionary of region and image ID"
    for region, image_id in params["images"].items():
        if not REGION_RE.match(str(region)):
            return f"images: {region!r} is not a valid AWS region name"
        error = check_id("image", image_id, f"images.{region}")
        if error:
            return error
    return None


def shown(parameter: dict[str, Any] | None) -> dict[str, Any]:
    return to_snake({k: v for k, v in (parameter or {}).items() if k in SHOWN_KEYS}) if parameter else {}


def check_images(module: AwsModule, images: dict[str, str]) -> None:
    """Fail, before anything changes, for an image that is not available in its region."""
    for region, image_id in images.items():
        try:
            found = module.client(region).call("describe_images", ImageIds=[image_id]).get("Images", [])
        except AwsError as err:
            if err.code not in ("InvalidAMIID.NotFound", "InvalidAMIID.Unavailable"):
                raise
            found = []
        state = found[0].get("State") if found else "not found"
        if state != "available":
            module.fail(f"images: {image_id} is {state} in {region}, not an available image")


def main() -> None:
    module = AwsModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "images": {"type": "dict"},
            "regions": {"type": "list", "elements": "str"},
            "description": {"type": "str"},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "wait_timeout": {"type": "int", "default": 60},
        },
        required_if=[("state", "present", ("images",))],
        supports_check_mode=True,
    )
    module.run(run, validate)


def run(module: AwsModule) -> None:
    params = module.params
    changes = Changes(module.check_mode)
    regions = list(params["images"]) if params["state"] == "present" else params["regions"] or [module.region]
    clients = {region: module.client(region, "ssm") for region in regions}
    before = {region: shown(read_parameter(c, params["name"])) for region, c in clients.items()}
    after = {}
    try:
        if params["state"] == "absent":
            for region, client in clients.items():
                unpublish(client, changes, params["name"])
                after[region] = {}
            parameters = {region: value for region, value in before.items() if value}
        else:
            check_images(module, params["images"])
            parameters = {}
            for region, client in clients.items():
                image_id = params["images"][region]
                found = publish(
                    client, changes, params["name"], image_id, params["description"], params["wait_timeout"]
                )
                parameters[region] = after[region] = shown(found)
    except ParameterError as err:
        module.fail(str(err), actions=changes.actions)
    result = {"changed": bool(changes.actions), "actions": changes.actions, "parameters": parameters}
    if module.module._diff:
        result["diff"] = {"before": before, "after": after}
    module.exit(**result)


if __name__ == "__main__":
    main()
