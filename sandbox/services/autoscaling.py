"""Auto Scaling: moto's model of groups, made real by the engine of sandbox/autoscaling.py (hosts, target groups,
health, replacement), and a launch configuration must name an image the region has (sandbox/image_lifecycle.py)."""

from __future__ import annotations

from xml.sax.saxutils import escape

from botocore.exceptions import ClientError

from .. import config
from ..autoscaling import IN_USE_MESSAGE, Refresh, RefreshError
from ..errors import query_error
from .base import Answer, Request, Service, answer_of, region_of

XMLNS = "https://autoscaling.amazonaws.com/doc/2011-01-01/"
# Calls after which the engine has something to do: a group to fill, resize, attach or look after.
WAKES = (
    "CreateAutoScalingGroup",
    "UpdateAutoScalingGroup",
    "SetDesiredCapacity",
    "AttachLoadBalancerTargetGroups",
    "SetInstanceHealth",
    "DetachInstances",
)


# Instance refreshes: moto has none; the engine runs them (sandbox/autoscaling.py).
REFRESH_ACTIONS = (
    "StartInstanceRefresh",
    "DescribeInstanceRefreshes",
    "CancelInstanceRefresh",
    "RollbackInstanceRefresh",
)


# The group's service-linked role: CreateAutoScalingGroup creates it on first use, and the caller needs
# iam:CreateServiceLinkedRole for that ("Amazon EC2 Auto Scaling API permissions", required permissions from other
# APIs). It stays once made, as on AWS.
SERVICE = "autoscaling.amazonaws.com"
LINKED_ROLE = "AWSServiceRoleForAutoScaling"
# Calls that give a group a launch template: the caller must be allowed to launch from it (ec2:RunInstances), to tag
# what it tags (ec2:CreateTags) and to pass its instance profile's role to EC2 (iam:PassRole), whoever launches later.
# An instance refresh's desired configuration is checked as an update of the group is.
TEMPLATE_CALLS = {
    "CreateAutoScalingGroup": ("LaunchTemplate.", "MixedInstancesPolicy.LaunchTemplate.LaunchTemplateSpecification."),
    "UpdateAutoScalingGroup": ("LaunchTemplate.", "MixedInstancesPolicy.LaunchTemplate.LaunchTemplateSpecification."),
    "StartInstanceRefresh": (
        "DesiredConfiguration.LaunchTemplate.",
        "DesiredConfiguration.MixedInstancesPolicy.LaunchTemplate.LaunchTemplateSpecification.",
    ),
}


def linked_role_arn() -> str:
    return f"arn:aws:iam::{config.ACCOUNT_ID}:role/aws-service-role/{SERVICE}/{LINKED_ROLE}"


