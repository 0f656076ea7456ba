"""An image's life after it is made, as AWS keeps it and moto 5.2.5 does not.

Through the EC2, Auto Scaling and SSM APIs' own requests and answers (the sandbox's own client reads moto's state):

- ``EnableImageDeprecation`` / ``DisableImageDeprecation``: the time is kept here (rounded to the minute, not in
  the past, at most 10 years ahead) and shown as ``deprecationTime`` in DescribeImages. A deprecated image still
  launches. Once the time has passed, another account's image is left out of DescribeImages unless the request
  names it or asks for ``IncludeDeprecated``; the owner always sees its own.
- ``EnableImageDeregistrationProtection`` (``WithCooldown``) / ``DisableImageDeregistrationProtection``: shown as
  ``deregistrationProtection`` (``disabled``, ``enabled-without-cooldown``, ``enabled-with-cooldown``) in every
  DescribeImages item; DeregisterImage is refused while it is on, and for 24 hours after protection with cooldown
  is turned off.
- ``DeleteSnapshot`` is refused (``InvalidSnapshot.InUse``) while any image of the region still names the snapshot
  (moto checks only the image it made the snapshot for).
- ``CreateLaunchTemplate`` / ``CreateLaunchTemplateVersion`` naming an image the region does not have answer with
  EC2's ``warning`` (the template is still made, as on AWS); ``CreateLaunchConfiguration`` naming one is refused
  (``ValidationError``), as Auto Scaling does.

Its own file, so that the services' layout can move it whole; sandbox/core.py calls ``before``, ``after`` and
``autoscaling`` from one place each. (SSM's ``DataType`` filter is a moto gap: sandbox/moto_gaps.py.)
"""

from __future__ import annotations

import threading
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from . import config

NS = "{" + config.EC2_NS.rstrip("/") + "}"
ANSWERED = (
    "EnableImageDeprecation",
    "DisableImageDeprecation",
    "EnableImageDeregistrationProtection",
    "DisableImageDeregistrationProtection",
)
MAX_DEPRECATION = timedelta(days=3652)
COOLDOWN = timedelta(hours=24)


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def parse_time(value: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _ok(action: str) -> tuple[int, bytes]:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<{action}Response xmlns="{config.EC2_NS}">'
        f"<requestId>{uuid.uuid4()}</requestId><return>true</return></{action}Response>"
    )
    return 200, body.encode()


