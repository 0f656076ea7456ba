#!/usr/bin/python
# Copyright: (c) 2026, bakery.ec2 contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: asg_refresh
short_description: Move an Auto Scaling group onto a launch template version with an instance refresh that rolls back
version_added: 0.3.0
description:
  - Replaces the instances of an Auto Scaling group that are not of a launch template version with an instance
    refresh (C(StartInstanceRefresh), strategy C(Rolling)), waits for it, and fails in one line naming the reason
    AWS gives when it ends C(RollbackSuccessful), C(Failed), C(RollbackFailed) or C(Cancelled).
  - The refresh names the B(exact) version, a number. C($Latest) and C($Default) in O(launch_template.version) are
    read first and passed as the number they stand for, because AWS refuses automatic rollback (O(auto_rollback))
    with either, and a rollback could not tell the versions apart.
  - By default it launches before it terminates (O(min_healthy_percentage=100), O(max_healthy_percentage=110)), so the
    group never has fewer healthy instances than its desired capacity, at the cost of one extra instance during the
    refresh.
  - Idempotent. A group whose launch template is already that version and whose every instance was launched from it
    is left alone (no refresh). A refresh of the group that is already running toward the same version (a rerun
    after the controller died) is waited for instead of starting another; one toward another version is refused.
  - Why a module of this collection. M(amazon.aws.autoscaling_instance_refresh) starts a refresh of the group's own
    configuration only (no C(DesiredConfiguration)), without C(AutoRollback), and does not wait for the refresh to
    end or report why it failed; M(amazon.aws.autoscaling_group) replaces instances itself, from the controller.
author:
  - bakery.ec2 maintainers (@bakery-ec2)
options:
  name:
    description:
      - Name of the Auto Scaling group.
    type: str
    required: true
  launch_template:
    description:
      - The launch template version to move the group onto. By default the group's own launch template and version.
    type: dict
    suboptions:
      id:
        description:
          - ID of the launch template (C(lt-...)). Give O(launch_template.id) or O(launch_template.name).
        type: str
      name:
        description:
          - Name of the launch template.
        type: str
      version:
        description:
          - A version number, or V($Latest) or V($Default) (read when the module runs).
        type: str
        default: $Default
  min_healthy_percentage:
    description:
      - How much of the desired capacity must stay in service and healthy during the refresh (C(0) to C(100)).
    type: int
    default: 100
  max_healthy_percentage:
    description:
      - How much of the desired capacity may be in service or pending during the refresh (C(100) to C(200), at most
        100 above O(min_healthy_percentage)). Above 100, new instances are launched before old ones are terminated.
    type: int
    default: 110
  instance_warmup:
    description:
      - Seconds a new instance is given, once in service, before it counts as healthy capacity. By default the
        group's health check grace period.
    type: int
  skip_matching:
    description:
      - Leave instances that already run the version alone (only the others are replaced).
    type: bool
    default: true
  auto_rollback:
    description:
      - When the refresh fails (replacements fail their health checks), AWS moves the group back onto its previous
        launch template version, and the module fails naming why.
    type: bool
    default: true
  wait:
    description:
      - Wait until the refresh ends. Without it the module returns once the refresh has started.
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait for the refresh to end. When they pass, the module fails in one line with the refresh's ID,
        status and percentage; the refresh goes on (C(CancelInstanceRefresh) stops it).
    type: int
    default: 1800
extends_documentation_fragment:
  - bakery.ec2.connection
attributes:
  check_mode:
    support: full
    description: Reads the group, the launch template and the refreshes; reports in RV(actions) what would start.
  diff_mode:
    support: none
    description: No diff; RV(actions) says what would start, RV(instances) and RV(launch_template) what the group runs.
notes:
  - Needs C(autoscaling:DescribeAutoScalingGroups), C(autoscaling:DescribeInstanceRefreshes),
    C(autoscaling:StartInstanceRefresh) and C(ec2:DescribeLaunchTemplateVersions). Starting a refresh whose launch
    template names an instance profile also needs C(iam:PassRole) on the profile's role, as updating the group does.
  - The refresh's new instances are launched by Auto Scaling with its service-linked role, not by the caller.
