"""asg_refresh: an Auto Scaling group moved onto an exact launch template version by an instance refresh."""

from __future__ import annotations

import datetime

import pytest
from ansible_collections.bakery.ec2.plugins.modules import asg_refresh

LT = "lt-0123456789abcdef0"
T0 = datetime.datetime(2026, 12, 7, 12, 0, tzinfo=datetime.UTC)


@pytest.fixture
def asg(stubbed_clients):
    return stubbed_clients(service="autoscaling")[1]


def stub_version(ec2, version="$Latest", number=3):
    ec2.add_response(
        "describe_launch_template_versions",
        {"LaunchTemplateVersions": [{"LaunchTemplateId": LT, "LaunchTemplateName": "web", "VersionNumber": number}]},
        {"LaunchTemplateId": LT, "Versions": [version]},
    )


def group(own="2", *versions):
    instances = [
        {
            "InstanceId": f"i-0000000{n}",
            "AvailabilityZone": "us-east-1a",
            "LifecycleState": "InService",
            "HealthStatus": "Healthy",
            "ProtectedFromScaleIn": False,
            "LaunchTemplate": {"LaunchTemplateId": LT, "LaunchTemplateName": "web", "Version": v},
        }
        for n, v in enumerate(versions, 1)
    ]
    return {
        "AutoScalingGroups": [
            {
                "AutoScalingGroupName": "web",
                "LaunchTemplate": {"LaunchTemplateId": LT, "LaunchTemplateName": "web", "Version": own},
                "MinSize": 2,
                "MaxSize": 4,
                "DesiredCapacity": 2,
                "DefaultCooldown": 300,
                "AvailabilityZones": ["us-east-1a"],
                "HealthCheckType": "ELB",
                "CreatedTime": T0,
                "Instances": instances,
            }
        ]
    }


def stub_group(asg, *args):
    asg.add_response("describe_auto_scaling_groups", group(*args), {"AutoScalingGroupNames": ["web"]})


def refresh(status, version="3", reason=None, rid="r-1"):
    row = {
        "InstanceRefreshId": rid,
        "AutoScalingGroupName": "web",
        "Status": status,
        "StartTime": T0,
        "PercentageComplete": 100 if status == "Successful" else 50,
        "DesiredConfiguration": {"LaunchTemplate": {"LaunchTemplateId": LT, "Version": version}},
    }
    if reason:
        row["StatusReason"] = reason
    return row


def stub_refreshes(asg, *rows, ids=None):
    expected = {"AutoScalingGroupName": "web", **({"InstanceRefreshIds": ids} if ids else {})}
    asg.add_response("describe_instance_refreshes", {"InstanceRefreshes": list(rows)}, expected)


START = {
    "AutoScalingGroupName": "web",
    "Strategy": "Rolling",
    "DesiredConfiguration": {"LaunchTemplate": {"LaunchTemplateId": LT, "Version": "3"}},
    "Preferences": {"MinHealthyPercentage": 100, "MaxHealthyPercentage": 110, "SkipMatching": True,
                    "AutoRollback": True},
}  # fmt: skip
ARGS = {"name": "web", "launch_template": {"id": LT, "version": "$Latest"}}


def test_latest_is_passed_as_its_number_and_the_refresh_is_waited_for(ec2, asg, run_module):
    stub_group(asg, "2", "2", "2")
    stub_version(ec2)
    stub_refreshes(asg, refresh("Successful", version="2", rid="r-0"))  # an old one, over
    asg.add_response("start_instance_refresh", {"InstanceRefreshId": "r-1"}, START)
    stub_refreshes(asg, refresh("Pending"), ids=["r-1"])
    stub_refreshes(asg, refresh("InProgress"), ids=["r-1"])
    stub_refreshes(asg, refresh("Successful"), ids=["r-1"])
    stub_group(asg, "3", "3", "3")
    res = run_module(asg_refresh, ARGS)
    assert not res.failed, res.result["msg"]
    assert res.result["changed"] is True
    assert res.result["actions"] == [f"start instance refresh of web to launch template {LT} version 3 (2 instance(s))"]
    assert res.result["refresh"]["status"] == "Successful"
    assert res.result["launch_template"] == {"launch_template_id": LT, "launch_template_name": "web", "version": "3"}
    assert {i["launch_template"]["version"] for i in res.result["instances"]} == {"3"}


def test_a_group_already_on_the_version_is_left_alone(ec2, asg, run_module):
    stub_group(asg, "3", "3", "3")
    stub_version(ec2)
    stub_refreshes(asg)
    res = run_module(asg_refresh, ARGS)
    assert not res.failed and res.result["changed"] is False and res.result["actions"] == []


