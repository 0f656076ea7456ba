"""The Auto Scaling engine's decisions, round by round, on the sandbox's API front in this process (no hosts, no
root): instances of an image without a host read moto's state, so each round's outcome is exact."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from sandbox_helpers import api_front
from test_strict import policy_without

from sandbox.autoscaling import GROUP_TAG, Engine


@pytest.fixture
def front():
    import boto3

    Engine.apply_moto()  # as the sandbox's server does: moto records, the engine launches
    with api_front() as (core, endpoint, _keys):
        core.autoscaling.period = 3600  # the test plays the rounds itself
        access, secret = core.admin_key

        def client(service):
            return boto3.client(service, region_name="us-east-1", endpoint_url=endpoint,
                                aws_access_key_id=access, aws_secret_access_key=secret)  # fmt: skip

        ec2 = client("ec2")
        subnets = sorted(ec2.describe_subnets()["Subnets"], key=lambda s: s["AvailabilityZone"])[:2]
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        template = ec2.create_launch_template(
            LaunchTemplateName="web", LaunchTemplateData={"ImageId": image, "InstanceType": "t3.micro"}
        )["LaunchTemplate"]
        asg = client("autoscaling")
        asg.create_auto_scaling_group(
            AutoScalingGroupName="web",
            LaunchTemplate={"LaunchTemplateId": template["LaunchTemplateId"], "Version": "$Latest"},
            MinSize=0, MaxSize=6, DesiredCapacity=2,
            VPCZoneIdentifier=",".join(s["SubnetId"] for s in subnets),
            Tags=[{"Key": "Fleet", "Value": "web", "PropagateAtLaunch": True},
                  {"Key": "Hidden", "Value": "x", "PropagateAtLaunch": False}],
        )  # fmt: skip
        yield {"core": core, "ec2": ec2, "asg": asg, "zones": [s["AvailabilityZone"] for s in subnets],
               "template": template["LaunchTemplateId"], "image": image}  # fmt: skip
        core.autoscaling.shutdown()


def members(front) -> list[dict]:
    group = front["asg"].describe_auto_scaling_groups(AutoScalingGroupNames=["web"])["AutoScalingGroups"][0]
    return group["Instances"]


def rounds(front, count: int = 1) -> list[dict]:
    for _ in range(count):
        front["core"].autoscaling.tick()
    return members(front)


def new_version(front) -> str:
    made = front["ec2"].create_launch_template_version(
        LaunchTemplateId=front["template"], SourceVersion="1", LaunchTemplateData={"ImageId": front["image"]}
    )
    return str(made["LaunchTemplateVersion"]["VersionNumber"])


def test_moto_launches_nothing_and_the_engine_fills_every_zone_pending_then_in_service(front):
    assert members(front) == []
    group = front["asg"].describe_auto_scaling_groups(AutoScalingGroupNames=["web"])["AutoScalingGroups"][0]
    assert group["HealthCheckGracePeriod"] == 0  # the API's default when none is given
    assert new_version(front) == "2"  # made after the group: $Latest is read when an instance is launched
    first = rounds(front)
    assert sorted(m["AvailabilityZone"] for m in first) == sorted(front["zones"])
    assert {m["LifecycleState"] for m in first} == {"Pending"}
    assert {m["LaunchTemplate"]["Version"] for m in first} == {"2"}  # $Latest, resolved at launch
    assert {m["LifecycleState"] for m in rounds(front)} == {"InService"}
    reservations = front["ec2"].describe_instances(InstanceIds=[m["InstanceId"] for m in first])["Reservations"]
    for inst in (i for r in reservations for i in r["Instances"]):
        tags = {t["Key"]: t["Value"] for t in inst["Tags"]}
        assert tags == {"Fleet": "web", GROUP_TAG: "web"}, tags  # PropagateAtLaunch only
        assert inst["Placement"]["AvailabilityZone"] in front["zones"]


def test_a_terminated_instance_is_replaced_in_its_zone_launch_first(front):
    before = {m["InstanceId"]: m["AvailabilityZone"] for m in rounds(front, 2)}
    gone = sorted(before)[0]
    front["ec2"].terminate_instances(InstanceIds=[gone])
    during = {m["InstanceId"]: m for m in rounds(front)}
    assert during[gone]["LifecycleState"] == "Terminating" and during[gone]["HealthStatus"] == "Unhealthy"
    (new,) = set(during) - set(before)
    assert during[new]["AvailabilityZone"] == before[gone]
    after = {m["InstanceId"] for m in rounds(front, 2)}
    assert after == set(before) - {gone} | {new}
    activities = front["asg"].describe_scaling_activities(AutoScalingGroupName="web")["Activities"]
    causes = {a["Description"]: a["Cause"] for a in activities}
    assert "in response to an EC2 health check" in causes[f"Terminating EC2 instance: {gone}"]
    assert causes[f"Launching a new EC2 instance: {new}"].endswith(f"an instance was started to replace {gone}.")
    assert {a["StatusCode"] for a in activities} == {"Successful"}


def test_scale_in_takes_the_fullest_zone_first_and_its_oldest_instance(front):
    rounds(front, 2)
    front["asg"].set_desired_capacity(AutoScalingGroupName="web", DesiredCapacity=5)
    five = rounds(front, 2)
    per_zone = {z: sorted(m["InstanceId"] for m in five if m["AvailabilityZone"] == z) for z in front["zones"]}
    assert sorted(len(v) for v in per_zone.values()) == [2, 3]
    full = max(per_zone, key=lambda z: len(per_zone[z]))
    oldest = next(i for i in front["core"].autoscaling.instances_of("us-east-1", "web") if i in per_zone[full])
    front["asg"].set_desired_capacity(AutoScalingGroupName="web", DesiredCapacity=4)
    leaving = [m["InstanceId"] for m in rounds(front) if m["LifecycleState"] == "Terminating"]
    assert leaving == [oldest]
    assert len(rounds(front, 2)) == 4


def test_set_instance_health_replaces_the_instance(front):
    sick = rounds(front, 2)[0]["InstanceId"]
    front["asg"].set_instance_health(InstanceId=sick, HealthStatus="Unhealthy")
    rounds(front, 3)
    assert sick not in {m["InstanceId"] for m in members(front)} and len(members(front)) == 2
    activities = front["asg"].describe_scaling_activities(AutoScalingGroupName="web")["Activities"]
    cause = next(a["Cause"] for a in activities if a["Description"] == f"Terminating EC2 instance: {sick}")
    assert "in response to a user health-check" in cause


def test_delete_needs_force_with_instances_and_then_terminates_them(front):
    ids = [m["InstanceId"] for m in rounds(front, 2)]
    with pytest.raises(ClientError) as refused:
        front["asg"].delete_auto_scaling_group(AutoScalingGroupName="web")
    assert refused.value.response["Error"]["Code"] == "ResourceInUse"
    front["asg"].delete_auto_scaling_group(AutoScalingGroupName="web", ForceDelete=True)
    assert front["asg"].describe_auto_scaling_groups()["AutoScalingGroups"] == []
    states = front["ec2"].describe_instances(InstanceIds=ids)["Reservations"]
    assert {i["State"]["Name"] for r in states for i in r["Instances"]} <= {"shutting-down", "terminated"}


def refresh(front, refresh_id: str) -> dict:
    rows = front["asg"].describe_instance_refreshes(AutoScalingGroupName="web", InstanceRefreshIds=[refresh_id])
    return rows["InstanceRefreshes"][0]


def test_a_refresh_launches_before_it_terminates_and_ends_on_the_new_version(front):
    rounds(front, 2)
    version = new_version(front)
    refresh_id = front["asg"].start_instance_refresh(
        AutoScalingGroupName="web",
        DesiredConfiguration={"LaunchTemplate": {"LaunchTemplateId": front["template"], "Version": version}},
        Preferences={"MinHealthyPercentage": 100, "MaxHealthyPercentage": 110, "InstanceWarmup": 0},
    )["InstanceRefreshId"]
    with pytest.raises(ClientError) as second:
        front["asg"].start_instance_refresh(AutoScalingGroupName="web")
    assert second.value.response["Error"]["Code"] == "InstanceRefreshInProgress"
    for _ in range(12):
        now = rounds(front)
        serving = [m for m in now if m["LifecycleState"] == "InService" and m["HealthStatus"] == "Healthy"]
        assert len(serving) >= 2, now  # MinHealthyPercentage 100: never fewer than desired in service
        assert len([m for m in now if m["LifecycleState"] != "Terminating"]) <= 3, now  # 110 %: one more at most
        if refresh(front, refresh_id)["Status"] == "Successful":
            break
    done = refresh(front, refresh_id)
    assert done["Status"] == "Successful" and done["PercentageComplete"] == 100, done
    assert {m["LaunchTemplate"]["Version"] for m in rounds(front, 2)} == {version}
    group = front["asg"].describe_auto_scaling_groups(AutoScalingGroupNames=["web"])["AutoScalingGroups"][0]
    assert group["LaunchTemplate"]["Version"] == version  # the group keeps the refresh's configuration


def test_auto_rollback_needs_exact_versions(front):
    version = new_version(front)
    with pytest.raises(ClientError) as refused:
        front["asg"].start_instance_refresh(
            AutoScalingGroupName="web",
            DesiredConfiguration={"LaunchTemplate": {"LaunchTemplateId": front["template"], "Version": version}},
            Preferences={"AutoRollback": True},
        )  # the group itself is on $Latest
    error = refused.value.response["Error"]
    assert error["Code"] == "ValidationError" and "$Latest" in error["Message"], error


def test_a_refresh_whose_replacement_fails_rolls_back_to_the_previous_version(front):
    group = {"LaunchTemplateId": front["template"], "Version": "1"}
    front["asg"].update_auto_scaling_group(AutoScalingGroupName="web", LaunchTemplate=group)
    old = {m["InstanceId"] for m in rounds(front, 2)}
    version = new_version(front)
    refresh_id = front["asg"].start_instance_refresh(
        AutoScalingGroupName="web",
        DesiredConfiguration={"LaunchTemplate": {"LaunchTemplateId": front["template"], "Version": version}},
        Preferences={"MinHealthyPercentage": 100, "MaxHealthyPercentage": 110, "InstanceWarmup": 0,
                     "AutoRollback": True},
    )["InstanceRefreshId"]  # fmt: skip
    (bad,) = {m["InstanceId"] for m in rounds(front)} - old
    front["asg"].set_instance_health(InstanceId=bad, HealthStatus="Unhealthy")  # as a failed health check would
    rounds(front)
    assert refresh(front, refresh_id)["Status"] == "RollbackInProgress"
    for _ in range(12):
        if refresh(front, refresh_id)["Status"] == "RollbackSuccessful":
            break
        rounds(front)
    done = refresh(front, refresh_id)
    assert done["Status"] == "RollbackSuccessful", done
    assert bad in done["StatusReason"] and "\n" not in done["StatusReason"], done
    assert bad in done["RollbackDetails"]["RollbackReason"]
    final = rounds(front, 2)
    assert {m["LaunchTemplate"]["Version"] for m in final} == {"1"} and len(final) == 2, final
    again = front["asg"].describe_auto_scaling_groups(AutoScalingGroupNames=["web"])["AutoScalingGroups"][0]
    assert again["LaunchTemplate"]["Version"] == "1"


def test_cancel_stops_a_refresh_where_it_is(front):
    rounds(front, 2)
    version = new_version(front)
    front["asg"].start_instance_refresh(
        AutoScalingGroupName="web",
        DesiredConfiguration={"LaunchTemplate": {"LaunchTemplateId": front["template"], "Version": version}},
    )
    cancelled = front["asg"].cancel_instance_refresh(AutoScalingGroupName="web")["InstanceRefreshId"]
    assert refresh(front, cancelled)["Status"] == "Cancelled"
    with pytest.raises(ClientError) as none_left:
        front["asg"].cancel_instance_refresh(AutoScalingGroupName="web")
    assert none_left.value.response["Error"]["Code"] == "ActiveInstanceRefreshNotFound"


def test_a_launch_ec2_refuses_is_a_failed_activity_and_the_group_waits_before_the_next(front):
    made = front["ec2"].create_launch_template_version(
        LaunchTemplateId=front["template"],
        LaunchTemplateData={"ImageId": front["image"], "InstanceType": "t3.micro",
                            "IamInstanceProfile": {"Name": "no-such-profile"}},
    )  # fmt: skip
    version = str(made["LaunchTemplateVersion"]["VersionNumber"])
    front["asg"].update_auto_scaling_group(
        AutoScalingGroupName="web", LaunchTemplate={"LaunchTemplateId": front["template"], "Version": version}
    )
    assert rounds(front, 3) == []
    activities = front["asg"].describe_scaling_activities(AutoScalingGroupName="web")["Activities"]
    assert [a["StatusCode"] for a in activities] == ["Failed"], activities  # one try, then the group waits
    assert "no-such-profile" in activities[0]["Description"], activities[0]


def test_a_group_from_a_template_needs_what_a_launch_needs_and_the_first_one_the_service_linked_role():
    """CreateAutoScalingGroup with a launch template is checked as the caller's own launch: ec2:RunInstances,
    ec2:CreateTags for the template's tags, iam:PassRole on its instance profile's role; the account's first group
    also needs iam:CreateServiceLinkedRole, and makes the role ("Amazon EC2 Auto Scaling API permissions")."""
    import boto3

    with api_front() as (core, endpoint, keys):

        def client(service, key):
            return boto3.client(service, region_name="us-east-1", endpoint_url=endpoint,
                                aws_access_key_id=key[0], aws_secret_access_key=key[1])  # fmt: skip

        admin = core.admin_key
        iam_admin = client("iam", admin)
        iam_admin.create_role(RoleName="web-webserver", AssumeRolePolicyDocument="{}")
        iam_admin.create_instance_profile(InstanceProfileName="web-webserver")
        iam_admin.add_role_to_instance_profile(InstanceProfileName="web-webserver", RoleName="web-webserver")
        ec2 = client("ec2", admin)
        subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        template = ec2.create_launch_template(
            LaunchTemplateName="web",
            LaunchTemplateData={
                "ImageId": image,
                "InstanceType": "t3.micro",
                "IamInstanceProfile": {"Name": "web-webserver"},
                "TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "Role", "Value": "web"}]}],
            },
        )["LaunchTemplate"]
        group = {
            "LaunchTemplate": {"LaunchTemplateId": template["LaunchTemplateId"], "Version": "1"},
            "MinSize": 0, "MaxSize": 0, "VPCZoneIdentifier": subnet,
        }  # fmt: skip

        def refused(action: str, suffix: str = "") -> str:
            name = action.split(":")[1].lower() + suffix
            iam_admin.create_user(UserName=f"minus-{name}")
            iam_admin.put_user_policy(UserName=f"minus-{name}", PolicyName="p", PolicyDocument=policy_without(action))
            made = iam_admin.create_access_key(UserName=f"minus-{name}")["AccessKey"]
            asg = client("autoscaling", (made["AccessKeyId"], made["SecretAccessKey"]))
            with pytest.raises(ClientError) as err:
                asg.create_auto_scaling_group(AutoScalingGroupName=f"web-{name}", **group)
            return err.value.response["Error"]["Message"]

        for action in ("iam:CreateServiceLinkedRole", "ec2:RunInstances", "ec2:CreateTags", "iam:PassRole"):
            assert f"not authorized to perform: {action}" in refused(action)
        with pytest.raises(ClientError):
            iam_admin.get_role(RoleName="AWSServiceRoleForAutoScaling")  # no group yet: no role

        client("autoscaling", keys["bakery-least-privilege"]).create_auto_scaling_group(
            AutoScalingGroupName="web", **group
        )
        role = iam_admin.get_role(RoleName="AWSServiceRoleForAutoScaling")["Role"]
        assert role["Path"] == "/aws-service-role/autoscaling.amazonaws.com/"
        # Once the role exists, a group needs no iam:CreateServiceLinkedRole (the other three still count).
        assert "not authorized to perform: ec2:RunInstances" in refused("ec2:RunInstances", "-again")
        core.autoscaling.shutdown()
