# Copyright: (c) 2026, bakery.ec2 contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shapes of requests and results: well-formed IDs and regions, filters within EC2's limits, snake_case results.

Not a public API: the leading underscore means names here may change in any release.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from typing import Any, TypeVar

from ansible_collections.bakery.ec2.plugins.module_utils._tags import tags_to_dict

# EC2 refuses a request with more than 200 values in one filter (FilterLimitExceeded), and long ID lists.
MAX_FILTER_VALUES = 200
_T = TypeVar("_T")

REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$")
ACCOUNT_RE = re.compile(r"^\d{12}$")
ID_PATTERNS = {
    "image": (re.compile(r"^ami-[0-9a-f]{8,17}$"), "an AMI ID (ami- followed by 8 to 17 hex digits)"),
    "instance": (re.compile(r"^i-[0-9a-f]{8,17}$"), "an instance ID (i- followed by 8 to 17 hex digits)"),
    "subnet": (re.compile(r"^subnet-[0-9a-f]{8,17}$"), "a subnet ID (subnet- followed by 8 to 17 hex digits)"),
    "security_group": (re.compile(r"^sg-[0-9a-f]{8,17}$"), "a security group ID (sg- followed by 8 to 17 hex digits)"),
    "snapshot": (re.compile(r"^snap-[0-9a-f]{8,17}$"), "a snapshot ID (snap- followed by 8 to 17 hex digits)"),
}


def chunks(values: Iterable[_T], size: int = MAX_FILTER_VALUES) -> Iterator[list[_T]]:
    """``values`` as lists of at most ``size`` (200: EC2's limit of values per filter or ID list)."""
    values = list(values)
    for start in range(0, len(values), size):
        yield values[start : start + size]


def split_filters(filters: Iterable[dict[str, Any]], size: int = MAX_FILTER_VALUES) -> list[list[dict[str, Any]]]:
    """EC2 ``filters`` (``[{'Name', 'Values'}]``) as sets of filters of at most ``size`` values each.

    EC2 refuses more than 200 values in one filter (``FilterLimitExceeded``). It ORs the values of a filter and
    ANDs the filters, so the resources matching ``filters`` are the union of those matching each set: one set per
    part of a long filter (per combination of parts when several are long). Short filters give one set, unchanged.
    """
    parts = [[{**f, "Values": part} for part in chunks(f["Values"], size)] or [f] for f in filters]
    return [list(combination) for combination in itertools.product(*parts)]


@lru_cache(maxsize=None)
def snake(name: str) -> str:
    """``CamelCase`` -> ``camel_case`` the way amazon.aws does (``ImageId`` -> ``image_id``)."""
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return name.lower()


def to_snake(value: Any) -> Any:
    """Convert an EC2 response structure to snake_case keys; ``Tags`` lists become a ``tags`` dict."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key == "Tags" and isinstance(item, list):
                out["tags"] = tags_to_dict(item)
            elif key == "ResponseMetadata":
                continue
            else:
                out[snake(key)] = to_snake(item)
        return out
    if isinstance(value, list):
        return [to_snake(item) for item in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def check_id(kind: str, value: object, option: str) -> str | None:
    """Return an error message when ``value`` is not a well-formed ID of ``kind``, else None."""
    pattern, expected = ID_PATTERNS[kind]
    if not pattern.match(str(value)):
        return f"{option}: {value!r} is not {expected}"
    return None


def check_regions(regions: Sequence[str] | None, option: str = "regions") -> str | None:
    """Return an error message when ``regions`` (a list, or None for the task's region) is empty or malformed."""
    if regions is None:
        return None
    if not regions:
        return f"{option}: the list is empty; give at least one region, or leave {option} out"
    for region in regions:
        if not REGION_RE.match(region):
            return f"{option}: {region!r} is not a valid AWS region name"
    return None
