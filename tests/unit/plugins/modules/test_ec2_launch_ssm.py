"""ec2_launch with ``image_id: resolve:ssm:NAME`` and images of another region."""

from __future__ import annotations

from ansible_collections.bakery.ec2.plugins.module_utils import _instances
from ansible_collections.bakery.ec2.plugins.modules import ec2_launch
from ec2_fakes import AMI, VPC, id_filter, instance, reservations
from test_ec2_launch import run_params, stub_find, stub_image, stub_lookups

PARAM = "/aws/service/debian/release/12/latest/amd64"
NEWER = "ami-0fedcba9876543210"


def stub_parameter(ssm, value=AMI, region="us-east-1"):
    ssm.add_response(
        "get_parameter",
        {"Parameter": {"Name": PARAM, "Type": "String", "Value": value, "Version": 3, "DataType": "aws:ec2:image"}},
        {"Name": PARAM},
    )


def test_resolve_ssm_launches_the_image_the_parameter_names(ec2, ssm, run_module):
    stub_parameter(ssm)
    stub_lookups(ec2)
    token = _instances.client_token("web", "us-east-1", VPC, [], 1)
    ec2.add_response("run_instances", {"Instances": [instance("i-00000001")]}, {"ClientToken": token, **run_params()})
    ec2.add_response("describe_instances", reservations(instance("i-00000001")), id_filter("i-00000001"))
    res = run_module(ec2_launch, {"name": "web", "image_id": f"resolve:ssm:{PARAM}", "wait": False})
    assert not res.failed, res.result["msg"]
    assert res.result["changed"] is True
    assert res.result["image_id"] == AMI
    assert res.result["launched_ids"] == ["i-00000001"]


def test_resolve_ssm_rerun_with_the_same_value_changes_nothing(ec2, ssm, run_module):
    stub_parameter(ssm)
    stub_lookups(ec2, instance("i-00000001"))
    res = run_module(ec2_launch, {"name": "web", "image_id": f"resolve:ssm:{PARAM}"})
    assert not res.failed, res.result["msg"]
    assert res.result["changed"] is False
    assert res.result["drift"] == []
    assert res.result["image_id"] == AMI


def test_resolve_ssm_check_mode_and_drift_know_the_real_image(ec2, ssm, run_module):
    # The parameter moved on to a newer image: the running instance is reported as drift, not replaced.
    stub_parameter(ssm, NEWER)
    stub_find(ec2, instance("i-00000001"))
    stub_image(ec2, NEWER)
    ec2.add_response(
        "describe_instance_types",
        {"InstanceTypes": [{"InstanceType": "t3.micro", "ProcessorInfo": {"SupportedArchitectures": ["x86_64"]}}]},
    )
    res = run_module(ec2_launch, {"name": "web", "image_id": f"resolve:ssm:{PARAM}"}, check_mode=True)
    assert not res.failed, res.result["msg"]
    assert res.result["changed"] is False
    assert res.result["drift"] == [{"instance_id": "i-00000001", "option": "image_id", "current": AMI, "wanted": NEWER}]
    assert res.result["image_id"] == NEWER


def test_resolve_ssm_missing_parameter_fails_before_anything_changes(ec2, ssm, run_module):
    stub_find(ec2)
    ssm.add_client_error("get_parameter", "ParameterNotFound", "", 400)
    res = run_module(ec2_launch, {"name": "web", "image_id": "resolve:ssm:/nope"})
    assert res.failed
    assert res.result["msg"] == "image_id: parameter '/nope' not found in us-east-1"
    assert res.result["changed"] is False and res.result["launched_ids"] == []


def test_resolve_ssm_with_a_blank_name_is_refused_without_a_call(ec2, run_module):
    res = run_module(ec2_launch, {"name": "web", "image_id": "resolve:ssm:"})
    assert res.failed
    assert res.result["msg"].startswith("image_id: '' is not an SSM parameter name")


def test_an_image_of_another_region_fails_with_the_per_region_hint(ec2, run_module):
    stub_find(ec2)
    ec2.add_client_error("describe_images", "InvalidAMIID.NotFound", f"The image id '[{AMI}]' does not exist")
    res = run_module(ec2_launch, {"name": "web", "image_id": AMI})
    assert res.failed
    assert res.result["msg"].startswith(f"image_id: '{AMI}' not found in us-east-1; AMI IDs are per region")
    assert "\n" not in res.result["msg"]
