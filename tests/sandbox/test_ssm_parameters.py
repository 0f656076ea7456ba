"""Issue 16: the sandbox publishes Debian's SSM public parameters for its base images, per region."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from sandbox_helpers import base_ami

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
    env = dict(os.environ, **sandbox.env(), ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build" / "collections"))
    env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0")
    env["ANSIBLE_PYTHON_INTERPRETER"] = sys.executable
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), str(book)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    by_region = json.loads((tmp_path / "by_region.json").read_text())
    for region in REGIONS:
        assert by_region[region]["image_id"] == base_ami(sandbox.client(region), "12")["ImageId"]
        assert by_region[region]["image"]["name"].startswith("debian-12-amd64-")
