"""Where EC2 is strict and moto is not: eventual consistency, filter and page limits, zone offerings.

Each rule follows EC2's documented behaviour (sandbox/README.md has the table and the links). The
middleware (sandbox/core.py) asks :class:`Strict` before moto acts (an EC2 error, or nothing) and
after (the answer with not-yet-visible resources left out). Requests the sandbox makes to itself
never meet these rules.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
import xml.etree.ElementTree as ET

from . import config
from .errors import SandboxError

NS = "{" + config.EC2_NS.rstrip("/") + "}"

DEFAULT_WINDOW = 2.0
MAX_WINDOW = 60.0
FILTER_VALUES_MAX = 200

# MaxResults bounds as the EC2 API reference gives them, per action.
MAX_RESULTS = {
    "DescribeInstances": (5, 1000),
    "DescribeInstanceStatus": (5, 1000),
    "DescribeImages": (6, 1000),
    "DescribeSecurityGroups": (5, 1000),
    "DescribeSubnets": (5, 1000),
    "DescribeVpcs": (5, 1000),
    "DescribeSnapshots": (5, 1000),
    "DescribeVolumes": (5, 500),
    "DescribeInstanceTypes": (5, 100),
    "DescribeInstanceTypeOfferings": (5, 1000),
    "DescribeTags": (5, 1000),
    "DescribeSecurityGroupRules": (5, 1000),
}

# What a create call makes, and how to read its identifier from moto's answer.
CREATED = {
    "CreateSecurityGroup": ("group", "groupId"),
    "ImportKeyPair": ("key", "keyName"),
    "CreateKeyPair": ("key", "keyName"),
    "RunInstances": ("instance", "instanceId"),
    "CreateImage": ("image", "imageId"),
    "CopyImage": ("image", "imageId"),
}

NOT_FOUND = {
    "group": ("InvalidGroup.NotFound", "The security group '{}' does not exist"),
    "key": ("InvalidKeyPair.NotFound", "The key pair '{}' does not exist"),
    "instance": ("InvalidInstanceID.NotFound", "The instance ID '{}' does not exist"),
    "image": ("InvalidAMIID.NotFound", "The image id '[{}]' does not exist"),
}

# Per later call: which parameters name which kind of resource (a trailing ".N" is any index).
NAMED = {
    "DescribeSecurityGroups": [("GroupId.N", "group")],
    "DescribeKeyPairs": [("KeyName.N", "key")],
    "AuthorizeSecurityGroupIngress": [("GroupId", "group")],
    "RunInstances": [
        ("SecurityGroupId.N", "group"),
        ("NetworkInterface.N.SecurityGroupId.N", "group"),
        ("KeyName", "key"),
        ("ImageId", "image"),
    ],
    "DescribeInstances": [("InstanceId.N", "instance")],
    "CreateTags": [("ResourceId.N", "instance"), ("ResourceId.N", "image")],
    "ModifyInstanceAttribute": [("InstanceId", "instance")],
    "ModifyInstanceMetadataOptions": [("InstanceId", "instance")],
    "DescribeImages": [("ImageId.N", "image")],
    "ModifyImageAttribute": [("ImageId", "image")],
}

# Describe answers: where the items are and which child names them.
LISTED = {
    "DescribeSecurityGroups": ("group", "securityGroupInfo", "groupId"),
    "DescribeKeyPairs": ("key", "keySet", "keyName"),
    "DescribeImages": ("image", "imagesSet", "imageId"),
}


def _pattern(name: str) -> re.Pattern:
    return re.compile("^" + re.escape(name).replace(r"\.N", r"\.\d+") + "$")


_NAMED_RES = {action: [(_pattern(p), kind) for p, kind in rules] for action, rules in NAMED.items()}
_FILTER_VALUE_RE = re.compile(r"^Filter\.(\d+)\.Value\.\d+$")


def parse_seconds(name: str, value, maximum: float) -> float:
    """A setting ``name`` of 0 to ``maximum`` seconds; a ValueError names a bad value."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: {value!r} is not a number of seconds") from None
    if not 0 <= seconds <= maximum:
        raise ValueError(f"{name}: {value!r} is not between 0 and {maximum:g} seconds")
    return seconds


