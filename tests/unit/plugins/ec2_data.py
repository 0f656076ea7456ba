"""Test data shared by the inventory's unit tests: EC2 instances as botocore returns them, and XML pages."""

from __future__ import annotations

import datetime
import importlib.util
from pathlib import Path

import botocore.session
from botocore import parsers

REPO = Path(__file__).resolve().parents[3]
MODEL = botocore.session.get_session().get_service_model("ec2")


def load_stub():
    """bench/inventory/stub.py, whose page renderer makes realistic DescribeInstances XML pages."""
    spec = importlib.util.spec_from_file_location("bench_stub", REPO / "bench" / "inventory" / "stub.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def botocore_parse(body):
    """A DescribeInstances XML page as botocore's own parser reads it."""
    parser = parsers.create_parser("ec2")
    shape = MODEL.operation_model("DescribeInstances").output_shape
    return parser.parse({"body": body, "headers": {}, "status_code": 200}, shape)


def instance(iid="i-0123456789abcdef0", tags=None, **extra):
    """One instance as boto3's describe_instances returns it."""
    data = {
        "InstanceId": iid,
        "ImageId": "ami-0123456789abcdef0",
        "InstanceType": "t3.micro",
        "State": {"Code": 16, "Name": "running"},
        "PrivateIpAddress": "10.0.0.5",
        "PrivateDnsName": "ip-10-0-0-5.eu-west-1.compute.internal",
        "PublicDnsName": "",
        "Placement": {"AvailabilityZone": "eu-west-1b", "Tenancy": "default"},
        "LaunchTime": datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC),
        "VpcId": "vpc-0123456789abcdef0",
        "SubnetId": "subnet-0123456789abcdef0",
        "SecurityGroups": [{"GroupId": "sg-0123456789abcdef0", "GroupName": "web"}],
        "Tags": [{"Key": k, "Value": v} for k, v in (tags or {}).items()],
    }
    data.update(extra)
    return data