class ImageLifecycle:
    """Deprecation times, deregistration protection, and the references to images AWS checks."""

    def __init__(self, ec2, error, foreign=lambda image_id, region: False):
        self.ec2 = ec2  # region -> the sandbox's own EC2 client (moto's state, every image of the region)
        self.error = error  # (code, message) -> EC2's error answer (status, body)
        self.foreign = foreign  # (image_id, region) -> True when the image is another region's
        self.deprecation: dict[tuple[str, str], datetime] = {}
        self.protection: dict[tuple[str, str], str] = {}  # "enabled-with-cooldown" / "enabled-without-cooldown"
        self.cooldown_until: dict[tuple[str, str], datetime] = {}
        self._lock = threading.Lock()

    def _exists(self, region: str, image_id: str) -> bool:
        if not image_id.startswith("ami-") or self.foreign(image_id, region):
            return False
        try:
            return bool(self.ec2(region).describe_images(ImageIds=[image_id])["Images"])
        except Exception:  # moto answers an unknown ID with InvalidAMIID.NotFound
            return False

    def _missing(self, image_id: str) -> tuple[int, bytes]:
        return self.error("InvalidAMIID.NotFound", f"The image id '[{image_id}]' does not exist")

    # ------------------------------------------------------------ EC2, before moto
    def before(self, action: str, params: dict, region: str) -> tuple[int, bytes] | None:
        """EC2's answer for what moto does not do, or a refusal; None lets moto answer."""
        if action in ANSWERED:
            image_id = params.get("ImageId", "")
            if not self._exists(region, image_id):
                return self._missing(image_id)
            return getattr(self, f"_{action}")(params, region, (region, image_id))
        if action == "DeregisterImage":
            return self._refuse_protected(region, params.get("ImageId", ""))
        if action == "DeleteSnapshot":
            return self._refuse_snapshot_in_use(region, params.get("SnapshotId", ""))
        return None

    def _EnableImageDeprecation(self, params, region, key):
        when = parse_time(params.get("DeprecateAt", ""))
        if when is None:
            return self.error("InvalidParameterValue", f"Invalid value for DeprecateAt: {params.get('DeprecateAt')}")
        now = _now()
        if when < now:  # EnableImageDeprecation: "You can't specify a date in the past."
            return self.error("InvalidParameterValue", f"The deprecation time {params['DeprecateAt']} is in the past.")
        when = (when + timedelta(seconds=30)).replace(second=0, microsecond=0)  # EC2 rounds to the nearest minute
        if when > now + MAX_DEPRECATION:
            return self.error("InvalidParameterValue", "The deprecation time cannot be more than 10 years from now.")
        with self._lock:
            self.deprecation[key] = when
        return _ok("EnableImageDeprecation")

    def _DisableImageDeprecation(self, params, region, key):
        with self._lock:
            self.deprecation.pop(key, None)
        return _ok("DisableImageDeprecation")

    def _EnableImageDeregistrationProtection(self, params, region, key):
        cooldown = params.get("WithCooldown", "false").lower() == "true"
        with self._lock:
            self.protection[key] = "enabled-with-cooldown" if cooldown else "enabled-without-cooldown"
            self.cooldown_until.pop(key, None)
        return _ok("EnableImageDeregistrationProtection")

    def _DisableImageDeregistrationProtection(self, params, region, key):
        with self._lock:
            if self.protection.pop(key, None) == "enabled-with-cooldown":
                self.cooldown_until[key] = _now() + COOLDOWN
        return _ok("DisableImageDeregistrationProtection")

    def _refuse_protected(self, region: str, image_id: str):
        key = (region, image_id)
        with self._lock:
            protected = key in self.protection
            until = self.cooldown_until.get(key)
        if protected or (until and until > _now()):
            return self.error(
                "OperationNotPermitted",
                f"The image {image_id} cannot be deregistered because deregistration protection is enabled"
                + (f" (cooldown until {_stamp(until)})" if not protected else "")
                + ". Disable it with DisableImageDeregistrationProtection first.",
            )
        return None

    def _refuse_snapshot_in_use(self, region: str, snapshot_id: str):
        pages = self.ec2(region).get_paginator("describe_images").paginate(Owners=["self"])
        for page in pages:
            for image in page["Images"]:
                used = {m.get("Ebs", {}).get("SnapshotId") for m in image.get("BlockDeviceMappings", [])}
                if snapshot_id in used:
                    return self.error(
                        "InvalidSnapshot.InUse", f"The snapshot {snapshot_id} is currently in use by {image['ImageId']}"
                    )
        return None

    # ------------------------------------------------------------ EC2, after moto
    def after(self, action: str, params: dict, region: str, body: bytes) -> bytes:
        if action == "DescribeImages":
            return self._describe_images(params, region, body)
        if action == "DeregisterImage":
            key = (region, params.get("ImageId", ""))
            with self._lock:
                self.deprecation.pop(key, None)
                self.cooldown_until.pop(key, None)
        if action in ("CreateLaunchTemplate", "CreateLaunchTemplateVersion"):
            image_id = params.get("LaunchTemplateData.ImageId", "")
            if image_id.startswith("ami-") and not self._exists(region, image_id):
                return self._warn(body, action, image_id)
        return body

    def _describe_images(self, params: dict, region: str, body: bytes) -> bytes:
        root = ET.fromstring(body)  # noqa: S314 - moto's own response, from this process
        named = {v for k, v in params.items() if k.startswith("ImageId.")}
        include = params.get("IncludeDeprecated", "false").lower() == "true"
        now = _now()
        images_set = root.find(NS + "imagesSet")
        for item in list(images_set if images_set is not None else []):
            image_id = item.findtext(NS + "imageId")
            key = (region, image_id)
            with self._lock:
                deprecated = self.deprecation.get(key)
                protection = self.protection.get(key, "disabled")
            if deprecated is not None:
                others = item.findtext(NS + "imageOwnerId") != config.ACCOUNT_ID
                if others and deprecated <= now and not include and image_id not in named:
                    images_set.remove(item)
                    continue
                ET.SubElement(item, NS + "deprecationTime").text = _stamp(deprecated)
            ET.SubElement(item, NS + "deregistrationProtection").text = protection
        return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root)

    def _warn(self, body: bytes, action: str, image_id: str) -> bytes:
        root = ET.fromstring(body)  # noqa: S314 - moto's own response, from this process
        warning = ET.SubElement(root, NS + "warning")
        error = ET.SubElement(ET.SubElement(warning, NS + "errorSet"), NS + "item")
        ET.SubElement(error, NS + "code").text = "InvalidAMIID.NotFound"
        ET.SubElement(error, NS + "message").text = f"The image id '[{image_id}]' does not exist"
        return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root)

    # ------------------------------------------------------------ Auto Scaling
    def launch_configuration_refusal(self, params: dict, region: str) -> str | None:
        """Auto Scaling's message refusing a launch configuration that names an image the region does not have."""
        image_id = params.get("ImageId", "")
        if not image_id or self._exists(region, image_id):
            return None
        return f"The image id {image_id!r} does not exist"
