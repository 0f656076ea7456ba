"""ami_parameter: an image ID published in an SSM parameter of data type aws:ec2:image, per region."""

from __future__ import annotations

import time
from types import SimpleNamespace

from ansible_collections.bakery.ec2.plugins.module_utils import _changes
from ansible_collections.bakery.ec2.plugins.modules import ami_parameter

NAME = "/bakery/web/image-id"
AMI = "ami-0123456789abcdef0"
OLD = "ami-0aaaaaaaaaaaaaaaa"
COPY = "ami-0fedcba9876543210"


def param(value, data_type="aws:ec2:image", version=1):
    return {"Parameter": {"Name": NAME, "Type": "String", "Value": value, "Version": version, "DataType": data_type}}


def stub_read(ssm, value=None, **kw):
    if value is None:
        ssm.add_client_error("get_parameter", "ParameterNotFound", "", 400, expected_params={"Name": NAME})
    else:
        ssm.add_response("get_parameter", param(value, **kw), {"Name": NAME})


def stub_image(ec2, image_id=AMI, state="available"):
    ec2.add_response("describe_images", {"Images": [{"ImageId": image_id, "State": state}]}, {"ImageIds": [image_id]})


def put(value, create=False):
    request = {"Name": NAME, "Value": value, "Type": "String", "DataType": "aws:ec2:image"}
    if not create:
        request["Overwrite"] = True
    return request


def test_a_new_parameter_is_created_and_read_back(ec2, ssm, run_module):
    stub_read(ssm)  # before
    stub_image(ec2)
    stub_read(ssm)  # publish's own look
    ssm.add_response(
        "put_parameter", {"Version": 1, "Tier": "Standard"}, dict(put(AMI, create=True), Description="web")
    )
    stub_read(ssm, AMI)
    res = run_module(ami_parameter, {"name": NAME, "images": {"us-east-1": AMI}, "description": "web"})
    assert not res.failed, res.result["msg"]
    assert res.result["changed"] is True
    assert res.result["actions"] == [f"create parameter {NAME} = {AMI} (us-east-1)"]
    assert res.result["parameters"]["us-east-1"]["value"] == AMI
    assert res.result["parameters"]["us-east-1"]["data_type"] == "aws:ec2:image"


def test_a_parameter_that_holds_the_image_is_left_alone(ec2, ssm, run_module):
    stub_read(ssm, AMI)
    stub_image(ec2)
    stub_read(ssm, AMI)
    res = run_module(ami_parameter, {"name": NAME, "images": {"us-east-1": AMI}})
    assert not res.failed and res.result["changed"] is False and res.result["actions"] == []


def test_each_region_gets_its_own_image_and_check_mode_changes_nothing(ec2, ssm, run_module):
    eu_ec2, eu_ssm = ec2.for_region("eu-west-1"), ssm.for_region("eu-west-1")
    stub_read(ssm, OLD)
    stub_read(eu_ssm)
    stub_image(ec2)
    stub_image(eu_ec2, COPY)
    stub_read(ssm, OLD)
    stub_read(eu_ssm)
    images = {"us-east-1": AMI, "eu-west-1": COPY}
    res = run_module(ami_parameter, {"name": NAME, "images": images}, check_mode=True, diff=True)
    assert not res.failed, res.result["msg"]
    assert res.result["actions"] == [
        f"update parameter {NAME} = {AMI} (us-east-1)",
        f"create parameter {NAME} = {COPY} (eu-west-1)",
    ]
    assert {r: p["value"] for r, p in res.result["parameters"].items()} == images
    assert res.result["diff"]["before"]["us-east-1"]["value"] == OLD and res.result["diff"]["before"]["eu-west-1"] == {}


def test_a_value_that_the_asynchronous_check_refuses_fails_in_one_line(ec2, ssm, run_module, slept, monkeypatch):
    """AWS answers PutParameter before validating an aws:ec2:image value; a refused one never appears."""
    monkeypatch.setattr(_changes, "time", SimpleNamespace(monotonic=lambda: sum(slept), time=time.time))
    stub_read(ssm, OLD)
    stub_image(ec2)
    stub_read(ssm, OLD)
    ssm.add_response("put_parameter", {"Version": 2, "Tier": "Standard"}, put(AMI))
    for _read in range(4):  # at 0, 0.25, 0.65 and 1.0 s of the fake clock
        stub_read(ssm, OLD)
    res = run_module(ami_parameter, {"name": NAME, "images": {"us-east-1": AMI}, "wait_timeout": 1})
    assert res.failed
    assert res.result["msg"].startswith(f"name: parameter '{NAME}' in us-east-1 does not hold {AMI} 1 s after")
    assert "\n" not in res.result["msg"]
    assert sum(slept) == 1


def test_an_image_that_is_not_available_fails_before_any_change(ec2, ssm, run_module):
    stub_read(ssm, OLD)
    ec2.add_client_error("describe_images", "InvalidAMIID.NotFound", "", 400, expected_params={"ImageIds": [AMI]})
    res = run_module(ami_parameter, {"name": NAME, "images": {"us-east-1": AMI}})
    assert res.failed and res.result["msg"] == f"images: {AMI} is not found in us-east-1, not an available image"


def test_a_text_parameter_of_that_name_is_refused(ec2, ssm, run_module):
    stub_read(ssm, "hello", data_type="text")
    stub_image(ec2)
    stub_read(ssm, "hello", data_type="text")
    res = run_module(ami_parameter, {"name": NAME, "images": {"us-east-1": AMI}})
    assert res.failed and "exists with data type 'text'" in res.result["msg"] and res.result["actions"] == []


def test_absent_deletes_where_it_exists(ssm, run_module):
    eu = ssm.for_region("eu-west-1")
    stub_read(ssm, AMI)
    stub_read(eu)
    stub_read(ssm, AMI)
    ssm.add_response("delete_parameter", {}, {"Name": NAME})
    stub_read(eu)
    res = run_module(ami_parameter, {"name": NAME, "state": "absent", "regions": ["us-east-1", "eu-west-1"]})
    assert not res.failed and res.result["actions"] == [f"delete parameter {NAME} (us-east-1)"]
    assert list(res.result["parameters"]) == ["us-east-1"]


def test_bad_input_is_refused_without_a_call(run_module):
    cases = [
        ({"name": "has space", "images": {"us-east-1": AMI}}, "name: 'has space' is not an SSM parameter name"),
        ({"name": NAME, "images": {"us-east-1": "ami-1"}}, "images.us-east-1"),
        ({"name": NAME, "images": {"Nowhere": AMI}}, "images: 'Nowhere' is not a valid AWS region name"),
        ({"name": NAME, "images": {}}, "images: give the image ID of at least one region"),
        ({"name": NAME, "images": {"us-east-1": AMI}, "wait_timeout": 0}, "wait_timeout: 0"),
    ]
    for args, message in cases:
        res = run_module(ami_parameter, args)
        assert res.failed and message in res.result["msg"], (args, res.result["msg"])
