"""SSM public parameters for the base images, under Debian's names, in every region.

Debian publishes `/aws/service/debian/release/<12|bookworm>/latest/amd64` (and the same for 13 / trixie) in each
region, each holding that region's AMI ID. moto refuses PutParameter under `/aws/`, so the sandbox answers for
these names itself, through the SSM API's own requests and answers (no moto internals):

- every SSM request still goes to moto first, so moto's checks (signature, IAM when enforced) apply unchanged;
- when moto answers that one of these names does not exist, the answer is completed with the parameter: its
  value is the newest image of Debian's account named `debian-<N>-amd64-*` in the request's region, asked of
  the sandbox's own EC2 API (DescribeImages by owner and name), never assumed to be the same in every region.

Answered: GetParameter, GetParameters, GetParametersByPath. Other SSM actions are moto's alone, except:

- PutParameter with data type `aws:ec2:image`: AWS validates the value asynchronously, after answering (the AMI
  must be available to the account in that region); a value that fails is answered with success but never
  becomes the parameter's. The sandbox checks the value against its own EC2 API before moto sees the request,
  and for a value that fails answers 200 with the next version without storing anything.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from datetime import UTC, datetime

from botocore.exceptions import ClientError

from . import config, images

log = logging.getLogger("sandbox")

PREFIX = "/aws/service/debian/release/"
IMAGE_DATA_TYPE = "aws:ec2:image"
_AMI_RE = re.compile(r"^ami-[0-9a-f]{8}([0-9a-f]{9})?$")
TARGET = "AmazonSSM."
_REGION_RE = re.compile(r"Credential=[^/]+/\d+/([a-z0-9-]+)/ssm/")
_JSON = [("Content-Type", "application/x-amz-json-1.1")]


def published() -> dict[str, str]:
    """``{parameter name: image name pattern}`` for every base image recipe."""
    names = {}
    for recipe in images.RECIPES:
        for release in (recipe.version, recipe.suite):
            names[f"{PREFIX}{release}/latest/amd64"] = f"debian-{recipe.version}-amd64-*"
    return names


def is_ssm(environ) -> bool:
    return environ.get("HTTP_X_AMZ_TARGET", "").startswith(TARGET)


class PublicParameters:
    """Completes moto's SSM answers with the base images' public parameters."""

    def __init__(self, ec2, foreign=lambda image_id, region: False):
        self.ec2 = ec2  # region -> EC2 client of the sandbox itself
        # (image_id, region) -> True when the image is another region's: the sandbox's own client sees every
        # region's base image IDs (they are left out of users' answers only), and a parameter names its region's.
        self.foreign = foreign
        self.names = published()
        self._cache: dict[tuple[str, str], dict] = {}
        self._lock = threading.Lock()

    def parameter(self, region: str, name: str) -> dict | None:
        """The parameter ``name`` as SSM returns it in ``region``, or None (not ours, or no such image there)."""
        pattern = self.names.get(name)
        if pattern is None:
            return None
        with self._lock:
            if (region, name) in self._cache:
                return self._cache[(region, name)]
        found = self.ec2(region).describe_images(
            Owners=[config.DEBIAN_OWNER], Filters=[{"Name": "name", "Values": [pattern]}]
        )["Images"]
        found = [img for img in found if not self.foreign(img["ImageId"], region)]
        if not found:
            return None
        newest = max(found, key=lambda img: (img.get("CreationDate") or "", img["ImageId"]))
        created = datetime.strptime(newest["CreationDate"][:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
        param = {
            "Name": name,
            "Type": "String",
            "Value": newest["ImageId"],
            "Version": 1,
            "LastModifiedDate": created.timestamp(),
            "ARN": f"arn:aws:ssm:{region}::parameter{name}",
            "DataType": "aws:ec2:image",
        }
        with self._lock:  # base images never change while the sandbox runs
            self._cache[(region, name)] = param
        return param

    def image_refused(self, region: str, image_id: str) -> bool:
        """True when AWS's asynchronous check of an aws:ec2:image value would fail: not an available image of
        ``region`` that the account can see."""
        if not _AMI_RE.match(image_id or "") or self.foreign(image_id, region):
            return True
        try:
            found = self.ec2(region).describe_images(ImageIds=[image_id])["Images"]
        except ClientError:
            return True
        return not found or found[0].get("State") != "available"

    def answer(self, environ, raw: bytes, call_moto):
        """Moto's answer to an SSM request, completed with our parameters where moto has none."""
        action = environ.get("HTTP_X_AMZ_TARGET", "")[len(TARGET) :]
        match = _REGION_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
        if action == "PutParameter" and match:
            try:
                request = json.loads(raw or b"{}")
            except ValueError:
                request = {}
            if request.get("DataType") == IMAGE_DATA_TYPE and self.image_refused(match.group(1), request.get("Value")):
                log.info("ssm: PutParameter %s = %s refused by the aws:ec2:image check, after a 200 as on AWS",
                         request.get("Name"), request.get("Value"))  # fmt: skip
                return "200 OK", _JSON, json.dumps({"Version": 0, "Tier": "Standard"}).encode()
        status, headers, body = call_moto(environ, raw)
        if not match or action not in ("GetParameter", "GetParameters", "GetParametersByPath"):
            return status, headers, body
        region = match.group(1)
        try:
            request = json.loads(raw or b"{}")
            reply = json.loads(body or b"{}")
        except ValueError:
            return status, headers, body
        code = int(status.split()[0])
        if action == "GetParameter":
            missing = code == 400 and reply.get("__type", "").endswith("ParameterNotFound")
            param = self.parameter(region, request.get("Name", "")) if missing else None
            if param is None:
                return status, headers, body
            return "200 OK", _JSON, json.dumps({"Parameter": param}).encode()
        if code != 200:
            return status, headers, body
        if action == "GetParameters":
            still_missing = []
            for name in reply.get("InvalidParameters", []):
                param = self.parameter(region, name)
                if param is None:
                    still_missing.append(name)
                else:
                    reply.setdefault("Parameters", []).append(param)
            reply["InvalidParameters"] = still_missing
        else:
            path = request.get("Path", "").rstrip("/") + "/"
            recursive = request.get("Recursive", False)
            for name in self.names:
                rest = name[len(path) :] if name.startswith(path) else None
                if rest and (recursive or "/" not in rest):
                    param = self.parameter(region, name)
                    if param is not None:
                        reply.setdefault("Parameters", []).append(param)
        return "200 OK", _JSON, json.dumps(reply).encode()


def ssm_region(environ) -> str | None:
    """The region an SSM request is signed for, or None."""
    match = _REGION_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
    return match.group(1) if match else None


def ssm_names(raw: bytes) -> list[str]:
    """The parameter names an SSM request names (``Name`` or ``Names``), for the audit log."""
    try:
        request = json.loads(raw or b"{}")
    except ValueError:
        return []
    if not isinstance(request, dict):
        return []
    names = request.get("Names") or ([request["Name"]] if request.get("Name") else [])
    return sorted(str(n) for n in names)


def parameter_arn(region: str, name: str) -> str:
    """The ARN IAM authorizes a parameter's actions on: ``arn:aws:ssm:REGION:ACCOUNT:parameter/NAME``, the name
    without its leading slash (AWS's "Parameter Store" resource type)."""
    return f"arn:aws:ssm:{region}:{config.ACCOUNT_ID}:parameter/{name.lstrip('/')}"
