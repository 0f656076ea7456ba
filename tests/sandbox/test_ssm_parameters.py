"""The sandbox publishes Debian's SSM public parameters for its base images, per region."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from sandbox_helpers import ansible_playbook, base_ami

REGIONS = ("us-east-1", "eu-west-1")
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("region", REGIONS)
def test_each_release_parameter_names_the_base_image_of_its_region(sandbox, region):
    ssm = sandbox.client(region, "ssm")
    ec2 = sandbox.client(region)
    for version, suite in (("12", "bookworm"), ("13", "trixie")):
        image = base_ami(ec2, version)
        for release in (version, suite):
            name = f"/aws/service/debian/release/{release}/latest/amd64"
            param = ssm.get_parameter(Name=name)["Parameter"]
            assert param["Value"] == image["ImageId"], name
            assert param["DataType"] == "aws:ec2:image"
            assert param["ARN"] == f"arn:aws:ssm:{region}::parameter{name}"


def test_batch_and_path_reads_and_missing_names(sandbox):
    ssm = sandbox.client("us-east-1", "ssm")
    latest12 = "/aws/service/debian/release/12/latest/amd64"
    reply = ssm.get_parameters(Names=[latest12, "/aws/service/debian/release/11/latest/amd64"])
    assert [p["Name"] for p in reply["Parameters"]] == [latest12]
    assert reply["InvalidParameters"] == ["/aws/service/debian/release/11/latest/amd64"]
    by_path = ssm.get_parameters_by_path(Path="/aws/service/debian/release/12", Recursive=True)["Parameters"]
    assert [p["Name"] for p in by_path] == [latest12]
    assert ssm.get_parameters_by_path(Path="/aws/service/debian/release/12", Recursive=False)["Parameters"] == []
    with pytest.raises(ClientError) as caught:
        ssm.get_parameter(Name="/aws/service/debian/release/11/latest/amd64")
    assert caught.value.response["Error"]["Code"] == "ParameterNotFound"
    # moto's own public parameters are still served.
    moto_own = ssm.get_parameter(Name="/aws/service/global-infrastructure/regions/us-east-1")["Parameter"]
    assert moto_own["Value"] == "us-east-1"


def test_ami_find_resolves_the_parameter_in_each_region(sandbox, tmp_path):
    """What the flow does with flow_base_ssm_parameter: one ami_find task, each region its own image."""
    book = tmp_path / "find.yml"
    book.write_text(
        json.dumps(
            [
                {
                    "name": "Find by parameter",
                    "hosts": "localhost",
                    "connection": "local",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "name": "Find",
                            "bakery.ec2.ami_find": {
                                "ssm_parameter": "/aws/service/debian/release/12/latest/amd64",
                                "regions": list(REGIONS),
                            },
                            "register": "found",
                        },
                        {
                            "name": "Keep",
                            "ansible.builtin.copy": {
                                "content": "{{ found.by_region | to_json }}",
                                "dest": str(tmp_path / "by_region.json"),
                                "mode": "0600",
                            },
                        },
                    ],
                }
            ]
        )
    )
    proc = ansible_playbook(sandbox, book)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    by_region = json.loads((tmp_path / "by_region.json").read_text())
    for region in REGIONS:
        assert by_region[region]["image_id"] == base_ami(sandbox.client(region), "12")["ImageId"]
        assert by_region[region]["image"]["name"].startswith("debian-12-amd64-")


def test_launch_takes_the_base_image_from_flow_base_ssm_parameter(sandbox, tmp_path):
    """playbooks/launch.yml with flow_base_ssm_parameter: Debian 13's parameter wins over the name pattern.

    The name pattern matches no image at all, so a launch that looked by owner and name would fail.
    """
    flow = {
        "flow_name": "ssm-base",
        "flow_store": "sqlite",
        "flow_key_path": str(tmp_path / "key"),
        "flow_base_name": "no-such-image-*",
        "flow_base_ssm_parameter": "/aws/service/debian/release/13/latest/amd64",
    }
    ec2 = sandbox.client("us-east-1")
    try:
        proc = ansible_playbook(sandbox, ROOT / "playbooks/launch.yml", "-e", json.dumps(flow))
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        source = [
            i
            for r in ec2.describe_instances(
                Filters=[
                    {"Name": "tag:BakeryFlow", "Values": ["ssm-base"]},
                    {"Name": "instance-state-name", "Values": ["pending", "running"]},
                ]
            )["Reservations"]
            for i in r["Instances"]
        ]
        assert [i["ImageId"] for i in source] == [base_ami(ec2, "13")["ImageId"]]
    finally:
        down = ansible_playbook(sandbox, ROOT / "playbooks/teardown.yml", "-e", json.dumps(flow))
    assert down.returncode == 0, down.stdout[-3000:] + down.stderr[-2000:]


def test_an_image_parameter_takes_only_an_available_image_of_its_region(sandbox):
    """PutParameter with data type aws:ec2:image: AWS answers at once and checks the image afterwards; a value that
    fails the check never becomes the parameter's. Parameter actions are authorized on the parameter's ARN, and
    every changing SSM call is in the audit log."""
    from sandbox import config

    user = sandbox.client("us-east-1", "ssm", admin=False)  # docs/iam-policy.json: /bakery/* only
    name = "/bakery/sandbox-test/image-id"
    here = base_ami(sandbox.client("us-east-1"), "12")["ImageId"]
    ireland = base_ami(sandbox.client("eu-west-1"), "12")["ImageId"]
    image = {"Type": "String", "DataType": "aws:ec2:image"}
    user.put_parameter(Name=name, Value=here, Overwrite=True, **image)
    try:
        for refused in (ireland, "ami-0000000000000dead"):
            reply = user.put_parameter(Name=name, Value=refused, Overwrite=True, **image)
            assert reply["ResponseMetadata"]["HTTPStatusCode"] == 200
            param = user.get_parameter(Name=name)["Parameter"]
            assert (param["Value"], param["DataType"]) == (here, "aws:ec2:image"), refused
        with pytest.raises(ClientError) as caught:
            user.put_parameter(Name="/elsewhere/image-id", Value=here, **image)
        assert caught.value.response["Error"]["Code"] == "AccessDeniedException"
        assert "parameter/elsewhere/image-id" in caught.value.response["Error"]["Message"]
    finally:
        user.delete_parameter(Name=name)
    key = sandbox.env()["AWS_ACCESS_KEY_ID"]
    audit = [line for line in config.LOG_FILE.read_text().splitlines() if f" {name} -> " in line and key in line]
    assert [line.split(" call ")[1] for line in audit[-4:]] == [
        f"us-east-1 PutParameter {name} -> 200 (by {key})",
        f"us-east-1 PutParameter {name} -> 200 (by {key})",
        f"us-east-1 PutParameter {name} -> 200 (by {key})",
        f"us-east-1 DeleteParameter {name} -> 200 (by {key})",
    ]