seealso:
  - module: amazon.aws.autoscaling_group
  - module: amazon.aws.autoscaling_instance_refresh
  - name: Use an instance refresh to update instances in an Auto Scaling group
    description: What a refresh does, its preferences, and how it fails.
    link: https://docs.aws.amazon.com/autoscaling/ec2/userguide/asg-instance-refresh.html
  - name: Undo changes with a rollback
    description: Automatic rollback, and why it needs an exact launch template version.
    link: https://docs.aws.amazon.com/autoscaling/ec2/userguide/instance-refresh-rollback.html
"""

EXAMPLES = r"""
- name: A new launch template version for the new image
  amazon.aws.ec2_launch_template:
    name: web
    image_id: "{{ baked.image_id }}"
    default_version: latest
  register: template

- name: Move the group onto it, launch before terminate, rolled back by AWS if the new instances fail
  bakery.ec2.asg_refresh:
    name: web
    launch_template:
      id: "{{ template.template.launch_template_id }}"
      version: "{{ template.latest_version | string }}"
    instance_warmup: 60

- name: Start the refresh and return at once
  bakery.ec2.asg_refresh:
    name: web
    launch_template:
      name: web
      version: $Latest
    wait: false
  register: refresh
"""

RETURN = r"""
refresh:
  description:
    - The instance refresh as C(DescribeInstanceRefreshes) last described it, keys in snake_case; empty when nothing
      was started (the group is already on the version, or check mode).
  returned: always
  type: dict
  sample: {"instance_refresh_id": "0e2c...", "status": "Successful", "percentage_complete": 100,
           "instances_to_update": 0, "status_reason": ""}
launch_template:
  description: The exact launch template version the group was moved onto.
  returned: always
  type: dict
  sample: {"launch_template_id": "lt-0123456789abcdef0", "launch_template_name": "web", "version": "3"}
instances:
  description: The group's instances after the run (ID, zone, lifecycle state, health, launch template version).
  returned: always
  type: list
  elements: dict
actions:
  description: What the run started, or in check mode would start; empty when nothing changed.
  returned: always
  type: list
  elements: str
  sample: ["start instance refresh of web to launch template lt-0123456789abcdef0 version 3 (2 instances)"]
"""

from typing import Any

from ansible_collections.bakery.ec2.plugins.module_utils._changes import Changes, wait_until
from ansible_collections.bakery.ec2.plugins.module_utils._client import AwsClient
from ansible_collections.bakery.ec2.plugins.module_utils._errors import AwsError, TaskError, WaitTimeout
from ansible_collections.bakery.ec2.plugins.module_utils._module import AwsModule
from ansible_collections.bakery.ec2.plugins.module_utils._shapes import to_snake

RUNNING = ("Pending", "InProgress", "Cancelling", "RollbackInProgress", "Baking")
FAILED = ("Failed", "Cancelled", "RollbackSuccessful", "RollbackFailed")


def validate(params: dict[str, Any]) -> str | None:
    """The first bad option value as one line, or None."""
    template = params["launch_template"] or {}
    if template and bool(template.get("id")) == bool(template.get("name")):
        return "launch_template: give its id or its name (one of them)"
    version = str(template.get("version") or "$Default")
    if template and version not in ("$Latest", "$Default") and not version.isdigit():
        return f"launch_template.version: {version!r} is not a version number, $Latest or $Default"
    low, high = params["min_healthy_percentage"], params["max_healthy_percentage"]
    if not 0 <= low <= 100:
        return f"min_healthy_percentage: {low} is not a percentage from 0 to 100"
    if not 100 <= high <= 200 or high - low > 100:
        return f"max_healthy_percentage: {high} is not from 100 to 200 and at most 100 above min_healthy_percentage"
    if params["instance_warmup"] is not None and params["instance_warmup"] < 0:
        return f"instance_warmup: {params['instance_warmup']} is not a number of seconds of at least 0"
    if params["wait_timeout"] < 1:
        return f"wait_timeout: {params['wait_timeout']} is not a number of seconds of at least 1"
    return None


def exact_version(ec2: AwsClient, spec: dict[str, Any]) -> dict[str, str]:
    """``spec`` (LaunchTemplateId or LaunchTemplateName, Version: a number, $Latest or $Default) as the version
    number it stands for now."""
    ref = (
        {"LaunchTemplateId": spec["LaunchTemplateId"]}
        if spec.get("LaunchTemplateId")
        else {"LaunchTemplateName": spec["LaunchTemplateName"]}
    )
    wanted = str(spec.get("Version") or "$Default")
    try:
        found = ec2.call("describe_launch_template_versions", **ref, Versions=[wanted])["LaunchTemplateVersions"]
    except AwsError as err:
        if err.code.startswith("InvalidLaunchTemplate"):
            raise TaskError(f"launch_template: {next(iter(ref.values()))} version {wanted}: {err.message}") from None
        raise
    if not found:
        raise TaskError(f"launch_template: {next(iter(ref.values()))} has no version {wanted}")
    row = found[0]
    return {
        "LaunchTemplateId": row["LaunchTemplateId"],
        "LaunchTemplateName": row["LaunchTemplateName"],
        "Version": str(row["VersionNumber"]),
    }


def describe_group(asg: AwsClient, name: str) -> dict[str, Any]:
    groups = asg.call("describe_auto_scaling_groups", AutoScalingGroupNames=[name])["AutoScalingGroups"]
    if not groups:
        raise TaskError(f"name: no Auto Scaling group {name} in this region")
    return groups[0]


def version_key(template: dict[str, Any] | None) -> tuple[str | None, str]:
    """(launch template ID, version) of a launch template specification: a group's, an instance's, a refresh's."""
    template = template or {}
    return template.get("LaunchTemplateId"), str(template.get("Version"))