def test_check_mode_reads_and_starts_nothing(ec2, asg, run_module):
    stub_group(asg, "2", "2", "3")
    stub_version(ec2)
    stub_refreshes(asg)
    res = run_module(asg_refresh, ARGS, check_mode=True)
    assert not res.failed and res.result["changed"] is True
    assert res.result["actions"] == [f"start instance refresh of web to launch template {LT} version 3 (1 instance(s))"]


def test_a_rerun_waits_for_the_refresh_already_running_toward_the_version(ec2, asg, run_module):
    stub_group(asg, "2", "2", "3")
    stub_version(ec2)
    stub_refreshes(asg, refresh("InProgress"))
    stub_refreshes(asg, refresh("InProgress"), ids=["r-1"])
    stub_refreshes(asg, refresh("Successful"), ids=["r-1"])
    stub_group(asg, "3", "3", "3")
    res = run_module(asg_refresh, ARGS)
    assert not res.failed, res.result["msg"]
    assert res.result["actions"] == [] and res.result["refresh"]["instance_refresh_id"] == "r-1"


def test_a_refresh_running_toward_another_version_is_refused_in_one_line(ec2, asg, run_module):
    stub_group(asg, "2", "2", "2")
    stub_version(ec2)
    stub_refreshes(asg, refresh("InProgress", version="4", rid="r-9"))
    res = run_module(asg_refresh, ARGS)
    assert res.failed
    assert res.result["msg"] == (
        f"the group web has instance refresh r-9 InProgress toward another configuration ({LT}/4); "
        "wait for it or cancel it"
    )


def test_a_rolled_back_refresh_fails_naming_the_reason_aws_gives(ec2, asg, run_module):
    stub_group(asg, "2", "2", "2")
    stub_version(ec2)
    stub_refreshes(asg)
    asg.add_response("start_instance_refresh", {"InstanceRefreshId": "r-1"}, START)
    stub_refreshes(asg, refresh("InProgress"), ids=["r-1"])
    reason = "Instance refresh failed: replacement instance i-00000009 failed its health checks."
    stub_refreshes(asg, refresh("RollbackSuccessful", reason=reason), ids=["r-1"])
    stub_group(asg, "2", "2", "2")
    res = run_module(asg_refresh, ARGS)
    assert res.failed
    assert res.result["msg"] == f"instance refresh r-1 of web to {LT} version 3 ended RollbackSuccessful: {reason}"
    assert res.result["refresh"]["status"] == "RollbackSuccessful" and res.result["changed"] is True


def test_a_refresh_that_outlasts_the_wait_fails_with_its_id_and_goes_on(ec2, asg, run_module, monkeypatch):
    from ansible_collections.bakery.ec2.plugins.module_utils import _changes

    clock = iter(range(0, 10_000, 40))
    monkeypatch.setattr(_changes.time, "monotonic", lambda: next(clock))
    stub_group(asg, "2", "2", "2")
    stub_version(ec2)
    stub_refreshes(asg)
    asg.add_response("start_instance_refresh", {"InstanceRefreshId": "r-1"}, START)
    for _poll in range(4):
        stub_refreshes(asg, refresh("InProgress"), ids=["r-1"])
    stub_group(asg, "2", "2", "3")
    res = run_module(asg_refresh, dict(ARGS, wait_timeout=60))
    assert res.failed
    assert res.result["msg"] == (
        "instance refresh r-1 of web did not end within 60 s (InProgress, 50 % complete); it goes on "
        "(CancelInstanceRefresh stops it)"
    )


def test_a_missing_group_fails_in_one_line(asg, run_module):
    asg.add_response("describe_auto_scaling_groups", {"AutoScalingGroups": []}, {"AutoScalingGroupNames": ["web"]})
    res = run_module(asg_refresh, ARGS)
    assert res.failed and res.result["msg"] == "name: no Auto Scaling group web in this region"


@pytest.mark.parametrize(
    ("args", "msg"),
    [
        ({"launch_template": {"version": "3"}}, "launch_template: give its id or its name (one of them)"),
        ({"launch_template": {"id": LT, "version": "v3"}},
         "launch_template.version: 'v3' is not a version number, $Latest or $Default"),
        ({"min_healthy_percentage": 101}, "min_healthy_percentage: 101 is not a percentage from 0 to 100"),
        ({"min_healthy_percentage": 0, "max_healthy_percentage": 150},
         "max_healthy_percentage: 150 is not from 100 to 200 and at most 100 above min_healthy_percentage"),
        ({"wait_timeout": 0}, "wait_timeout: 0 is not a number of seconds of at least 1"),
    ],
)  # fmt: skip
def test_bad_input_fails_in_one_line_before_any_call(args, msg, run_module, stubbed_clients):
    res = run_module(asg_refresh, {"name": "web", **args})
    assert res.failed and res.result["msg"] == msg