class AutoScaling(Service):
    name = "autoscaling"
    audited = True

    # ------------------------------------------------------------ IAM
    def requested(self, req: Request) -> list[tuple[str, str]]:
        wanted = [(f"autoscaling:{req.action}", "*")]
        if req.action == "CreateAutoScalingGroup" and not self._linked_role_exists():
            wanted.append(("iam:CreateServiceLinkedRole", linked_role_arn()))
        for prefix in TEMPLATE_CALLS.get(req.action, ()):
            spec = {k[len(prefix) :]: v for k, v in req.params.items() if k.startswith(prefix)}
            if not (spec.get("LaunchTemplateId") or spec.get("LaunchTemplateName")):
                continue
            try:
                data = self.core.autoscaling.resolve(region_of(req), spec)["data"]
            except (LookupError, ClientError):  # moto answers the unknown template itself
                continue
            wanted.append(("ec2:RunInstances", "*"))
            if data.get("TagSpecifications"):
                wanted.append(("ec2:CreateTags", "*"))
            profile = data.get("IamInstanceProfile") or {}
            ref = profile.get("Arn") or profile.get("Name")
            if ref:
                wanted += [("iam:PassRole", role) for role in self.core.profile_roles(ref) or []]
        return wanted

    def _linked_role_exists(self) -> bool:
        try:
            self.core.client("iam").get_role(RoleName=LINKED_ROLE)
        except ClientError:
            return False
        return True

    def _make_linked_role(self) -> None:
        if not self._linked_role_exists():
            self.core.client("iam").create_service_linked_role(AWSServiceName=SERVICE)

    # ------------------------------------------------------------ the answer
    def answer(self, req: Request) -> Answer:
        region, engine = region_of(req), self.core.autoscaling
        if req.action == "CreateLaunchConfiguration":
            message = self.core.lifecycle.launch_configuration_refusal(req.params, region)
            if message:
                return self.error("ValidationError", message)
        if req.action == "DescribeScalingActivities":
            return self._activities(req)
        if req.action in REFRESH_ACTIONS:
            return self._refresh(req)
        if req.action == "DisableMetricsCollection":
            return self._disable_metrics(req)
        if req.action == "DeleteAutoScalingGroup":
            name = req.params.get("AutoScalingGroupName", "")
            if engine.instances_of(region, name):
                if req.params.get("ForceDelete", "false").lower() != "true":
                    return self.error("ResourceInUse", f"{IN_USE_MESSAGE} still in the group.")
                engine.force_delete(region, name)
        answer = self.moto(req.environ, req.raw)
        if not answer[0].startswith("2"):
            return answer
        if req.action == "CreateAutoScalingGroup":
            self._make_linked_role()
        if req.action == "CreateAutoScalingGroup" and "HealthCheckGracePeriod" not in req.params:
            group = engine.group(region, req.params.get("AutoScalingGroupName", ""))
            if group is not None:  # the API's default is 0 (moto's 300 is the console's)
                group.health_check_grace_period = 0
        if req.action in WAKES:
            engine.wake()
        if req.action == "TerminateInstanceInAutoScalingGroup":  # moto terminated it in its model only
            self.core.terminate_hosts([req.params.get("InstanceId", "")])
        return answer

    def _refresh(self, req: Request) -> Answer:
        engine, region, action = self.core.autoscaling, region_of(req), req.action
        name = req.params.get("AutoScalingGroupName", "")
        group = engine.group(region, name)
        if group is None:
            return self.error("ValidationError", f"AutoScalingGroup name not found - AutoScalingGroup {name} not found")
        if action == "DescribeInstanceRefreshes":
            ids = [v for k, v in sorted(req.params.items()) if k.startswith("InstanceRefreshIds.member.")]
            rows = "".join(_refresh_xml(r) for r in engine.refreshes_of(region, name, ids))
            return _result(action, f"<InstanceRefreshes>{rows}</InstanceRefreshes>")
        try:
            with engine.lock:
                if action == "StartInstanceRefresh":
                    refresh_id = engine.start_refresh(region, group, req.params)
                    engine.wake()
                elif action == "CancelInstanceRefresh":
                    refresh_id = engine.cancel_refresh(region, name)
                else:
                    refresh_id = engine.rollback_refresh(region, name)
        except RefreshError as err:
            return self.error(err.code, str(err))
        return _result(action, f"<InstanceRefreshId>{refresh_id}</InstanceRefreshId>")

    def _disable_metrics(self, req: Request) -> Answer:
        """DisableMetricsCollection (moto has only its Enable): the metrics named, or all of them, stop being
        collected (API reference, DisableMetricsCollection)."""
        name = req.params.get("AutoScalingGroupName", "")
        group = self.core.autoscaling.group(region_of(req), name)
        if group is None:
            return self.error("ValidationError", f"AutoScalingGroup name not found - AutoScalingGroup {name} not found")
        named = [v for k, v in req.params.items() if k.startswith("Metrics.member.")]
        group.metrics = [m for m in group.metrics if named and m not in named]
        return _result(req.action, "")

    def _activities(self, req: Request) -> Answer:
        name = req.params.get("AutoScalingGroupName")
        rows = []
        for a in self.core.autoscaling.activities_of(name)[: int(req.params.get("MaxRecords", "100"))]:
            end = f"<EndTime>{a.end:%Y-%m-%dT%H:%M:%S.000Z}</EndTime>" if a.end else ""
            rows.append(
                f"<member><ActivityId>{a.activity_id}</ActivityId>"
                f"<AutoScalingGroupName>{escape(a.group)}</AutoScalingGroupName>"
                f"<Description>{escape(a.description)}</Description><Cause>{escape(a.cause)}</Cause>"
                f"<StartTime>{a.start:%Y-%m-%dT%H:%M:%S.000Z}</StartTime>{end}"
                f"<StatusCode>{a.status}</StatusCode><Progress>{100 if a.end else 50}</Progress>"
                "<Details>{}</Details></member>"
            )
        body = (
            f'<DescribeScalingActivitiesResponse xmlns="{XMLNS}"><DescribeScalingActivitiesResult>'
            f"<Activities>{''.join(rows)}</Activities></DescribeScalingActivitiesResult>"
            "<ResponseMetadata><RequestId>0</RequestId></ResponseMetadata></DescribeScalingActivitiesResponse>"
        )
        return answer_of(200, body.encode())

    def error(self, code: str, message: str, status: int = 400, req: Request | None = None) -> Answer:
        return answer_of(*query_error(code, message, status, XMLNS))


def _stamp(value) -> str:
    return f"{value:%Y-%m-%dT%H:%M:%S.000Z}"


def _result(action: str, inner: str) -> Answer:
    body = (
        f'<{action}Response xmlns="{XMLNS}"><{action}Result>{inner}</{action}Result>'
        f"<ResponseMetadata><RequestId>0</RequestId></ResponseMetadata></{action}Response>"
    )
    return answer_of(200, body.encode())


def _refresh_xml(r: Refresh) -> str:
    prefs = "".join(f"<{k}>{str(v).lower() if isinstance(v, bool) else v}</{k}>" for k, v in r.preferences.items())
    template = "".join(
        f"<{k}>{escape(str(r.desired[k]))}</{k}>" for k in ("LaunchTemplateId", "LaunchTemplateName", "Version")
    )
    rollback = ""
    if r.rolling_back:
        rollback = (
            f"<RollbackDetails><RollbackReason>{escape(r.rollback_reason)}</RollbackReason>"
            f"<RollbackStartTime>{_stamp(r.rollback_start)}</RollbackStartTime>"
            f"<PercentageCompleteOnRollback>{r.percentage()}</PercentageCompleteOnRollback>"
            f"<InstancesToUpdateOnRollback>{max(0, r.to_update - r.left)}</InstancesToUpdateOnRollback>"
            "</RollbackDetails>"
        )
    end = f"<EndTime>{_stamp(r.end)}</EndTime>" if r.end else ""
    reason = f"<StatusReason>{escape(r.reason)}</StatusReason>" if r.reason else ""
    return (
        f"<member><InstanceRefreshId>{r.refresh_id}</InstanceRefreshId>"
        f"<AutoScalingGroupName>{escape(r.group)}</AutoScalingGroupName><Status>{r.status}</Status>{reason}"
        f"<StartTime>{_stamp(r.start)}</StartTime>{end}"
        f"<PercentageComplete>{0 if r.rolling_back else r.percentage()}</PercentageComplete>"
        f"<InstancesToUpdate>{0 if r.rolling_back else max(0, r.to_update - r.left)}</InstancesToUpdate>"
        f"<Preferences>{prefs}</Preferences>"
        f"<DesiredConfiguration><LaunchTemplate>{template}</LaunchTemplate></DesiredConfiguration>{rollback}</member>"
    )
