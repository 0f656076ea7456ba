# Copyright: (c) 2026, bakery.ec2 contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tags: EC2's tag lists and dicts, tag specifications, what EC2 refuses, and what to set and unset.

Not a public API: the leading underscore means names here may change in any release.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any


def tags_to_dict(tag_list: Iterable[dict[str, Any]] | None) -> dict[str, str]:
    """``[{'Key': k, 'Value': v}]`` -> ``{k: v}``."""
    return {tag["Key"]: tag.get("Value", "") for tag in tag_list or ()}


def dict_to_tags(tags: dict[str, Any] | None) -> list[dict[str, str]]:
    """``{k: v}`` -> ``[{'Key': k, 'Value': v}]`` (sorted, so requests are deterministic)."""
    return [{"Key": str(k), "Value": "" if v is None else str(v)} for k, v in sorted((tags or {}).items())]


def tag_specifications(tags: dict[str, Any] | None, *resource_types: str) -> list[dict[str, Any]]:
    if not tags:
        return []
    tag_list = dict_to_tags(tags)
    return [{"ResourceType": rtype, "Tags": tag_list} for rtype in resource_types]


def validate_tags(tags: dict[str, Any] | None, option: str = "tags") -> str | None:
    """Return an error message for the first tag EC2 would refuse, or None."""
    if len(tags or {}) > 50:
        return f"{option}: {len(tags)} tags given, EC2 allows at most 50 per resource"
    for key, value in (tags or {}).items():
        key = str(key)
        if key.lower().startswith("aws:"):
            return f"{option}: tag key {key!r} uses the reserved prefix 'aws:'"
        if not key or len(key) > 128:
            return f"{option}: tag key {key!r} must be 1 to 128 characters"
        if value is not None and len(str(value)) > 256:
            return f"{option}: value of tag {key!r} is longer than 256 characters"
    return None


def compare_tags(
    current: dict[str, str], desired: dict[str, Any] | None, purge: bool = True, keep: Collection[str] = ()
) -> tuple[dict[str, str], list[str]]:
    """Return ``(to_set, to_unset)``: tags to write and keys to remove so ``current`` becomes ``desired``."""
    desired = {str(k): "" if v is None else str(v) for k, v in (desired or {}).items()}
    to_set = {k: v for k, v in desired.items() if current.get(k) != v}
    to_unset: list[str] = []
    if purge:
        to_unset = sorted(k for k in current if k not in desired and k not in keep and not k.startswith("aws:"))
    return to_set, to_unset
