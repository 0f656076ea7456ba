"""The sandbox's registry of services (sandbox/services/): each request reaches its own service, and a service
added as sandbox/README.md's "Adding a service" shows works through the whole pipeline. No root, no hosts: the
API front runs in this process."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sandbox_helpers import api_front

from sandbox import config, iam
from sandbox.services import SERVICES, Registry
from sandbox.services.base import parse

REGION = "us-east-1"


def signed(service: str, **environ) -> dict:
    scope = f"Credential=AKIAEXAMPLE/20261207/{REGION}/{service}/aws4_request"
    return {"HTTP_AUTHORIZATION": f"AWS4-HMAC-SHA256 {scope}, SignedHeaders=host, Signature=0",
            "REQUEST_METHOD": "POST", **environ}  # fmt: skip


@pytest.mark.parametrize(
    ("environ", "body", "expected"),
    [
        (signed("ec2"), b"Action=DescribeInstances", "ec2"),
        (signed("elasticloadbalancing"), b"Action=DescribeLoadBalancers", "elasticloadbalancing"),
        (signed("autoscaling"), b"Action=DescribeAutoScalingGroups", "autoscaling"),
        (signed("iam"), b"Action=GetRole&RoleName=r", "iam"),
        (signed("sts"), b"Action=GetCallerIdentity", "sts"),
        (signed("s3", REQUEST_METHOD="GET", PATH_INFO="/bucket"), b"", "s3"),
        (signed("dynamodb", HTTP_X_AMZ_TARGET="DynamoDB_20120810.GetItem"), b"{}", "dynamodb"),
        (signed("ssm", HTTP_X_AMZ_TARGET="AmazonSSM.GetParameter"), b"{}", "ssm"),
        (signed("acm", HTTP_X_AMZ_TARGET="CertificateManager.ListCertificates"), b"{}", "acm"),
        (signed("kms", HTTP_X_AMZ_TARGET="TrentService.ListKeys"), b"{}", "kms"),
        (signed("ec2", REQUEST_METHOD="GET"), b"", ""),  # not EC2's Query protocol: moto as it is
        (signed("logs", HTTP_X_AMZ_TARGET="Logs_20140328.CreateLogGroup"), b"{}", ""),  # a service not registered
    ],
)
def test_each_request_reaches_its_own_service(environ, body, expected):
    registry = Registry(core=_NoCore(), moto=None)
    req = parse(environ, body)
    assert registry.find(req).name == expected


def test_every_service_is_registered_once_under_its_own_name():
    names = [cls.name for cls in SERVICES]
    assert len(names) == len(set(names)) == len(SERVICES)
    assert set(names) == {"ec2", "elasticloadbalancing", "ssm", "dynamodb", "s3", "iam", "sts", "autoscaling",
                          "acm", "kms"}  # fmt: skip
    files = {p.stem for p in (ROOT / "sandbox/services").glob("*.py")} - {"__init__", "base"}
    assert files == {cls.__module__.rsplit(".", 1)[1] for cls in SERVICES}  # one file each, nothing unregistered


class _NoCore:
    """Enough of the shared state for services made only to be found (the SSM service reads two of it)."""

    def ec2(self, region):
        raise AssertionError("not called")

    class strict:
        foreign_image = staticmethod(lambda image_id, region: False)


# ---------------------------------------------------------------- the README's worked example, through the pipeline
def readme_example():
    """The service sandbox/README.md's "Adding a service" writes, made a module of the package as that file would be."""
    text = (ROOT / "sandbox/README.md").read_text()
    section = text[text.index("## Adding a service") :]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    namespace = {"__name__": "sandbox.services.logs", "__package__": "sandbox.services"}
    exec(compile(code, "sandbox/services/logs.py", "exec"), namespace)  # the project's own README, as a module
    return namespace["Logs"]


@pytest.fixture(scope="module")
def front():
    with api_front([*SERVICES, readme_example()]) as (_core, url, keys):
        yield url, keys


def logs_client(front, user):
    url, keys = front
    key = keys[user]
    return boto3.client("logs", region_name=REGION, endpoint_url=url, aws_access_key_id=key[0],
                        aws_secret_access_key=key[1], config=Config(retries={"total_max_attempts": 1}))  # fmt: skip


def test_the_readme_example_refuses_what_aws_refuses_and_moto_answers_the_rest(front):
    logs = logs_client(front, iam.ADMIN_USER)
    with pytest.raises(ClientError) as err:
        logs.create_log_group(logGroupName="no spaces allowed")
    assert err.value.response["Error"]["Code"] == "InvalidParameterException"
    assert "no spaces allowed" in err.value.response["Error"]["Message"]
    logs.create_log_group(logGroupName="/bakery/web")
    names = [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]]
    assert "/bakery/web" in names and "no spaces allowed" not in names


def test_the_readme_example_is_checked_by_iam_on_its_resource(front):
    logs = logs_client(front, iam.USER)  # the least-privilege user: the flow's policy has no CloudWatch Logs
    with pytest.raises(ClientError) as err:
        logs.create_log_group(logGroupName="/bakery/denied")
    error = err.value.response["Error"]
    assert error["Code"] == "AccessDeniedException"
    assert (
        f"logs:CreateLogGroup on resource: arn:aws:logs:{REGION}:{config.ACCOUNT_ID}:log-group:/bakery/denied"
        in (error["Message"])
    )