def parse_window(value) -> float:
    """The consistency window in seconds; a ValueError names a bad value."""
    return parse_seconds("SANDBOX_EC_WINDOW", value, MAX_WINDOW)


def parse_seed(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"SANDBOX_EC_SEED: {value!r} is not an integer") from None


def settings_from_env(environ=os.environ) -> tuple[float, int]:
    """(window, seed) from SANDBOX_EC_WINDOW / SANDBOX_EC_SEED; SandboxError with one line if bad."""
    try:
        return (
            parse_window(environ.get("SANDBOX_EC_WINDOW") or DEFAULT_WINDOW),
            parse_seed(environ.get("SANDBOX_EC_SEED") or 0),
        )
    except ValueError as exc:
        raise SandboxError(str(exc)) from None


class Consistency:
    """A seeded window per resource after its create call, during which it cannot be named by ID."""

    def __init__(self, window: float = DEFAULT_WINDOW, seed: int = 0):
        self.window = window
        self.seed = seed
        self.lock = threading.Lock()
        self.visible_at: dict[tuple[str, str, str], float] = {}  # (region, kind, id) -> time

    def delay(self, resource_id: str) -> float:
        """The resource's own window: the same for the same seed and ID, whatever the call order."""
        if not self.window:
            return 0.0
        return random.Random(f"{self.seed}:{resource_id}").uniform(0, self.window)  # noqa: S311 - not security

    def created(self, region: str, kind: str, resource_id: str) -> None:
        delay = self.delay(resource_id)
        if delay:
            with self.lock:
                self.visible_at[(region, kind, resource_id)] = time.monotonic() + delay

    def hidden(self, region: str, kind: str, resource_id: str) -> bool:
        if not self.visible_at:
            return False
        key = (region, kind, resource_id)
        until = self.visible_at.get(key)
        if until is None:
            return False
        if time.monotonic() >= until:
            with self.lock:
                self.visible_at.pop(key, None)
            return False
        return True

    def hidden_now(self) -> dict[str, float]:
        """Every resource still inside its window: ID -> seconds until the API shows it."""
        now = time.monotonic()
        with self.lock:
            return {rid: round(until - now, 3) for (_r, _k, rid), until in self.visible_at.items() if until > now}

    def reset(self) -> None:
        with self.lock:
            self.visible_at.clear()


def ec2_error_args(kind: str, resource_id: str) -> tuple[str, str]:
    code, message = NOT_FOUND[kind]
    return code, message.format(resource_id)


