from __future__ import annotations

import pytest
from ansible_collections.bakery.ec2.plugins.module_utils._connection import service_endpoint
from ansible_collections.bakery.ec2.plugins.module_utils._ssm import parameter_name


@pytest.mark.parametrize(
    ("task_endpoint", "environ", "expected"),
    [
        (None, {}, None),
        ("http://127.0.0.1:4700", {}, "http://127.0.0.1:4700"),
        ("http://127.0.0.1:4700", {"AWS_ENDPOINT_URL": "http://127.0.0.1:4700"}, "http://127.0.0.1:4700"),
        ("http://ec2.local", {"AWS_ENDPOINT_URL_EC2": "http://ec2.local"}, None),
        (
            "http://ec2.local",
            {"AWS_ENDPOINT_URL_EC2": "http://ec2.local", "AWS_ENDPOINT_URL": "http://all"},
            "http://all",
        ),
        ("http://127.0.0.1:4700", {"AWS_ENDPOINT_URL_SSM": "http://ssm.local"}, "http://ssm.local"),
    ],
)
def test_ssm_endpoint_follows_botocore_service_variables(task_endpoint, environ, expected):
    assert service_endpoint("ssm", task_endpoint, environ) == expected


@pytest.mark.parametrize(
    ("task_endpoint", "environ", "expected"),
    [
        ("http://127.0.0.1:4700", {}, "http://127.0.0.1:4700"),
        ("http://ec2.local", {"AWS_ENDPOINT_URL_EC2": "http://ec2.local"}, None),
        (
            "http://127.0.0.1:4700",
            {"AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2": "http://elb.local", "AWS_ENDPOINT_URL_SSM": "http://ssm"},
            "http://elb.local",
        ),
    ],
)
def test_elbv2_endpoint_follows_its_own_botocore_variable(task_endpoint, environ, expected):
    assert service_endpoint("elbv2", task_endpoint, environ) == expected


def test_parameter_name_only_from_the_resolve_prefix():
    assert parameter_name("resolve:ssm:/aws/service/x") == "/aws/service/x"
    assert parameter_name("ami-0123456789abcdef0") is None
    assert parameter_name(None) is None
