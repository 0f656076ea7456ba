# Copyright: (c) 2026, bakery.ec2 contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private: AMI IDs from SSM parameters (public ones such as /aws/service/debian/... or your own).

Used by ami_find (``ssm_parameter``) and ec2_launch (``image_id: resolve:ssm:NAME``). Not a public API.
"""

from __future__ import annotations

from ansible_collections.bakery.ec2.plugins.module_utils._aws import AwsError, check_id

# EC2's own syntax for an image ID read from a parameter at launch (RunInstances accepts it too).
RESOLVE_PREFIX = "resolve:ssm:"


class ParameterError(Exception):
    """A parameter that is missing or does not hold an AMI ID; the message is one line naming it."""


def parameter_name(image_id):
    """``resolve:ssm:NAME`` -> ``NAME``; anything else -> None."""
    if image_id and image_id.startswith(RESOLVE_PREFIX):
        return image_id[len(RESOLVE_PREFIX) :]
    return None


def check_name(name, option):
    """Return an error message when ``name`` cannot be a parameter name, else None."""
    if not name or not name.strip() or any(ch.isspace() for ch in name):
        return f"{option}: {name!r} is not an SSM parameter name (such as /aws/service/debian/release/12/latest/amd64)"
    return None


def resolve_image(client, name, option):
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