class Strict:
    """The checks before moto acts and the rewriting of its answers (see the module docstring)."""

    def __init__(self, window: float = DEFAULT_WINDOW, seed: int = 0):
        self.consistency = Consistency(window, seed)
        # Base images: one ID per region (ID -> its region); other regions do not know it.
        self.image_region: dict[str, str] = {}

    # ------------------------------------------------------------ before moto
    def check(self, action: str, params: dict, region: str) -> tuple[str, str] | None:
        """(code, message) of the EC2 error this request meets, or None."""
        return (
            self._check_filters(params)
            or self._check_max_results(action, params)
            or self._check_named(action, params, region)
        )

    @staticmethod
    def _check_filters(params: dict) -> tuple[str, str] | None:
        counts: dict[str, int] = {}
        for key in params:
            m = _FILTER_VALUE_RE.match(key)
            if m:
                counts[m.group(1)] = counts.get(m.group(1), 0) + 1
        for index, count in counts.items():
            if count > FILTER_VALUES_MAX:
                name = params.get(f"Filter.{index}.Name", "")
                return (
                    "FilterLimitExceeded",
                    f"The maximum number of filter values specified on a single call is {FILTER_VALUES_MAX} "
                    f"(filter {name!r} has {count})",
                )
        return None

    @staticmethod
    def _check_max_results(action: str, params: dict) -> tuple[str, str] | None:
        if "MaxResults" not in params or action not in MAX_RESULTS:
            return None
        low, high = MAX_RESULTS[action]
        value = params["MaxResults"]
        try:
            ok = low <= int(value) <= high
        except ValueError:
            ok = False
        if ok:
            return None
        return (
            "InvalidParameterValue",
            f"Value ( {value} ) for parameter maxResults is invalid. Expecting a value between {low} and {high}.",
        )

    def _check_named(self, action: str, params: dict, region: str) -> tuple[str, str] | None:
        rules = _NAMED_RES.get(action)
        if not rules:
            return None
        for key, value in sorted(params.items()):
            for pattern, kind in rules:
                if not pattern.match(key):
                    continue
                if kind == "image" and self.foreign_image(value, region):
                    return ec2_error_args(kind, value)
                if self.consistency.hidden(region, kind, value):
                    return ec2_error_args(kind, value)
        return None

    def foreign_image(self, image_id: str, region: str) -> bool:
        home = self.image_region.get(image_id)
        return home is not None and home != region

    # ------------------------------------------------------------ after moto
    def record(self, action: str, region: str, body: bytes) -> None:
        """Start the window of what a successful create call made."""
        if action not in CREATED or not self.consistency.window:
            return
        kind, tag = CREATED[action]
        root = ET.fromstring(body)  # noqa: S314 - moto's own response, from this process
        ids = {el.text for el in root.iter(NS + tag) if el.text}
        for resource_id in ids:
            self.consistency.created(region, kind, resource_id)

    def rewrite(self, action: str, region: str, body: bytes) -> bytes:
        """Leave out of a Describe answer what is not visible yet (or belongs to another region)."""
        if action == "DescribeInstances":
            return self._rewrite_instances(region, body)
        if action not in LISTED:
            return body
        kind, set_tag, id_tag = LISTED[action]
        if not self.consistency.visible_at and not (kind == "image" and self.image_region):
            return body
        root = ET.fromstring(body)  # noqa: S314 - moto's own response, from this process
        changed = False
        for parent in root.iter(NS + set_tag):
            for item in list(parent.findall(NS + "item")):
                rid = item.findtext(NS + id_tag) or ""
                if self.consistency.hidden(region, kind, rid) or (kind == "image" and self.foreign_image(rid, region)):
                    parent.remove(item)
                    changed = True
        return _serialise(root) if changed else body

    def _rewrite_instances(self, region: str, body: bytes) -> bytes:
        if not self.consistency.visible_at:
            return body
        root = ET.fromstring(body)  # noqa: S314 - moto's own response, from this process
        changed = False
        for rset in root.iter(NS + "reservationSet"):
            for res in list(rset.findall(NS + "item")):
                for iset in res.findall(NS + "instancesSet"):
                    for inst in list(iset.findall(NS + "item")):
                        if self.consistency.hidden(region, "instance", inst.findtext(NS + "instanceId") or ""):
                            iset.remove(inst)
                            changed = True
                    if not iset.findall(NS + "item"):
                        rset.remove(res)
        return _serialise(root) if changed else body


def _serialise(root: ET.Element) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root)


# ---------------------------------------------------------------- zone offerings
def unsupported_message(instance_type: str, zone: str, offering_zones: list[str]) -> str:
    return (
        f"Your requested instance type ({instance_type}) is not supported in your requested Availability Zone "
        f"({zone}). Please retry your request by not specifying an Availability Zone or choosing "
        f"{', '.join(offering_zones)}."
    )


def capacity_message(instance_type: str, zone: str) -> str:
    return (
        f"We currently do not have sufficient {instance_type} capacity in the Availability Zone you requested "
        f"({zone}). Our system will be working on provisioning additional capacity. You can currently get "
        f"{instance_type} capacity by not specifying an Availability Zone in your request or choosing a "
        "different Availability Zone."
    )
