"""Auto Scaling with real hosts: the engine behind moto's Auto Scaling model.

moto answers the Auto Scaling API (groups, launch configurations, tags), but it launches a group's instances inside
the API call, all in the group's first subnet, with no host behind them, and never looks at them again. Here moto
only records what a group wants (its desired capacity, launch template, subnets, target groups, health check); this
engine, one loop a second, does what the service does on AWS:

- **Launching.** ``RunInstances`` through the sandbox's own API, as Auto Scaling calls EC2 on the account's behalf,
  so a group's instance is a real host like any other (image, network, metadata service, instance profile, KMS
  checks). Its parameters are the group's launch template version (``$Default`` and ``$Latest`` resolved when it
  launches) or launch configuration; its subnet is the one whose zone has the fewest instances of the group (ties:
  the group's subnet order), the next zone when EC2 has no capacity there. Tags: the launch template's, the group's
  ``PropagateAtLaunch`` ones and ``aws:autoscaling:groupName``.
- **Lifecycle.** A new instance is ``Pending`` until its host runs, then registered in the group's target groups
  and ``InService``. Leaving, it is ``Terminating``: deregistered from the target groups, terminated once they have
  drained it (their deregistration delay), then gone from the group.
- **Health.** ``EC2`` checks always (an instance that is not running is unhealthy), ``ELB`` checks when the group's
  ``HealthCheckType`` is ``ELB`` and its ``HealthCheckGracePeriod`` has passed since the launch (any of its target
  groups reporting it ``unhealthy``), and ``SetInstanceHealth``. An unhealthy instance is replaced: a new one is
  launched, then the unhealthy one leaves as above.
- **Capacity.** Fewer instances than desired: launches. More: the zone with the most instances first, there the
  oldest launch template version, then the oldest instance (AWS's default termination policy, without its
  billing-hour step); instances protected from scale-in stay.
- **Deleting.** ``DeleteAutoScalingGroup`` is refused while the group has instances (``ResourceInUse``) unless
  ``ForceDelete``; then its instances are deregistered and terminated at once.
- Every launch and termination is an activity of ``DescribeScalingActivities``.

Not emulated: scaling policies, scheduled actions, warm pools, lifecycle hooks, mixed instances policies, capacity
rebalancing, cooldowns, instance maintenance policies (health replacements always launch first).
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import functools
import logging
import math
import threading
import time
import uuid
from dataclasses import dataclass, field

from botocore.exceptions import ClientError

from . import config

log = logging.getLogger("sandbox")

GROUP_TAG = "aws:autoscaling:groupName"
CAPACITY_CODES = ("InsufficientInstanceCapacity", "Unsupported")
# Hosts that are gone or going count as unhealthy for an EC2 health check.
NOT_RUNNING = ("stopping", "stopped", "shutting-down", "terminated")
IN_USE_MESSAGE = "You cannot delete an AutoScalingGroup while there are instances or pending Spot instance request(s)"


def _matches(member: Member, template: dict | None) -> bool:
    return template is not None and (member.template_id, str(member.version)) == (
        template["LaunchTemplateId"],
        str(template["Version"]),
    )


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass
class Member:
    """The engine's side of one instance of a group (moto's side: the InstanceState in the group's list)."""

    instance_id: str
    group: str
    region: str
    zone: str
    version: int | None  # the launch template version it was launched from
    template_id: str | None = None  # and that template's ID
    launched: float = field(default_factory=time.monotonic)
    in_service: float | None = None  # when it came in service (monotonic)
    registered: list[str] = field(default_factory=list)  # target group ARNs it was registered in
    leaving: float | None = None  # when it was deregistered (monotonic), on its way out
    replaced: bool = False  # unhealthy: a replacement was launched for it


@dataclass
class Activity:
    activity_id: str
    group: str
    description: str
    cause: str
    start: datetime.datetime
    end: datetime.datetime | None = None
    status: str = "InProgress"
    instance_id: str = ""  # the instance it launches or terminates