def on_version(group: dict[str, Any], target: dict[str, str]) -> bool:
    """The group names ``target`` exactly and every instance of it was launched from ``target``."""
    wanted = version_key(target)
    return version_key(group.get("LaunchTemplate")) == wanted and all(
        version_key(i.get("LaunchTemplate")) == wanted for i in group.get("Instances", [])
    )


def refreshes(asg: AwsClient, name: str, ids: list[str] | None = None) -> list[dict[str, Any]]:
    kw = {"InstanceRefreshIds": ids} if ids else {}
    return asg.call("describe_instance_refreshes", AutoScalingGroupName=name, **kw)["InstanceRefreshes"]


def refresh_target(refresh: dict[str, Any]) -> tuple[str | None, str]:
    return version_key((refresh.get("DesiredConfiguration") or {}).get("LaunchTemplate"))


def shown_instances(group: dict[str, Any]) -> list[dict[str, Any]]:
    keys = ("InstanceId", "AvailabilityZone", "LifecycleState", "HealthStatus", "LaunchTemplate")
    return [to_snake({k: i[k] for k in keys if k in i}) for i in group.get("Instances", [])]


def main() -> None:
    module = AwsModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "launch_template": {
                "type": "dict",
                "options": {
                    "id": {"type": "str"},
                    "name": {"type": "str"},
                    "version": {"type": "str", "default": "$Default"},
                },
            },
            "min_healthy_percentage": {"type": "int", "default": 100},
            "max_healthy_percentage": {"type": "int", "default": 110},
            "instance_warmup": {"type": "int"},
            "skip_matching": {"type": "bool", "default": True},
            "auto_rollback": {"type": "bool", "default": True},
            "wait": {"type": "bool", "default": True},
            "wait_timeout": {"type": "int", "default": 1800},
        },
        supports_check_mode=True,
    )
    module.run(run, validate)


def run(module: AwsModule) -> None:
    try:
        move_group(module)
    except TaskError as err:
        module.fail(str(err))


