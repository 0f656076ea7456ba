"""IAM: actions on a role or an instance profile are authorized on its ARN; adding a role to a profile passes it."""

from __future__ import annotations

from .. import config
from .base import Request, Service


def iam_resource(params: dict) -> str:
    """The ARN of the instance profile or role an IAM request names, as IAM authorises it; ``*`` for the rest.

    An instance profile's actions (AddRoleToInstanceProfile too) are on the profile; the path is the request's
    ``Path`` (creation) or ``/``: the sandbox does not look up the path of an existing role or profile.
    """
    path = params.get("Path") or "/"
    if params.get("InstanceProfileName"):
        return f"arn:aws:iam::{config.ACCOUNT_ID}:instance-profile{path}{params['InstanceProfileName']}"
    if params.get("RoleName"):
        return f"arn:aws:iam::{config.ACCOUNT_ID}:role{path}{params['RoleName']}"
    return "*"


class Iam(Service):
    name = "iam"

    def requested(self, req: Request) -> list[tuple[str, str]]:
        wanted = [(f"iam:{req.action}", iam_resource(req.params))]
        if req.action == "AddRoleToInstanceProfile" and req.params.get("RoleName"):
            # IAM: "the caller must be granted the PassRole permission on the IAM role" it adds
            wanted.append(("iam:PassRole", f"arn:aws:iam::{config.ACCOUNT_ID}:role/{req.params['RoleName']}"))
        return wanted