class RefreshError(Exception):
    """A StartInstanceRefresh (or Cancel, Rollback) Auto Scaling refuses: ``code`` and the message."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class Refresh:
    """One instance refresh: replace every instance that is not of ``desired`` (an exact launch template version)."""

    refresh_id: str
    group: str
    region: str
    desired: dict  # LaunchTemplateId, LaunchTemplateName, Version (exact)
    previous: dict | None  # the group's launch template before, for a rollback (exact)
    min_healthy: int
    max_healthy: int
    warmup: int
    auto_rollback: bool
    skip_matching: bool
    to_update: int
    status: str = "Pending"
    reason: str = ""
    start: datetime.datetime = field(default_factory=now)
    end: datetime.datetime | None = None
    rolling_back: bool = False
    rollback_reason: str = ""
    rollback_start: datetime.datetime | None = None
    launched: list[str] = field(default_factory=list)  # replacements it launched (the current direction's)
    left: int = 0  # instances of the old configuration it replaced

    def target(self) -> dict:
        return self.previous if self.rolling_back else self.desired

    def done(self) -> bool:
        return self.status in FINAL

    def percentage(self) -> int:
        return 100 if self.to_update == 0 else min(100, int(100 * self.left / self.to_update))

    @property
    def preferences(self) -> dict:
        """Its preferences as DescribeInstanceRefreshes names them."""
        return {
            "MinHealthyPercentage": self.min_healthy,
            "MaxHealthyPercentage": self.max_healthy,
            "InstanceWarmup": self.warmup,
            "AutoRollback": self.auto_rollback,
            "SkipMatching": self.skip_matching,
        }


FINAL = ("Successful", "Failed", "Cancelled", "RollbackSuccessful", "RollbackFailed")
# How long a refresh's replacement may take to be healthy once its warm-up is over before the refresh fails (AWS
# waits for the health check grace period and its own limits; the sandbox keeps it short and bounded).
REFRESH_HEALTH_TIMEOUT = 60.0


class Engine:
    """Keeps every group at its desired capacity with healthy, registered instances (see the module's text)."""

    def __init__(self, core, period: float = 1.0):
        self.core = core
        self.period = period
        self.members: dict[str, Member] = {}
        self.activities: list[Activity] = []
        self.refreshes: list[Refresh] = []
        # Launch failures in a row per (region, group), and when the group may launch again.
        self._failures: dict[tuple[str, str], int] = {}
        self._retry_at: dict[tuple[str, str], float] = {}
        self.lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ moto's side
    @staticmethod
    def apply_moto() -> None:
        """moto records a group's desired capacity and no more: launching, registering and terminating are ours."""
        from moto.autoscaling.models import AutoScalingBackend, FakeAutoScalingGroup

        if getattr(FakeAutoScalingGroup.set_desired_capacity, "_bakery_engine", False):
            return

        def set_desired_capacity(self, new_capacity):
            self.desired_capacity = self.min_size if new_capacity is None else new_capacity

        def nothing(self, *args, **kwargs):
            return None

        set_desired_capacity._bakery_engine = True
        FakeAutoScalingGroup.set_desired_capacity = set_desired_capacity
        FakeAutoScalingGroup.replace_autoscaling_group_instances = nothing  # moto's launches, without hosts
        AutoScalingBackend.update_attached_target_groups = nothing  # the engine registers what is InService
        AutoScalingBackend.notify_terminate_instances = nothing  # the engine's health checks see them go

    @staticmethod
    def backends() -> list[tuple[str, object]]:
        from moto.autoscaling.models import autoscaling_backends

        return list(autoscaling_backends[config.ACCOUNT_ID].items())

    @staticmethod
    def ec2_backend(region: str):
        from moto.ec2.models import ec2_backends

        return ec2_backends[config.ACCOUNT_ID][region]

    # ------------------------------------------------------------ the loop
    def wake(self) -> None:
        """Start the loop (the first group's creation does)."""
        with self.lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._loop, name="autoscaling", daemon=True)
                self._thread.start()

    def shutdown(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.tick()
            except Exception:
                log.exception("auto scaling: a round of the engine failed")

    def tick(self) -> None:
        for region, backend in self.backends():
            for group in list(backend.autoscaling_groups.values()):
                with self.lock:
                    self.reconcile(region, group)
        with self.lock:  # instances of groups deleted since
            live = {(r, g) for r, b in self.backends() for g in b.autoscaling_groups}
            for member in [m for m in self.members.values() if (m.region, m.group) not in live]:
                self._terminate(member)
                self.members.pop(member.instance_id, None)

    # ------------------------------------------------------------ one group
    def reconcile(self, region: str, group) -> None:
        states = {s.instance.id: s for s in group.instance_states}
        mine = [m for m in self.members.values() if m.group == group.name and m.region == region]
        for member in mine:
            state = states.get(member.instance_id)
            if state is None:  # detached (DetachInstances, TerminateInstanceInAutoScalingGroup)
                self.members.pop(member.instance_id)
                continue
            self._advance(group, member, state)
        # capacity: members on their way out do not count (the list again: replacements joined it)
        states = {s.instance.id: s for s in group.instance_states}
        staying = [
            states[m.instance_id]
            for m in self.members.values()
            if m.group == group.name and m.region == region and m.leaving is None and not m.replaced
        ]
        wanted = group.desired_capacity or 0
        refresh = self.refresh_of(region, group.name)
        if refresh is not None:
            self._refresh_round(group, refresh, staying)
            return
        if len(staying) < wanted:
            for _ in range(wanted - len(staying)):
                if not self._launch(
                    region,
                    group,
                    "an instance was started in response to a difference between desired and actual capacity",
                ):
                    break
        elif len(staying) > wanted:
            for state in self._scale_in_order(group, staying)[: len(staying) - wanted]:
                self._leave(
                    group,
                    self.members[state.instance.id],
                    "an instance was taken out of service in "
                    "response to a difference between desired and actual capacity, shrinking the capacity",
                )

    def _state(self, member: Member) -> str:
        """The instance's state: its host's, or moto's for an instance of an API-only image (no host)."""
        host = self.core.hosts.get(member.instance_id)
        if host is not None:
            return host.state
        try:
            return self.ec2_backend(member.region).get_instance(member.instance_id).state
        except Exception:  # moto's InvalidInstanceIdError: gone from the region
            return "terminated"

    def _advance(self, group, member: Member, state) -> None:
        host_state = self._state(member)
        if member.leaving is not None:
            if host_state == "terminated":
                group.instance_states = [s for s in group.instance_states if s.instance.id != member.instance_id]
                self.members.pop(member.instance_id, None)
                self._end(member.instance_id, "Successful")
            elif host_state != "shutting-down" and self._drained(member):
                self._terminate(member)
            return
        why = "a user health-check"  # SetInstanceHealth, unless a check of ours finds a reason
        if host_state in NOT_RUNNING:
            if state.lifecycle_state == "Pending" and state.health_status == "Healthy":
                self._end(member.instance_id, "Failed")  # it never came in service (EC2 refused to run it)
                self._launch_failed((member.region, group.name))
            state.health_status = "Unhealthy"
            why = "an EC2 health check indicating it has been terminated or stopped"
        elif state.lifecycle_state == "Pending" and host_state == "running":
            self._register(group, member)
            state.lifecycle_state = "InService"
            member.in_service = time.monotonic()
            self._failures.pop((member.region, group.name), None)
            self._retry_at.pop((member.region, group.name), None)
            self._end(member.instance_id, "Successful")
        elif state.lifecycle_state == "InService":
            if group.health_check_type == "ELB" and self._elb_unhealthy(group, member):
                state.health_status = "Unhealthy"
                why = "an ELB system health check failure"
            missing = [arn for arn in group.target_group_arns if arn not in member.registered]
            if missing:  # target groups attached since it came in service
                self._register(group, member, missing)
        if state.health_status == "Unhealthy" and not member.replaced:
            member.replaced = True
            self._launch(member.region, group, f"an instance was started to replace {member.instance_id}")
            self._leave(group, member, f"an instance was taken out of service in response to {why}")

    def _target_states(self, member: Member) -> list[str]:
        """The instance's state in each target group it was registered in (ELB's DescribeTargetHealth)."""
        elb, found = self.core.client("elbv2", member.region), []
        for arn in member.registered:
            try:
                rows = elb.describe_target_health(TargetGroupArn=arn, Targets=[{"Id": member.instance_id}])
            except ClientError:  # the target group is gone
                continue
            found += [r["TargetHealth"]["State"] for r in rows["TargetHealthDescriptions"]]
        return found

    def _elb_unhealthy(self, group, member: Member) -> bool:
        """ELB's verdict, once the grace period has passed since the instance came in service."""
        if member.in_service is None or time.monotonic() - member.in_service < (group.health_check_grace_period or 0):
            return False
        return "unhealthy" in self._target_states(member)

    def _scale_in_order(self, group, states: list) -> list:
        """AWS's default termination policy: the zone with the most instances, the oldest launch template version,
        the oldest instance; instances protected from scale-in are never chosen."""
        chosen, pool = [], [s for s in states if not s.protected_from_scale_in]
        while pool:
            per_zone: dict[str, int] = {}
            for s in pool:
                per_zone[s.availability_zone] = per_zone.get(s.availability_zone, 0) + 1
            zone = max(per_zone, key=lambda z: (per_zone[z], z))
            here = [s for s in pool if s.availability_zone == zone]
            here.sort(key=lambda s: (self.members[s.instance.id].version or 0, self.members[s.instance.id].launched))
            chosen.append(here[0])
            pool.remove(here[0])
        return chosen

    # ------------------------------------------------------------ launching
    def _launch(self, region: str, group, cause: str) -> str | None:
        """One instance for ``group`` in its least used zone; None when no zone could take it (a failed activity,
        and the group's launches wait: 10 s, doubled after each failure in a row, at most 300 s) or when the group
        is still waiting after a failure."""
        key = (region, group.name)
        if time.monotonic() < self._retry_at.get(key, 0.0):
            return None
        try:
            request, template = self._launch_request(region, group)
        except (ClientError, LookupError, ValueError) as err:
            self._record(group.name, "Launching a new EC2 instance.  Status Reason: " + str(err), cause, "Failed")
            self._launch_failed(key)
            return None
        ec2 = self.core.ec2(region)
        subnets = self._subnets(region, group)
        counts = {z: 0 for _, z in subnets}
        for m in self.members.values():
            if m.group == group.name and m.region == region and m.leaving is None and not m.replaced:
                counts[m.zone] = counts.get(m.zone, 0) + 1
        order = sorted(range(len(subnets)), key=lambda i: (counts.get(subnets[i][1], 0), i))
        last = ""
        for index in order:
            subnet, zone = subnets[index]
            try:
                reply = ec2.run_instances(**request, SubnetId=subnet, ClientToken=uuid.uuid4().hex)
            except ClientError as err:
                last = f"{err.response['Error']['Code']}: {err.response['Error']['Message']}"
                if err.response["Error"]["Code"] in CAPACITY_CODES:
                    continue
                break
            iid = reply["Instances"][0]["InstanceId"]
            self._join(region, group, iid, zone, template)
            self._record(group.name, f"Launching a new EC2 instance: {iid}", cause, key=iid)
            return iid
        self._record(group.name, f"Launching a new EC2 instance.  Status Reason: {last}", cause, "Failed")
        self._launch_failed(key)
        return None

    def _launch_failed(self, key: tuple[str, str]) -> None:
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        self._retry_at[key] = time.monotonic() + min(300.0, 10.0 * 2 ** (failures - 1))

    def _join(self, region: str, group, instance_id: str, zone: str, template: dict | None) -> None:
        backend = self.ec2_backend(region)
        backend.create_tags([instance_id], {GROUP_TAG: group.name})  # AWS's own tag: refused to RunInstances
        instance = backend.get_instance(instance_id)
        instance.autoscaling_group = group
        group.instance_states.append(
            member_state(instance, template, lifecycle_state="Pending", autoscaling_group=group)
        )
        version = int(template["Version"]) if template else None
        template_id = template["LaunchTemplateId"] if template else None
        self.members[instance_id] = Member(instance_id, group.name, region, zone, version, template_id)

    def _subnets(self, region: str, group) -> list[tuple[str, str]]:
        ids = [s for s in (group.vpc_zone_identifier or "").split(",") if s]
        ec2 = self.core.ec2(region)
        if ids:
            found = {s["SubnetId"]: s["AvailabilityZone"] for s in ec2.describe_subnets(SubnetIds=ids)["Subnets"]}
            return [(s, found[s]) for s in ids if s in found]
        defaults = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
        by_zone = {s["AvailabilityZone"]: s["SubnetId"] for s in defaults}
        return [(by_zone[z], z) for z in group.availability_zones if z in by_zone]

    def resolve(self, region: str, spec: dict) -> dict:
        """A launch template specification (ID or name, a version or $Latest/$Default) as one exact version:
        ``LaunchTemplateId``, ``LaunchTemplateName``, ``Version`` (a number, as a string) and ``data``."""
        ref = (
            {"LaunchTemplateId": spec["LaunchTemplateId"]}
            if spec.get("LaunchTemplateId")
            else {"LaunchTemplateName": spec["LaunchTemplateName"]}
        )
        wanted = str(spec.get("Version") or "$Default")
        found = self.core.ec2(region).describe_launch_template_versions(**ref, Versions=[wanted])
        if not found["LaunchTemplateVersions"]:
            raise LookupError(f"launch template version {wanted} not found")
        row = found["LaunchTemplateVersions"][0]
        return {
            "LaunchTemplateId": row["LaunchTemplateId"],
            "LaunchTemplateName": row["LaunchTemplateName"],
            "Version": str(row["VersionNumber"]),
            "data": row["LaunchTemplateData"],
        }

    def _launch_request(self, region: str, group) -> tuple[dict, dict | None]:
        """RunInstances' parameters from the group's launch template version (an instance refresh's while one
        runs) or launch configuration, and the exact launch template version."""
        tags = {t["Key"]: t["Value"] for t in group.tags if str(t.get("PropagateAtLaunch")).lower() == "true"}
        volume_tags: list[dict] = []
        refresh = self.refresh_of(region, group.name)
        if refresh is not None or group.ec2_launch_template is not None:
            exact = self.resolve(region, refresh.target() if refresh else group.launch_template)
            data = exact.pop("data")
            template = exact
            keys = ("ImageId", "InstanceType", "KeyName", "EbsOptimized", "BlockDeviceMappings", "MetadataOptions")
            request = {k: data[k] for k in keys if k in data}
            if data.get("UserData"):  # base64 in the template; boto3 encodes what it is given
                request["UserData"] = base64.b64decode(data["UserData"]).decode()
            groups = data.get("SecurityGroupIds") or [
                g for ni in data.get("NetworkInterfaces", []) for g in ni.get("Groups", [])
            ]
            if groups:
                request["SecurityGroupIds"] = groups
            profile = data.get("IamInstanceProfile")
            if profile:
                request["IamInstanceProfile"] = profile
            for spec_tags in data.get("TagSpecifications", []):
                if spec_tags.get("ResourceType") == "instance":
                    tags = {**{t["Key"]: t["Value"] for t in spec_tags.get("Tags", [])}, **tags}
                elif spec_tags.get("ResourceType") == "volume":
                    volume_tags = spec_tags.get("Tags", [])
        elif group.launch_config is not None:
            lc = group.launch_config
            request = {"ImageId": lc.image_id, "InstanceType": lc.instance_type}
            if lc.key_name:
                request["KeyName"] = lc.key_name
            if lc.security_groups:
                request["SecurityGroupIds"] = list(lc.security_groups)
            if lc.user_data:
                request["UserData"] = base64.b64decode(lc.user_data).decode()
            if lc.iam_instance_profile:
                request["IamInstanceProfile"] = (
                    {"Arn": lc.iam_instance_profile}
                    if lc.iam_instance_profile.startswith("arn:")
                    else {"Name": lc.iam_instance_profile}
                )
            if lc.metadata_options:
                request["MetadataOptions"] = lc.metadata_options
            template = None
        else:
            raise ValueError("the group has neither a launch template nor a launch configuration")
        request.update(MinCount=1, MaxCount=1)
        instance_tags = [{"Key": k, "Value": v} for k, v in tags.items()]
        specs = [{"ResourceType": "instance", "Tags": instance_tags}] if tags else []
        if volume_tags:  # the template's own, as EC2 tags the volumes it makes at launch
            specs.append({"ResourceType": "volume", "Tags": volume_tags})
        if specs:
            request["TagSpecifications"] = specs
        return request, template

    # ------------------------------------------------------------ target groups
    def _register(self, group, member: Member, arns: list[str] | None = None) -> None:
        elb = self.core.client("elbv2", member.region)
        for arn in group.target_group_arns if arns is None else arns:
            try:
                elb.register_targets(TargetGroupArn=arn, Targets=[{"Id": member.instance_id}])
            except ClientError as err:
                log.warning("auto scaling: %s not registered in %s: %s", member.instance_id, arn, err)
                continue
            member.registered.append(arn)

    def _leave(self, group, member: Member, cause: str) -> None:
        """Deregister ``member`` from its target groups; the loop terminates it once they have drained it."""
        states = {s.instance.id: s for s in group.instance_states}
        if member.instance_id in states:
            states[member.instance_id].lifecycle_state = "Terminating"
        elb = self.core.client("elbv2", member.region)
        for arn in member.registered:
            try:
                elb.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": member.instance_id}])
            except ClientError as err:
                log.warning("auto scaling: %s not deregistered from %s: %s", member.instance_id, arn, err)
        member.leaving = time.monotonic()
        self._record(group.name, f"Terminating EC2 instance: {member.instance_id}", cause, key=member.instance_id)

    def _drained(self, member: Member) -> bool:
        return "draining" not in self._target_states(member)

    def _terminate(self, member: Member) -> None:
        try:
            self.core.ec2(member.region).terminate_instances(InstanceIds=[member.instance_id])
        except ClientError as err:
            if "NotFound" not in err.response["Error"]["Code"]:
                log.warning("auto scaling: %s not terminated: %s", member.instance_id, err)

    # ------------------------------------------------------------ instance refresh
    def refresh_of(self, region: str, name: str) -> Refresh | None:
        """The group's instance refresh that is not over, if any."""
        return next((r for r in self.refreshes if r.region == region and r.group == name and not r.done()), None)

    def start_refresh(self, region: str, group, params: dict) -> str:
        """StartInstanceRefresh (Strategy Rolling) of ``group``; ``params``: the request's, flattened."""
        if self.refresh_of(region, group.name):
            raise RefreshError(
                "InstanceRefreshInProgress",
                "An Instance Refresh is already in progress and blocks the execution of this Instance Refresh.",
            )
        if params.get("Strategy", "Rolling") != "Rolling":
            raise RefreshError("ValidationError", f"Strategy {params['Strategy']} is not supported (Rolling only)")
        prefix = "DesiredConfiguration.LaunchTemplate."
        spec = {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}
        current = group.launch_template
        if not spec and current is None:
            raise RefreshError("ValidationError", "The group has no launch template to refresh to")
        pref = {k[len("Preferences.") :]: v for k, v in params.items() if k.startswith("Preferences.")}
        min_healthy = int(pref.get("MinHealthyPercentage", 90))
        max_healthy = int(pref.get("MaxHealthyPercentage", 100))
        if not 100 <= max_healthy <= 200 or not 0 <= min_healthy <= 100 or max_healthy - min_healthy > 100:
            raise RefreshError(
                "ValidationError",
                f"MinHealthyPercentage {min_healthy} and MaxHealthyPercentage {max_healthy}: the maximum must be "
                "100 to 200, the minimum 0 to 100, at most 100 apart",
            )
        auto_rollback = pref.get("AutoRollback", "false").lower() == "true"
        wanted = spec or current
        moving = [str((t or {}).get("Version") or "$Default") for t in (wanted, current)]
        if auto_rollback and {"$Latest", "$Default"} & set(moving):
            raise RefreshError(
                "ValidationError",
                "AutoRollback needs exact launch template versions, on the group and in the desired configuration "
                f"(not $Latest or $Default; here {moving[1]} to {moving[0]}): a rollback could not tell them apart",
            )
        try:
            desired = self.resolve(region, wanted)
            previous = self.resolve(region, current) if current else None
        except (ClientError, LookupError) as err:
            raise RefreshError("ValidationError", str(err)) from err
        desired.pop("data")
        if previous:
            previous.pop("data")
        if auto_rollback and previous is None:
            raise RefreshError("ValidationError", "AutoRollback needs a launch template on the group to return to")
        warmup = int(pref.get("InstanceWarmup", group.health_check_grace_period or 0))
        skip = pref.get("SkipMatching", "false").lower() == "true"
        mine = [m for m in self.members.values() if m.region == region and m.group == group.name and m.leaving is None]
        outdated = [m for m in mine if not (skip and _matches(m, desired))]
        refresh = Refresh(
            refresh_id=str(uuid.uuid4()),
            group=group.name,
            region=region,
            desired={k: desired[k] for k in ("LaunchTemplateId", "LaunchTemplateName", "Version")},
            previous=previous,
            min_healthy=min_healthy,
            max_healthy=max_healthy,
            warmup=warmup,
            auto_rollback=auto_rollback,
            skip_matching=skip,
            to_update=len(outdated),
        )
        self.refreshes.append(refresh)
        return refresh.refresh_id

    def cancel_refresh(self, region: str, name: str) -> str:
        refresh = self.refresh_of(region, name)
        if refresh is None:
            raise RefreshError("ActiveInstanceRefreshNotFound", "No in progress or pending Instance Refresh found")
        refresh.status, refresh.end = "Cancelled", now()
        refresh.reason = "The instance refresh was cancelled by a user request."
        return refresh.refresh_id

    def rollback_refresh(self, region: str, name: str) -> str:
        refresh = self.refresh_of(region, name)
        if refresh is None or refresh.rolling_back or refresh.previous is None:
            raise RefreshError("ActiveInstanceRefreshNotFound", "No in progress Instance Refresh that can roll back")
        self._roll_back(refresh, "The rollback was started by a user request.")
        return refresh.refresh_id

    def refreshes_of(self, region: str, name: str, ids: list[str]) -> list[Refresh]:
        with self.lock:
            found = [r for r in self.refreshes if r.region == region and r.group == name]
            return sorted((r for r in found if not ids or r.refresh_id in ids), key=lambda r: r.start, reverse=True)

    def _roll_back(self, refresh: Refresh, reason: str) -> None:
        refresh.rolling_back, refresh.status = True, "RollbackInProgress"
        refresh.rollback_reason, refresh.rollback_start = reason, now()
        refresh.to_update, refresh.left, refresh.launched = len(refresh.launched), 0, []

    def _ready(self, group, member: Member, warmup: int) -> bool:
        """In service, healthy (in every target group when the group checks ELB health) and warmed up."""
        state = next((s for s in group.instance_states if s.instance.id == member.instance_id), None)
        if state is None or state.lifecycle_state != "InService" or state.health_status != "Healthy":
            return False
        if member.in_service is None or time.monotonic() - member.in_service < warmup:
            return False
        return group.health_check_type != "ELB" or all(s == "healthy" for s in self._target_states(member))

    def _refresh_round(self, group, refresh: Refresh, staying: list) -> None:
        """One round of a rolling replacement within the refresh's healthy percentages."""
        if refresh.status == "Pending":
            refresh.status = "InProgress"
        target = refresh.target()
        desired = group.desired_capacity or 0
        mine = [self.members[s.instance.id] for s in staying]
        fresh = [m for m in mine if _matches(m, target)]
        outdated = [m for m in mine if not _matches(m, target)]
        # a replacement that failed: unhealthy, or not healthy in time
        for iid in refresh.launched:
            member = self.members.get(iid)
            late = (
                member is not None
                and member.leaving is None
                and time.monotonic() - member.launched > refresh.warmup + REFRESH_HEALTH_TIMEOUT
                and not self._ready(group, member, 0)
            )
            if member is None or member.replaced or late:
                why = (
                    f"replacement instance {iid} failed its health checks"
                    if member is None or member.replaced
                    else f"replacement instance {iid} was not healthy within {refresh.warmup} s of warm-up and "
                    f"{REFRESH_HEALTH_TIMEOUT:.0f} s more"
                )
                if refresh.auto_rollback and not refresh.rolling_back:
                    self._roll_back(refresh, f"Instance refresh failed: {why}.")
                    refresh.reason = f"Instance refresh failed: {why}."
                else:
                    refresh.status = "RollbackFailed" if refresh.rolling_back else "Failed"
                    refresh.reason, refresh.end = f"Instance refresh failed: {why}.", now()
                return
        ready = [m for m in fresh if self._ready(group, m, refresh.warmup)]
        if not outdated and len(ready) >= desired:
            refresh.end = now()
            if refresh.rolling_back:
                refresh.status = "RollbackSuccessful"
                refresh.reason = refresh.reason or refresh.rollback_reason
            else:
                refresh.status, refresh.reason = "Successful", ""
                group._set_launch_configuration(
                    None, {"LaunchTemplateId": target["LaunchTemplateId"], "Version": target["Version"]}, None
                )
            return
        healthy = len(ready) + sum(1 for m in outdated if self._ready(group, m, 0))
        cap = max(math.ceil(desired * refresh.max_healthy / 100), desired + (1 if refresh.max_healthy > 100 else 0))
        floor = math.floor(desired * refresh.min_healthy / 100)
        if floor >= desired and cap <= desired:
            floor = desired - 1  # at least one at a time
        total = len(mine)
        outdated_states = [s for s in staying if not _matches(self.members[s.instance.id], target)]
        for state in self._scale_in_order(group, outdated_states):
            member = self.members[state.instance.id]
            serving = self._ready(group, member, 0)  # one that serves nothing can always go
            if serving and healthy - 1 < floor:
                break
            cause = f"an instance was taken out of service in response to instance refresh {refresh.refresh_id}"
            self._leave(group, member, cause)
            refresh.left += 1
            total -= 1
            healthy -= 1 if serving else 0
        while total < cap and len(fresh) < desired:
            iid = self._launch(refresh.region, group, f"an instance was started in response to instance refresh "
                               f"{refresh.refresh_id}")  # fmt: skip
            if iid is None:
                break
            refresh.launched.append(iid)
            fresh.append(self.members[iid])
            total += 1

    # ------------------------------------------------------------ the API's side
    def group(self, region: str, name: str):
        """moto's group of that name, or None."""
        backend = dict(self.backends()).get(region)
        return None if backend is None else backend.autoscaling_groups.get(name)

    def instances_of(self, region: str, name: str) -> list[str]:
        with self.lock:
            return [m.instance_id for m in self.members.values() if m.region == region and m.group == name]

    def force_delete(self, region: str, name: str) -> None:
        """ForceDelete: the group's instances are deregistered and terminated now, without waiting for draining."""
        with self.lock:
            for member in [m for m in self.members.values() if m.region == region and m.group == name]:
                elb = self.core.client("elbv2", region)
                for arn in member.registered:
                    with contextlib.suppress(ClientError):
                        elb.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": member.instance_id}])
                self._terminate(member)
                self._record(
                    name,
                    f"Terminating EC2 instance: {member.instance_id}",
                    "the Auto Scaling group was deleted with ForceDelete",
                    "Successful",
                )
                self.members.pop(member.instance_id, None)

    def activities_of(self, name: str | None) -> list[Activity]:
        with self.lock:
            return sorted((a for a in self.activities if name in (None, a.group)), key=lambda a: a.start, reverse=True)

    # ------------------------------------------------------------ activities
    def _record(
        self, group: str, description: str, cause: str, status: str = "InProgress", key: str | None = None
    ) -> None:
        stamp = now()
        activity = Activity(str(uuid.uuid4()), group, description, f"At {stamp:%Y-%m-%dT%H:%M:%SZ} {cause}.", stamp)
        if status != "InProgress":
            activity.status, activity.end = status, stamp
        activity.instance_id = key or ""
        self.activities.append(activity)

    def _end(self, instance_id: str, status: str) -> None:
        for activity in reversed(self.activities):
            if activity.instance_id == instance_id and activity.status == "InProgress":
                activity.status, activity.end = status, now()
                return


@functools.cache
def _member_state_class():
    from moto.autoscaling.models import InstanceState

    class MemberState(InstanceState):
        """moto's InstanceState, naming the launch template version the instance was launched from."""

        def __init__(self, instance, template, **kw):
            super().__init__(instance, **kw)
            self._template = template

        @property
        def launch_template(self):
            return self._template

    return MemberState


def member_state(instance, template, **kw):
    """What moto lists of a group's instance (made on first use: moto is imported late)."""
    return _member_state_class()(instance, template, **kw)