def move_group(module: AwsModule) -> None:
    """Leave the group alone, wait for its running refresh, or start one; then report (see DOCUMENTATION)."""
    params = module.params
    name = params["name"]
    asg, ec2 = module.client(service="autoscaling"), module.client()
    changes = Changes(module.check_mode, asg)
    group = describe_group(asg, name)
    given = params["launch_template"]
    if given:
        spec = {"LaunchTemplateId": given["id"], "LaunchTemplateName": given["name"], "Version": given["version"]}
    elif group.get("LaunchTemplate"):
        spec = group["LaunchTemplate"]
    else:
        raise TaskError(f"launch_template: the group {name} has no launch template; name the one to move it onto")
    target = exact_version(ec2, spec)
    result: dict[str, Any] = {"launch_template": to_snake(target), "refresh": {}}
    running = next((r for r in refreshes(asg, name) if r["Status"] in RUNNING), None)
    if running is not None and refresh_target(running) != version_key(target):
        raise TaskError(
            f"the group {name} has instance refresh {running['InstanceRefreshId']} {running['Status']} toward "
            f"another configuration ({'/'.join(str(v) for v in refresh_target(running))}); wait for it or cancel it"
        )
    if running is None and on_version(group, target):
        module.exit(changed=False, instances=shown_instances(group), actions=changes.actions, **result)
    if running is None:
        refresh_id = start(module, changes, group, target)
        if refresh_id is None:  # check mode
            module.exit(changed=True, instances=shown_instances(group), actions=changes.actions, **result)
    else:
        refresh_id = running["InstanceRefreshId"]
    refresh = refreshes(asg, name, [refresh_id])[0]
    if params["wait"]:
        try:
            refresh = wait_until(
                lambda: refreshes(asg, name, [refresh_id])[0],
                lambda r: r["Status"] not in RUNNING,
                params["wait_timeout"],
                f"instance refresh {refresh_id} of {name}",
                describe=lambda r: f"{r['Status']}, {r.get('PercentageComplete', 0)} % complete",
                max_delay=10.0,
            )
        except WaitTimeout as err:
            module.fail(
                f"instance refresh {refresh_id} of {name} did not end within {params['wait_timeout']} s ({err.last}); "
                "it goes on (CancelInstanceRefresh stops it)",
                changed=True,
                actions=changes.actions,
                refresh=to_snake(refreshes(asg, name, [refresh_id])[0]),
                launch_template=result["launch_template"],
                instances=shown_instances(describe_group(asg, name)),
            )
    result["refresh"] = to_snake(refresh)
    instances = shown_instances(describe_group(asg, name))
    if refresh["Status"] in FAILED:
        reason = refresh.get("StatusReason") or (refresh.get("RollbackDetails") or {}).get("RollbackReason") or ""
        module.fail(
            f"instance refresh {refresh_id} of {name} to {target['LaunchTemplateId']} version {target['Version']} "
            f"ended {refresh['Status']}: {reason or 'AWS gave no reason'}",
            changed=True,
            actions=changes.actions,
            instances=instances,
            **result,
        )
    module.exit(changed=True, instances=instances, actions=changes.actions, **result)


def start(module: AwsModule, changes: Changes, group: dict[str, Any], target: dict[str, str]) -> str | None:
    params = module.params
    preferences: dict[str, Any] = {
        "MinHealthyPercentage": params["min_healthy_percentage"],
        "MaxHealthyPercentage": params["max_healthy_percentage"],
        "SkipMatching": params["skip_matching"],
        "AutoRollback": params["auto_rollback"],
    }
    if params["instance_warmup"] is not None:
        preferences["InstanceWarmup"] = params["instance_warmup"]
    count = sum(
        1
        for i in group.get("Instances", [])
        if not params["skip_matching"] or version_key(i.get("LaunchTemplate")) != version_key(target)
    )
    started = changes.act(
        f"start instance refresh of {group['AutoScalingGroupName']} to launch template {target['LaunchTemplateId']} "
        f"version {target['Version']} ({count} instance(s))",
        "start_instance_refresh",
        AutoScalingGroupName=group["AutoScalingGroupName"],
        Strategy="Rolling",
        DesiredConfiguration={
            "LaunchTemplate": {"LaunchTemplateId": target["LaunchTemplateId"], "Version": target["Version"]}
        },
        Preferences=preferences,
    )
    return None if started is None else started["InstanceRefreshId"]


if __name__ == "__main__":
    main()
