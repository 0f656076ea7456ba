"""sandbox/moto_gaps.py: moto answers as AWS does where the flow needs it (no root, no sandbox: moto in process)."""

from __future__ import annotations

import os

import boto3
import pytest
from moto import mock_aws

from sandbox import moto_gaps  # the checkout is on the path (conftest.py)

moto_gaps.apply()


@pytest.fixture(autouse=True)
def plain_aws(monkeypatch):
    """moto in process: no endpoint or keys of the sandbox (the sandbox fixture exports them) take requests away."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


@mock_aws
def test_every_instance_of_one_launch_gets_the_profile():
    boto3.client("iam", region_name="us-east-1").create_instance_profile(InstanceProfileName="web")
    ec2 = boto3.client("ec2", region_name="us-east-1")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    for profile in ({"Name": "web"}, {"Arn": "arn:aws:iam::123456789012:instance-profile/web"}):
        launched = ec2.run_instances(ImageId=image, MinCount=3, MaxCount=3, IamInstanceProfile=profile)["Instances"]
        found = ec2.describe_instances(InstanceIds=[i["InstanceId"] for i in launched])["Reservations"][0]["Instances"]
        assert [i["IamInstanceProfile"]["Arn"].rpartition("/")[2] for i in found] == ["web"] * 3


@mock_aws
def test_tables_have_a_stable_id():
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    created = ddb.create_table(
        TableName="employees",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )["TableDescription"]
    assert created["TableId"] == ddb.describe_table(TableName="employees")["Table"]["TableId"]
    moto_gaps.apply()  # a second call changes nothing
    assert ddb.describe_table(TableName="employees")["Table"]["TableId"] == created["TableId"]


@mock_aws
def test_deregistering_a_target_twice_succeeds_as_on_aws():
    ec2 = boto3.client("ec2", region_name="us-east-1")
    elb = boto3.client("elbv2", region_name="us-east-1")
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    ids = [i["InstanceId"] for i in ec2.run_instances(ImageId=image, MinCount=2, MaxCount=2)["Instances"]]
    group = elb.create_target_group(Name="web", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="instance")
    arn = group["TargetGroups"][0]["TargetGroupArn"]
    elb.register_targets(TargetGroupArn=arn, Targets=[{"Id": iid} for iid in ids])

    def registered():
        return sorted(
            t["Target"]["Id"] for t in elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
        )

    elb.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": ids[0]}])
    assert registered() == [ids[1]]
    # Again (another client did it first), and together with one still registered: a success, the other goes too.
    elb.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": ids[0]}, {"Id": ids[1]}])
    assert registered() == []
    with pytest.raises(elb.exceptions.InvalidTargetException):  # no such instance at all: ELB's InvalidTarget
        elb.deregister_targets(TargetGroupArn=arn, Targets=[{"Id": "i-0123456789abcdef0"}])


@mock_aws
def test_a_launch_template_version_inherits_its_source_versions_parameters():
    ec2 = boto3.client("ec2", region_name="us-east-1")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    made = ec2.create_launch_template(
        LaunchTemplateName="web", LaunchTemplateData={"ImageId": image, "InstanceType": "t3.micro", "KeyName": "a"}
    )["LaunchTemplate"]
    ec2.create_launch_template_version(
        LaunchTemplateId=made["LaunchTemplateId"], SourceVersion="1", LaunchTemplateData={"KeyName": "b"}
    )
    ec2.create_launch_template_version(LaunchTemplateId=made["LaunchTemplateId"], LaunchTemplateData={"KeyName": "c"})
    versions = ec2.describe_launch_template_versions(LaunchTemplateId=made["LaunchTemplateId"])
    data = {v["VersionNumber"]: v["LaunchTemplateData"] for v in versions["LaunchTemplateVersions"]}
    assert data[2] == {"ImageId": image, "InstanceType": "t3.micro", "KeyName": "b"}  # the given one replaces
    assert data[3] == {"KeyName": "c"}  # no source version: the data given, only
    assert data[1]["KeyName"] == "a"  # the source is left as it was


@mock_aws
def test_a_launch_templates_own_tags_are_not_in_its_launch_data():
    ec2 = boto3.client("ec2", region_name="us-east-1")
    for_instances = {"ResourceType": "instance", "Tags": [{"Key": "Role", "Value": "web"}]}
    made = ec2.create_launch_template(
        LaunchTemplateName="web",
        LaunchTemplateData={"InstanceType": "t3.micro", "TagSpecifications": [for_instances]},
        TagSpecifications=[{"ResourceType": "launch-template", "Tags": [{"Key": "Team", "Value": "a"}]}],
    )["LaunchTemplate"]
    assert made["Tags"] == [{"Key": "Team", "Value": "a"}]  # the template's own
    (version,) = ec2.describe_launch_template_versions(LaunchTemplateId=made["LaunchTemplateId"])[
        "LaunchTemplateVersions"
    ]
    assert version["LaunchTemplateData"] == {"InstanceType": "t3.micro", "TagSpecifications": [for_instances]}
    bare = ec2.create_launch_template(
        LaunchTemplateName="bare",
        LaunchTemplateData={"InstanceType": "t3.micro"},
        TagSpecifications=[{"ResourceType": "launch-template", "Tags": [{"Key": "Team", "Value": "a"}]}],
    )["LaunchTemplate"]
    (version,) = ec2.describe_launch_template_versions(LaunchTemplateId=bare["LaunchTemplateId"])[
        "LaunchTemplateVersions"
    ]
    assert version["LaunchTemplateData"] == {"InstanceType": "t3.micro"}


@mock_aws
def test_launch_template_versions_are_deleted_by_number_except_the_default():
    ec2 = boto3.client("ec2", region_name="us-east-1")
    made = ec2.create_launch_template(LaunchTemplateName="web", LaunchTemplateData={"KeyName": "a"})["LaunchTemplate"]
    for key in ("b", "c"):
        ec2.create_launch_template_version(LaunchTemplateName="web", LaunchTemplateData={"KeyName": key})
    answer = ec2.delete_launch_template_versions(LaunchTemplateName="web", Versions=["1", "2", "9"])
    assert [v["VersionNumber"] for v in answer["SuccessfullyDeletedLaunchTemplateVersions"]] == [2]
    failed = {
        v["VersionNumber"]: v["ResponseError"]["Code"] for v in answer["UnsuccessfullyDeletedLaunchTemplateVersions"]
    }
    assert failed == {1: "launchTemplateVersionIsDefaultVersion", 9: "launchTemplateVersionDoesNotExist"}
    left = ec2.describe_launch_template_versions(LaunchTemplateId=made["LaunchTemplateId"])["LaunchTemplateVersions"]
    assert sorted((v["VersionNumber"], v["LaunchTemplateData"]["KeyName"]) for v in left) == [(1, "a"), (3, "c")]
    (third,) = ec2.describe_launch_template_versions(LaunchTemplateName="web", Versions=["3"])["LaunchTemplateVersions"]
    assert third["LaunchTemplateData"] == {"KeyName": "c"}  # by its number, not its place
    ec2.create_launch_template_version(LaunchTemplateName="web", LaunchTemplateData={"KeyName": "d"})
    (latest,) = ec2.describe_launch_templates(LaunchTemplateNames=["web"])["LaunchTemplates"]
    assert latest["LatestVersionNumber"] == 4  # a number is never given twice
    ec2.delete_launch_template(LaunchTemplateName="web")
    assert ec2.describe_launch_templates()["LaunchTemplates"] == []
