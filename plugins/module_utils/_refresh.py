# Copyright: (c) 2026, bakery.ec2 contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private: ec2_launch's ``instance_refresh``, rolling replacement in batches behind target groups. Not a public API.

A batch: launch (own deterministic client token) -> running -> registered in every target group -> healthy in every
group -> warm-up -> as many old instances deregistered, drained, terminated. A batch not healthy in time is rolled
back. The plan is recomputed from what exists, so a rerun after an interrupted one converges (see :class:`Rollout`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NoReturn

from ansible_collections.bakery.ec2.plugins.module_utils._client import AwsClient
from ansible_collections.bakery.ec2.plugins.module_utils._errors import TaskError
from ansible_collections.bakery.ec2.plugins.module_utils._shapes import chunks
from ansible_collections.bakery.ec2.plugins.module_utils._targets import HealthTimeout

if TYPE_CHECKING:
    from ansible_collections.bakery.ec2.plugins.module_utils._changes import Changes
    from ansible_collections.bakery.ec2.plugins.module_utils._targets import TargetGroups


def refresh_error(options: dict[str, Any] | None, state: str) -> str | None:
    """An error message for the first bad ``instance_refresh`` value (no AWS call), or None."""
    if options is None:
        return None
    size, percentage = options["batch_size"], options["min_healthy_percentage"]
    if size is not None and percentage is not None:
        return (
            f"instance_refresh: batch_size ({size}) and min_healthy_percentage ({percentage}) are mutually "
            "exclusive; give one"
        )
    if size is not None and size < 1:
        return f"instance_refresh.batch_size: {size} is not a number of instances (1 or more)"
    if percentage is not None and not 0 <= percentage <= 100:
        return f"instance_refresh.min_healthy_percentage: {percentage} is not between 0 and 100"
    if options["instance_warmup"] < 0:
        return f"instance_refresh.instance_warmup: {options['instance_warmup']} is negative"
    if options["health_timeout"] < 1:
        return f"instance_refresh.health_timeout: {options['health_timeout']} is not a number of seconds (1 or more)"
    if state == "stopped":
        return "instance_refresh: replaces running instances only; not with state stopped"
    return None


def batch_size(options: dict[str, Any], count: int) -> int:
    """Instances per batch: ``batch_size``, else ``max(1, count - ceil(count * min_healthy_percentage / 100))``
    (min_healthy_percentage 100 when neither is given, so one at a time)."""
    if options["batch_size"] is not None:
        return options["batch_size"]
    percentage = 100 if options["min_healthy_percentage"] is None else options["min_healthy_percentage"]
    return max(1, count - math.ceil(count * percentage / 100))


def ids_of(instances: Iterable[dict[str, Any]]) -> list[str]:
    return [inst["InstanceId"] for inst in instances]


def in_flight(matching: list[dict[str, Any]], drifted: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """The newest of ``matching`` beyond what ``count`` leaves room for next to ``drifted``: a batch launched by an
    interrupted run, to be brought into service (registered, healthy) before the old instances it replaces go."""
    excess = min(len(matching), len(matching) + len(drifted) - count)
    return matching[len(matching) - excess :] if excess > 0 else []


class Rollout:
    """Replace ``drifted`` instances (oldest first) so that ``count`` instances matching the options remain.

    ``targets``: :class:`TargetGroups` or None (then a batch counts as in service once running); ``launch(n,
    current_ids)``: launch ``n`` instances and return them once running; ``remove(instances, drain=True)``:
    deregister, drain, terminate. ``result`` is the module's ``instance_refresh`` return value.
    """

    def __init__(
        self,
        options: dict[str, Any],
        count: int,
        changes: Changes,
        targets: TargetGroups | None,
        launch: Callable[[int, list[str]], list[dict[str, Any]]],
        remove: Callable[..., object],
    ) -> None:
        self.options = options
        self.count = count
        self.changes = changes
        self.targets = targets
        self.launch = launch
        self.remove = remove
        self.result: dict[str, Any] = {"replaced": [], "launched": [], "batches": 0, "rolled_back": False}

    def plan(self, drifted: list[dict[str, Any]]) -> None:
        """Check mode: say which instances would be replaced, batch by batch."""
        batches = list(chunks(ids_of(drifted), batch_size(self.options, self.count)))
        for number, batch in enumerate(batches, 1):
            self.changes.will(
                f"replace {', '.join(batch)} with {len(batch)} new instance(s) (batch {number} of {len(batches)})"
            )
        self.result.update(replaced=ids_of(drifted), batches=len(batches))

    def run(self, matching: list[dict[str, Any]], drifted: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Roll; return the instances of the group afterwards (established ones, oldest first)."""
        if self.changes.check_mode:
            self.plan(drifted)
            return matching
        size = batch_size(self.options, self.count)
        batch = in_flight(matching, drifted, self.count)
        established = [inst for inst in matching if inst["InstanceId"] not in ids_of(batch)]
        while True:
            if batch:
                self.bring_in(batch, established + drifted)
                established, batch = established + batch, []
            excess = len(established) + len(drifted) - self.count
            if excess > 0 and drifted:
                old, drifted = drifted[:excess], drifted[excess:]
                self.remove(old)
                self.result["replaced"] += ids_of(old)
                self.result["batches"] += 1
                continue
            if not drifted:
                break
            batch = self.launch(min(size, len(drifted)), ids_of(established + drifted))
            self.result["launched"] += [iid for iid in ids_of(batch) if iid not in self.result["launched"]]
        return established

    def bring_in(self, batch: list[dict[str, Any]], old: list[dict[str, Any]]) -> None:
        """Register ``batch`` (running) and wait until it is healthy in every group, then the warm-up; roll it back
        (and fail) when it is not healthy in time, keeping ``old`` in service."""
        if self.targets is not None:
            self.targets.register(ids_of(batch), new=True)
            try:
                zones = {inst["InstanceId"]: (inst.get("Placement") or {}).get("AvailabilityZone") for inst in batch}
                self.targets.wait_healthy(ids_of(batch), self.options["health_timeout"], zones)
            except HealthTimeout as err:
                self.rollback(batch, old, err)
        if self.options["instance_warmup"]:
            AwsClient.sleep(self.options["instance_warmup"])

    def rollback(self, batch: list[dict[str, Any]], old: list[dict[str, Any]], err: HealthTimeout) -> NoReturn:
        self.result["rolled_back"] = True
        ids = ids_of(batch)
        self.remove(batch, drain=False)  # it never served (not healthy): no draining to wait for
        self.targets.register(ids_of(old))  # those an interrupted run had deregistered already
        raise TaskError(
            f"instance_refresh: new instance(s) {', '.join(ids)} {err.summary}; rolled back: they were deregistered "
            "and terminated, "
            f"the {len(old)} instance(s) in service stay ({', '.join(ids_of(old))})"
        )
