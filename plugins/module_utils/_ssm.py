# Copyright: (c) 2026, bakery.ec2 contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private: AMI IDs from SSM parameters (public ones such as /aws/service/debian/... or your own).

Used by ami_find (``ssm_parameter``) and ec2_launch (``image_id: resolve:ssm:NAME``). Not a public API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ansible_collections.bakery.ec2.plugins.module_utils._changes import wait_until
from ansible_collections.bakery.ec2.plugins.module_utils._errors import AwsError, WaitTimeout
from ansible_collections.bakery.ec2.plugins.module_utils._shapes import check_id

if TYPE_CHECKING:
    from ansible_collections.bakery.ec2.plugins.module_utils._changes import Changes
    from ansible_collections.bakery.ec2.plugins.module_utils._client import AwsClient

# EC2's own syntax for an image ID read from a parameter at launch (RunInstances accepts it too).
RESOLVE_PREFIX = "resolve:ssm:"


class ParameterError(Exception):
    """A parameter that is missing or does not hold an AMI ID; the message is one line naming it."""


def parameter_name(image_id: str | None) -> str | None:
    """``resolve:ssm:NAME`` -> ``NAME``; anything else -> None."""
    if image_id and image_id.startswith(RESOLVE_PREFIX):
        return image_id[len(RESOLVE_PREFIX) :]
    return None


def check_name(name: str | None, option: str) -> str | None:
    """Return an error message when ``name`` cannot be a parameter name, else None."""
    if not name or not name.strip() or any(ch.isspace() for ch in name):
        return f"{option}: {name!r} is not an SSM parameter name (such as /aws/service/debian/release/12/latest/amd64)"
    return None


def resolve_image(client: AwsClient, name: str, option: str) -> str:
    """The AMI ID held by SSM parameter ``name`` in ``client``'s region; :class:`ParameterError` when none."""
    try:
        value = client.call("get_parameter", Name=name)["Parameter"].get("Value", "")
    except AwsError as err:
        if err.code in ("ParameterNotFound", "ParameterVersionNotFound"):
            raise ParameterError(f"{option}: parameter {name!r} not found in {client.region}") from None
        raise
    if check_id("image", value, option):
        raise ParameterError(f"{option}: parameter {name!r} in {client.region} holds {value!r}, not an AMI ID")
    return value


# --- publishing an image ID (ami_parameter) ---------------------------------------------------------

IMAGE_DATA_TYPE = "aws:ec2:image"


def read_parameter(client: AwsClient, name: str) -> dict[str, Any] | None:
    """The parameter ``name`` as GetParameter returns it in ``client``'s region, or None when there is none."""
    try:
        return client.call("get_parameter", Name=name)["Parameter"]
    except AwsError as err:
        if err.code == "ParameterNotFound":
            return None
        raise


def publish_plan(name: str, wanted: str, found: dict[str, Any] | None) -> str | None:
    """What to do in one region: None (already holds ``wanted``), "create" or "update"; ParameterError when the
    parameter exists with another data type (AWS cannot change a parameter to or from aws:ec2:image)."""
    if found is None:
        return "create"
    if found.get("DataType", "text") != IMAGE_DATA_TYPE:
        raise ParameterError(
            f"name: parameter {name!r} exists with data type {found.get('DataType', 'text')!r}, and AWS cannot change "
            f"a parameter to {IMAGE_DATA_TYPE}: delete it or publish under another name"
        )
    return None if found.get("Value") == wanted else "update"


def publish(
    client: AwsClient, changes: Changes, name: str, image_id: str, description: str | None, timeout: float
) -> dict[str, Any]:
    """Make parameter ``name`` hold ``image_id`` (data type aws:ec2:image) in ``client``'s region.

    AWS validates such a value asynchronously: PutParameter answers before it checked that the image exists, and
    a value that fails the check never becomes the parameter's. So the parameter is read back until it holds the
    image (or ``timeout`` seconds pass: :class:`ParameterError`). Returns the parameter as it is afterwards
    (in check mode, as it would be).
    """
    found = read_parameter(client, name)
    plan = publish_plan(name, image_id, found)
    if plan is None:
        return found
    request = {"Name": name, "Value": image_id, "Type": "String", "DataType": IMAGE_DATA_TYPE, "Overwrite": True}
    if plan == "create":
        request.pop("Overwrite")
        if description:
            request["Description"] = description
    action = f"{plan} parameter {name} = {image_id} ({client.region})"
    if not changes.will(action):
        return dict(found or {"Name": name, "Type": "String", "DataType": IMAGE_DATA_TYPE}, Value=image_id)
    client.call("put_parameter", **request)
    try:
        return wait_until(
            lambda: read_parameter(client, name),
            lambda p: p is not None and p.get("Value") == image_id,
            timeout,
            f"parameter {name} to hold {image_id} in {client.region}",
            describe=lambda p: (p or {}).get("Value", "no parameter"),
        )
    except WaitTimeout:
        raise ParameterError(
            f"name: parameter {name!r} in {client.region} does not hold {image_id} {timeout} s after PutParameter: "
            f"AWS's asynchronous {IMAGE_DATA_TYPE} check refused it (the image is not available to this account "
            "in that region)"
        ) from None


def unpublish(client: AwsClient, changes: Changes, name: str) -> dict[str, Any] | None:
    """Delete parameter ``name`` in ``client``'s region; returns what it held, or None when there was none."""
    found = read_parameter(client, name)
    if found is not None and changes.will(f"delete parameter {name} ({client.region})"):
        client.call("delete_parameter", Name=name)
    return found
